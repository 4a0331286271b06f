// The catalog's report part (issue 12): reports received over HL7 v2, kept from before their
// ACK until they have become a DICOM object of their study, their versions, and the Accession
// Number of each study (read once from one of its images) by which a report finds its study.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "catalog/database.h"

namespace dirgw::catalog {

struct StoredReport {
  std::int64_t id = 0;
  std::string message_key, report_key, accession, status, state, reason, message;
  std::int64_t received_at = 0;
  std::string study_uid, sop_instance_uid, sop_class_uid, series_uid;
  int version = 0;
};

struct ReportAdded {
  std::int64_t id = 0;
  // The same message was received before (its control ID and content, or its content as a
  // version already made): nothing added; `id` is the row it was stored as.
  bool known = false;
  // A control ID received before with other content: this one was stored under
  // "<message_key>#<digest>" (the other report is not hidden by it).
  bool control_id_reused = false;
};

struct StudyToIndex {
  std::int64_t study_id = 0;
  std::string image_sha256;  // "" when the study holds no received image
};

struct StudyMatch {
  std::int64_t study_id = 0;
  std::string study_uid, patient_id, image_sha256;
};

struct ReportCounts {
  std::string state;
  std::int64_t count = 0;
  std::int64_t oldest_at = 0;
};

class ReportLedger {
 public:
  explicit ReportLedger(Database& db) : db_(db) {}

  // Committed (synchronous=FULL) before the caller acknowledges the message. state: "waiting"
  // or "held". `body_sha256`: the digest of the message's segments after MSH.
  Result<ReportAdded> add(const std::string& message_key, const std::string& report_key,
                          const std::string& accession, const std::string& status,
                          const std::string& state, const std::string& message,
                          const std::string& body_sha256);
  Result<std::optional<StoredReport>> get(std::int64_t id);
  // Reports in `state`, oldest first.
  Result<std::vector<StoredReport>> in_state(const std::string& state, int limit);
  // The newest version of a report already made into an object (the predecessor of the next).
  Result<std::optional<StoredReport>> latest_version(const std::string& report_key);
  // The report is an object of its study now: its identity recorded, its message dropped, and
  // held preliminary versions of the same report superseded.
  Result<void> mark_done(const StoredReport& done);
  Result<void> mark(std::int64_t id, const std::string& state, const std::string& reason);
  // A refused or expired report sent again: waiting again, its wait counted from now.
  Result<void> wait_again(std::int64_t id);
  Result<std::vector<ReportCounts>> counts();
  // The newest reports (all states, or one), without their messages: for `dirgw reports`.
  Result<std::vector<StoredReport>> recent(const std::string& state, int limit);
  // Waiting reports older than `max_age_ms`, then the oldest beyond `max_waiting`, become
  // "expired" (kept with their message and a reason, never dropped). Returns how many.
  Result<int> expire_waiting(std::int64_t max_age_ms, int max_waiting);

  // Studies not yet indexed (newer than the last indexed), each with its first received image.
  Result<std::vector<StudyToIndex>> unindexed_studies(int limit);
  // Studies indexed without an accession (their first image had none: a modality that started
  // before the worklist was picked) that have received another image since: its object, to be
  // read again. Among the newest 1000 such studies (older ones are not looked at again).
  Result<std::vector<StudyToIndex>> blank_accession_studies(int limit);
  Result<void> put_accession(std::int64_t study_id, const std::string& accession,
                             const std::string& patient_id, const std::string& image_sha256);
  Result<std::vector<StudyMatch>> studies_with_accession(const std::string& accession);

 private:
  Database& db_;
};

}  // namespace dirgw::catalog
