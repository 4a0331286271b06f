// The catalog's pull part (issue 12, ingest.pull): per PACS the durable poll point and schedule,
// per study found there what we hold of it. The objects themselves arrive through the DICOM
// receiver and are recorded by the ingest part like any other.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "catalog/database.h"

namespace dirgw::catalog {

struct PullSourceRow {
  std::string name;
  std::int64_t last_poll_at = 0, last_ok_at = 0, next_poll_at = 0;
  int failures = 0;
  std::string last_error;
};

struct PullStudyRow {
  std::string source, study_uid;
  std::int64_t reported = -1;  // what the PACS said the study holds; -1: unknown
  std::int64_t held = 0;
  // complete | incomplete | gone (the PACS answered no match to a query by UID kNotFoundToGone
  // times in a row: not asked for again unless a poll finds it again) | skipped (its modalities
  // are not in the source's filter: never retrieved unless the PACS lists one that is)
  std::string state = "incomplete";
  int pulls = 0, failures = 0;
  std::int64_t next_try_at = 0;
  std::string last_error;
  std::int64_t first_seen_at = 0, pulled_at = 0;
  int not_found = 0;  // queries by UID in a row that the PACS answered with no match
};

struct PullSummary {
  std::int64_t complete = 0, incomplete = 0, gone = 0, skipped = 0;
  std::vector<PullStudyRow> incomplete_studies;  // the oldest few, for status
};

class PullLedger {
 public:
  explicit PullLedger(Database& db) : db_(db) {}

  // The source's row (a fresh one when it was never polled).
  Result<PullSourceRow> source(const std::string& name);
  Result<void> save_source(const PullSourceRow& row);
  Result<std::optional<PullStudyRow>> study(const std::string& source,
                                            const std::string& study_uid);
  Result<void> save_study(const PullStudyRow& row);
  // Distinct SOP instances of the study in the catalog, whatever door they came through.
  Result<std::int64_t> held_instances(const std::string& study_uid);
  Result<PullSummary> summary(const std::string& source, int limit = 10);

 private:
  Database& db_;
};

}  // namespace dirgw::catalog
