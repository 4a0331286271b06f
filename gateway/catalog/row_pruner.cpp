#include "catalog/row_pruner.h"

#include "catalog/internal.h"

namespace dirgw::catalog {

namespace {

// Finished and older than ?1 (see row_pruner.h), oldest first.
constexpr const char* kPrunable =
    "SELECT s.id, s.study_uid, s.instance_count, s.last_received_at FROM studies s "
    "WHERE s.last_received_at < ?1 "
    "AND EXISTS (SELECT 1 FROM study_destinations sd WHERE sd.study_id = s.id) "
    "AND NOT EXISTS (SELECT 1 FROM study_destinations sd WHERE sd.study_id = s.id "
    "AND sd.state NOT IN ('VERIFIED', 'PURGED', 'WITHDRAWN', 'FAILED')) "
    "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.study_id = s.id AND d.state NOT IN "
    "('verified', 'withdrawn', 'superseded', "
    "'failed')) "
    "AND NOT EXISTS (SELECT 1 FROM instances i JOIN objects o ON o.sha256 = i.object_sha256 "
    "WHERE i.study_id = s.id AND o.purged_at IS NULL) "
    "ORDER BY s.last_received_at, s.id LIMIT ?2";

std::vector<PrunableStudy> select_prunable(Connection& db, std::int64_t before_ms, int limit) {
  auto st = db.prepare(kPrunable);
  st.bind(1, before_ms).bind(2, limit);
  std::vector<PrunableStudy> out;
  while (st.step()) out.push_back({st.int64(0), st.text(1), st.int64(2), st.int64(3)});
  return out;
}

// The study's figures, added to pruned_counts: instances per 15-minute bucket and the study once,
// in the bucket of its first instance (per source, per destination and in total).
void fold_counts(Connection& db, std::int64_t study_id) {
  constexpr const char* kUpsert =
      " ON CONFLICT (bucket, kind, name, outcome) DO UPDATE SET "
      "instances = instances + excluded.instances, studies = studies + excluded.studies";
  const std::string sqls[] = {
      "INSERT INTO pruned_counts SELECT received_at / 900000 * 900000, 'total', '', '', "
      "count(*), 0 FROM instances WHERE study_id = ?1 GROUP BY 1",
      "INSERT INTO pruned_counts SELECT min(received_at) / 900000 * 900000, 'total', '', '', 0, 1 "
      "FROM instances WHERE study_id = ?1 GROUP BY study_id",
      "INSERT INTO pruned_counts SELECT received_at / 900000 * 900000, 'source', source, '', "
      "count(*), 0 FROM instances WHERE study_id = ?1 GROUP BY 1, 3",
      "INSERT INTO pruned_counts SELECT min(received_at) / 900000 * 900000, 'source', source, '', "
      "0, 1 FROM instances WHERE study_id = ?1 GROUP BY source",
      "INSERT INTO pruned_counts SELECT i.received_at / 900000 * 900000, 'destination', "
      "d.destination, d.state, count(*), 0 FROM instances i JOIN deliveries d "
      "ON d.instance_id = i.id WHERE i.study_id = ?1 GROUP BY 1, 3, 4",
      "INSERT INTO pruned_counts SELECT min(i.received_at) / 900000 * 900000, 'destination', "
      "d.destination, '', 0, 1 FROM instances i JOIN deliveries d ON d.instance_id = i.id "
      "WHERE i.study_id = ?1 GROUP BY d.destination"};
  // Each SELECT has its WHERE, so SQLite does not read ON CONFLICT as a join constraint.
  for (const auto& sql : sqls) db.prepare(sql + kUpsert).bind(1, study_id).run();
}

}  // namespace

Result<std::vector<PrunableStudy>> RowPruner::prunable(std::int64_t before_ms, int limit) {
  return db_.read([&](Connection& db) -> Result<std::vector<PrunableStudy>> {
    return select_prunable(db, before_ms, limit);
  });
}

Result<PruneResult> RowPruner::prune(std::int64_t before_ms, int batch) {
  PruneResult total;
  for (;;) {
    auto r = prune_batch(before_ms, batch);
    if (!r) return r.error();
    total.studies += r->studies;
    total.instances += r->instances;
    if (r->studies < batch) break;
  }
  // Oldest first, so that the ids left are contiguous (queries.cpp counts them by their ends).
  for (;;) {
    auto n = prune_refusals(before_ms, batch * 25);
    if (!n) return n.error();
    total.refusals += *n;
    if (*n < batch * 25) return total;
  }
}

Result<std::int64_t> RowPruner::prune_refusals(std::int64_t before_ms, int batch) {
  return db_.write([&](Connection& db) -> Result<std::int64_t> {
    // A prefix by id, up to the first row still inside the period (even if the clock once went
    // back and a later row is older): the ids left stay contiguous.
    std::int64_t last = 0, n = 0;
    {
      auto oldest = db.prepare("SELECT id, at FROM refusals ORDER BY id LIMIT ?1");
      oldest.bind(1, static_cast<std::int64_t>(batch));
      while (oldest.step() && oldest.int64(1) < before_ms) {
        last = oldest.int64(0);
        ++n;
      }
    }  // the read is finished before the rows go
    if (n > 0) db.prepare("DELETE FROM refusals WHERE id <= ?1").bind(1, last).run();
    return n;
  });
}

Result<PruneResult> RowPruner::prune_batch(std::int64_t before_ms, int batch) {
  return db_.write([&](Connection& db) -> Result<PruneResult> {
    PruneResult r;
    for (const auto& s : select_prunable(db, before_ms, batch)) {
      fold_counts(db, s.id);
      delete_study_rows(db, s.id);  // their files are gone already
      ++r.studies;
      r.instances += s.instances;
    }
    return r;
  });
}

}  // namespace dirgw::catalog
