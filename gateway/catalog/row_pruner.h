// Catalog row pruning (issue 15, retention.report_days, docs/verification.md): the rows of a
// finished study received last before the report period's start are removed, compactly kept as
// figures in pruned_counts (schema 24) that the daily report adds back (day_report.cpp), so an
// old day's report says the same. Finished: every destination VERIFIED, PURGED, WITHDRAWN or
// FAILED; every delivery final (verified, withdrawn, superseded, failed: no verification
// pending); every object of it purged from the spool (a row is never removed while its file is
// there: start-up reconciliation would adopt the file as new). The audit trail is not touched.
// The refusals older than the period go as well (a scanner refused all year must not grow the
// catalog without end).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "catalog/database.h"

namespace dirgw::catalog {

struct PrunableStudy {
  std::int64_t id = 0;
  std::string study_uid;
  std::int64_t instances = 0;
  std::int64_t last_received_at = 0;
};

struct PruneResult {
  std::int64_t studies = 0, instances = 0, refusals = 0;
};

class RowPruner {
 public:
  explicit RowPruner(Database& db) : db_(db) {}
  // Finished studies last received before `before_ms`, oldest first, at most `limit`.
  Result<std::vector<PrunableStudy>> prunable(std::int64_t before_ms, int limit);
  // Folds the figures of every such study into pruned_counts and removes its rows: a
  // transaction per `batch` studies (the conditions checked again inside it).
  Result<PruneResult> prune(std::int64_t before_ms, int batch = 200);

 private:
  Result<PruneResult> prune_batch(std::int64_t before_ms, int batch);
  Result<std::int64_t> prune_refusals(std::int64_t before_ms, int batch);
  Database& db_;
};

}  // namespace dirgw::catalog
