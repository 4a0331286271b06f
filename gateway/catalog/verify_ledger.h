// The catalog's verification and retention part (issue 15, docs/verification.md): which sent
// deliveries are due a check against the repository, what the check found (verified, missing and
// queued again, lost too often), and which spool objects every destination has verified and may
// therefore be removed. Files are removed by the caller (verify/retention); this part only
// records.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "catalog/database.h"
#include "catalog/types.h"

namespace dirgw::catalog {

// A study with deliveries the repository acknowledged and nobody has checked yet.
struct VerifyStudy {
  std::int64_t study_id = 0;
  std::string study_uid;
};

// One acknowledged instance, as the repository should list it (the derived copy's UID where a
// de-identified copy went).
struct VerifyInstance {
  std::int64_t instance_id = 0;
  std::string sop_instance_uid, sop_class_uid, series_uid;
  std::uint64_t size = 0;
  bool own_uids = false;  // a de-identified copy: study and series UIDs differ from ours
};

enum class VerifyVerdict {
  kListed,    // listed with the same SOP Class: verified
  kMissing,   // not listed: sent again (up to the limit)
  kMismatch,  // listed as another SOP Class: failed, a person must look
};

struct VerifyFinding {
  std::int64_t instance_id = 0;
  VerifyVerdict verdict = VerifyVerdict::kMissing;
};

struct VerifyRecorded {
  int verified = 0, requeued = 0, failed = 0;
  std::uint64_t verified_bytes = 0;
  std::optional<StudyState> study_state;  // when the study moved
};

// A spool object every destination has verified (or never needed: withdrawn, superseded).
struct PurgeCandidate {
  std::string sha256;
  std::uint64_t size = 0;
  std::int64_t verified_at = 0;
  std::vector<std::string> derived;  // its derived copies' hashes (spool/derived)
  // objects.content_key: known already, or to be recorded with the purge (read from the file
  // before it goes; "" when it cannot be read), for an instance received again after the purge.
  bool content_known = false;
  std::string content_key;
};

// A storage commitment request (schema 23): a Transaction UID dirgw issued for one study and
// destination.
struct CommitmentTransaction {
  std::string transaction_uid, destination, state;  // pending | answered | expired | failed
  std::int64_t study_id = 0;
  std::int64_t deadline = 0;
};

struct PurgeSummary {
  std::vector<PurgeCandidate> marked;  // the objects recorded purged: remove these files
  std::int64_t bytes = 0;
};

class VerifyLedger {
 public:
  explicit VerifyLedger(Database& db) : db_(db) {}

  // SENT studies of `destination` with deliveries acknowledged at or before `sent_before` and
  // whose last failed check asked to be retried no later than `now`; oldest first.
  Result<std::vector<VerifyStudy>> due_studies(const std::string& destination,
                                               std::int64_t sent_before, std::int64_t now,
                                               int limit);
  // When the next check falls due (sent_at + delay, or a retry time), if anything waits.
  Result<std::optional<std::int64_t>> next_due(const std::string& destination,
                                               std::int64_t delay_ms);
  Result<std::vector<VerifyInstance>> sent_instances(std::int64_t study_id,
                                                     const std::string& destination);
  // One study's findings in one transaction: listed -> 'verified'; missing -> 'pending' again
  // (resends + 1) or, past max_resends, 'failed'; mismatch -> 'failed'. The study moves to
  // VERIFIED, READY (sent again) or FAILED, with audit events.
  Result<VerifyRecorded> record_verification(const std::string& destination, std::int64_t study_id,
                                             const std::vector<VerifyFinding>& findings,
                                             int max_resends);
  // The check could not run (QIDO refused, time-out...): shown on the study row, tried again
  // at retry_at; nothing is assumed.
  Result<void> record_verification_error(const std::string& destination, std::int64_t study_id,
                                         const std::string& error, std::int64_t retry_at);

  // Storage commitment (verify: storage-commitment). Records the N-ACTION before it goes, and
  // leaves the study's sent deliveries alone until `deadline` (verify_next_at), without an error.
  Result<void> record_commitment_request(const CommitmentTransaction& t, int instances,
                                         std::int64_t requested_at);
  Result<std::optional<CommitmentTransaction>> commitment_transaction(const std::string& uid);
  // The transaction's outcome: answered (with counts), failed (the N-ACTION did not go).
  Result<void> record_commitment_answer(const std::string& uid, const std::string& state,
                                        int committed, int failed);
  // Pending transactions of the study past their deadline become 'expired'; how many did.
  Result<int> expire_commitments(const std::string& destination, std::int64_t study_id,
                                 std::int64_t now);

  // Objects verified by every destination at or before `verified_before`, not yet purged,
  // oldest verification first.
  Result<std::vector<PurgeCandidate>> purgeable(std::int64_t verified_before, int limit);
  // Earliest verification time among objects not yet purged.
  Result<std::optional<std::int64_t>> oldest_unpurged();
  // Marks objects purged (their files are removed after this commits), moves studies whose
  // objects are all purged to PURGED, one objects_purged audit event per study. Checks again,
  // inside the transaction, that every delivery is still verified: an object that is not is
  // left alone (and not counted).
  Result<PurgeSummary> record_purged(const std::vector<PurgeCandidate>& objects,
                                     const std::string& reason);

 private:
  Database& db_;
};

}  // namespace dirgw::catalog
