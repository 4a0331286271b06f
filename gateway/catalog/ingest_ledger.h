// The catalog's ingest part: what arrived (objects, instances, studies), refusals at the door,
// readiness (RECEIVING -> STABLE) and start-up reconciliation of spool and catalog.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "catalog/database.h"
#include "catalog/types.h"

namespace dirgw::catalog {

class IngestLedger {
 public:
  explicit IngestLedger(Database& db) : db_(db) {}

  // Records an object and its instance in one transaction. An SOP instance already held with
  // identical bytes is a duplicate: nothing new is recorded or sent. A late instance of a
  // withdrawn study is withdrawn on arrival.
  Result<RecordOutcome> record_instance(const NewInstance& instance,
                                        NewVersionPolicy new_versions = NewVersionPolicy::kSend);
  // The same for several instances in one transaction and one COMMIT (group commit): one result
  // per instance, in order. An instance that fails is rolled back alone (a savepoint); when the
  // COMMIT fails every instance fails.
  std::vector<Result<RecordOutcome>> record_instances(const std::vector<const NewInstance*>& batch,
                                                      NewVersionPolicy new_versions);
  Result<void> record_refusal(const Refusal& refusal);
  // The objects held for an SOP Instance UID, newest first (the few record_instance compares
  // with), each with its content key when the catalog has it: read without the write lock.
  struct HeldVersion {
    std::string sha256;
    std::optional<std::string> content_key;
  };
  Result<std::vector<HeldVersion>> held_versions(const std::string& sop_instance_uid);
  // Calls `remove` (a spool file's removal) under the write lock when no object row names
  // `sha256`: a file no row refers to, and none can come to while it goes. False when kept.
  Result<bool> remove_unreferenced(const std::string& sha256,
                                   const std::function<Result<void>()>& remove);

  // Studies with no new instance since `cutoff` become STABLE (the policy stage decides next).
  // Returns how many studies moved.
  Result<int> promote_stable(std::int64_t cutoff_ms);
  // Earliest last_received_at of a RECEIVING study, if any: when the next promotion is due.
  Result<std::optional<std::int64_t>> oldest_receiving();

  // Start-up reconciliation of spool and catalog.
  Result<bool> has_object(const std::string& sha256);
  // The received objects the catalog knows and has not purged (originals; not derived copies),
  // sorted; only those of one spool shard ("3f") when given.
  Result<std::vector<std::string>> object_hashes(const std::string& shard = "");
  // Calls `each` with the object of every delivery still to be sent (pending, sending): the
  // files an ordered stop cannot have lost but that must be there. Reads the partial index of
  // open deliveries (schema 27), never the whole catalog.
  Result<void> each_open_object(const std::function<void(const std::string&)>& each);
  // Records this daemon run's start; true when the run before ended with an ordered stop
  // (end_run()), false after a kill, crash or power cut, or on a catalog that never recorded one.
  Result<bool> begin_run();
  Result<void> end_run();
  // Pending deliveries of instances whose object is missing become failed, with the reason.
  Result<int> flag_missing_object(const std::string& sha256);
  Result<void> record_reconciliation(const Reconciliation& r);

 private:
  RecordOutcome record_in(Connection& db, const NewInstance& in, NewVersionPolicy new_versions,
                          std::int64_t now);
  // The newest versions held of in's SOP instance (other bytes) whose content is in's: the id
  // of the first, 0 when none. `key` gets in's content key when it was computed.
  std::int64_t held_with_same_content(Connection& db, const NewInstance& in, std::string& key);
  Database& db_;
};

}  // namespace dirgw::catalog
