// The hand-off from ingest to the catalog: a received object becomes an instance row (or is
// found a duplicate, or a new version of one held already), a refusal at the door is recorded
// for status, and an object that opens a study (new, or reopened) wakes whoever waits for
// instances. The rows of objects received at the same time share one commit (group_commit.h).
// Sees only the catalog's ingest part.
#pragma once

#include <functional>
#include <string>

#include "catalog/group_commit.h"
#include "catalog/ingest_ledger.h"
#include "ingest/dimse_scp/scp.h"
#include "ingest/prescan/prescan.h"
#include "ingest/spool/spool.h"

namespace dirgw::ingest {

// The catalog row for a pre-scanned, stored object.
catalog::NewInstance new_instance(const PrescanResult& scan, const StoredObject& object,
                                  const std::string& calling_ae, const std::string& peer);

// How the catalog tells the same instance in other bytes from a new version: the content key of
// the object at `file`, and of a held object in `spool` (ingest::content_key_file).
catalog::NewInstance::ContentCheck content_check(const Spool& spool, std::filesystem::path file,
                                                 const PrescanLimits& limits);

class CatalogSink final : public ObjectSink {
 public:
  CatalogSink(catalog::IngestLedger& ledger, std::function<void()> instance_received,
              catalog::NewVersionPolicy new_versions)
      : ledger_(ledger),
        commits_(ledger),
        instance_received_(std::move(instance_received)),
        new_versions_(new_versions) {}

  Result<SinkOutcome> object_received(const ReceivedObject& object) override;
  using ObjectSink::refused;
  void refused(const DoorRefusal& refusal) override;
  // Security refusals (who may call, TLS) are also handed here, for the audit trail.
  void set_audit(std::function<void(const DoorRefusal&)> audit) { audit_ = std::move(audit); }
  // Every door's objects share one group commit (group_commit.h).
  catalog::GroupCommit& group_commit() { return commits_; }
  // send_while_receiving: every stored instance wakes, not only one that opens a study (its own
  // checks let it go before the study is stable).
  void set_wake_on_every_instance(bool on) { wake_every_instance_ = on; }
  // An SOP instance held already and received in other bytes is compared by content with the
  // versions held (objects of `spool`, read under `limits`): the same content is a duplicate,
  // whose own file is not kept. Without this, any other bytes are a new version.
  void check_content(const Spool& spool, const PrescanLimits& limits) {
    spool_ = &spool;
    limits_ = limits;
  }

 private:
  void read_keys_before_commit(catalog::NewInstance& in, const std::filesystem::path& file) const;

  catalog::IngestLedger& ledger_;
  catalog::GroupCommit commits_;
  std::function<void()> instance_received_;
  catalog::NewVersionPolicy new_versions_;
  std::function<void(const DoorRefusal&)> audit_;
  bool wake_every_instance_ = false;
  const Spool* spool_ = nullptr;
  PrescanLimits limits_;
};

}  // namespace dirgw::ingest
