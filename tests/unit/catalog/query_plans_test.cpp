// The catalog stays flat at millions of instances (issue 16, docs/performance.md section 5): every
// statement that start-up, the ingest path, the forwarder's due query and `dirgw status` run
// must reach the large tables (instances, studies, deliveries, objects, study_destinations,
// audit_events) through an index, never a SCAN. Asserted on the query plans, not on time: the
// statements are captured as the catalog really runs them (sqlite3_trace_v2 on every connection
// this process opens) and each is put through EXPLAIN QUERY PLAN.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <regex>
#include <set>
#include <string>

#include "catalog/catalog.h"
#include "catalog/sqlite/sqlite.h"
#include "fakes/fake_clock.h"

namespace dirgw::catalog {
namespace {

namespace fs = std::filesystem;

std::mutex g_mutex;
std::set<std::string> g_statements;  // every statement run by any connection, unexpanded

int trace(unsigned, void*, void* stmt, void*) {
  const char* sql = sqlite3_sql(static_cast<sqlite3_stmt*>(stmt));
  if (sql != nullptr) {
    std::lock_guard lock(g_mutex);
    g_statements.insert(sql);
  }
  return 0;
}

int install_trace(sqlite3* db, const char**, const sqlite3_api_routines*) {
  sqlite3_trace_v2(db, SQLITE_TRACE_STMT, trace, nullptr);
  return SQLITE_OK;
}

class PlansTempDir {
 public:
  PlansTempDir() {
    char tmpl[] = "/tmp/dirgw-plans-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~PlansTempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

NewInstance instance(const std::string& study, int n, char sha_fill) {
  NewInstance in;
  in.study_uid = study;
  in.series_uid = study + ".1";
  in.sop_instance_uid = study + ".1." + std::to_string(n);
  in.sop_class_uid = "1.2.840.10008.5.1.4.1.1.2";
  in.transfer_syntax = "1.2.840.10008.1.2.1";
  in.modality = "CT";
  in.sha256 = std::string(63, sha_fill) + std::to_string(n % 10);
  in.size = 1000;
  in.calling_ae = "PACS1";
  in.source = "dicom:PACS1";
  return in;
}

// "SCAN <table>" of a large table, unless the statement only reads the newest row by its key
// (ORDER BY <key> DESC LIMIT 1: one step from the end of the b-tree) or the scan is of a partial
// index (which holds only the rows the statement is about, e.g. the backlog).
bool scans_a_large_table(const std::string& sql, const std::string& detail) {
  static const std::regex kLarge(
      "^SCAN (instances|studies|deliveries|objects|study_destinations|audit_events|i|d|sd|s|o)"
      "\\b");
  static const std::regex kNewest("ORDER BY \\w+ DESC LIMIT 1");
  static const std::regex kPartial("USING (COVERING )?INDEX (deliveries_open|objects_unpurged)");
  if (!std::regex_search(detail, kLarge)) return false;
  if (std::regex_search(sql, kNewest)) return false;
  return !std::regex_search(detail, kPartial);
}

TEST(QueryPlans, HotStatementsUseIndexesNotScans) {
  ASSERT_EQ(sqlite3_auto_extension(reinterpret_cast<void (*)()>(install_trace)), SQLITE_OK);
  PlansTempDir dir;
  testing::FakeClock clock;
  {
    auto c = Catalog::open(dir.path() / "catalog.db", {"hdirs", "backup"}, clock);
    ASSERT_TRUE(c.ok()) << c.error().to_string();
    auto& catalog = **c;
    {
      std::lock_guard lock(g_mutex);
      g_statements.clear();  // the migrations' one-time statements are not the hot path
    }
    // Start-up.
    ASSERT_TRUE(catalog.ingest.begin_run().ok());
    ASSERT_TRUE(catalog.ingest.has_object(std::string(64, 'a')).ok());
    ASSERT_TRUE(catalog.ingest.object_hashes("ab").ok());
    ASSERT_TRUE(catalog.ingest.each_open_object([](const std::string&) {}).ok());
    ASSERT_TRUE(catalog.delivery.recover_interrupted_sends().ok());
    // Ingest: new study, more instances, an identical resend, a new version.
    for (int n = 1; n <= 3; ++n)
      ASSERT_TRUE(catalog.ingest.record_instance(instance("1.2.3", n, 'a')).ok());
    ASSERT_TRUE(catalog.ingest.record_instance(instance("1.2.3", 1, 'a')).ok());
    ASSERT_TRUE(catalog.ingest.record_instance(instance("1.2.3", 2, 'b')).ok());
    std::vector<NewInstance> batch{instance("1.2.4", 1, 'c'), instance("1.2.4", 2, 'c')};
    std::vector<const NewInstance*> ptrs{&batch[0], &batch[1]};
    for (const auto& r : catalog.ingest.record_instances(ptrs, NewVersionPolicy::kSend))
      ASSERT_TRUE(r.ok());
    ASSERT_TRUE(catalog.ingest.flag_missing_object(std::string(63, 'c') + "2").ok());
    // Readiness and the forwarder's due query.
    ASSERT_TRUE(catalog.ingest.oldest_receiving().ok());
    clock.advance(std::chrono::hours(2));
    ASSERT_TRUE(catalog.ingest.promote_stable(to_epoch_ms(clock.now())).ok());
    ASSERT_TRUE(
        catalog.delivery.due_deliveries("hdirs", to_epoch_ms(clock.now()), 50, 1 << 26).ok());
    ASSERT_TRUE(catalog.delivery.next_due("hdirs").ok());
    // Verification and retention, which run from the start.
    const std::int64_t now = to_epoch_ms(clock.now());
    ASSERT_TRUE(catalog.verify.due_studies("hdirs", now, now, 10).ok());
    ASSERT_TRUE(catalog.verify.next_due("hdirs", 60000).ok());
    ASSERT_TRUE(catalog.verify.purgeable(now, 100).ok());
    ASSERT_TRUE(catalog.verify.oldest_unpurged().ok());
    // Status.
    ASSERT_TRUE(catalog.queries.status().ok());
    ASSERT_TRUE(catalog.queries.verification().ok());
    ASSERT_TRUE(catalog.ingest.end_run().ok());
  }
  sqlite3_cancel_auto_extension(reinterpret_cast<void (*)()>(install_trace));

  sqlite::Connection db((dir.path() / "catalog.db").string(), /*read_only=*/true);
  std::set<std::string> statements;
  {
    std::lock_guard lock(g_mutex);
    statements = g_statements;
  }
  int checked = 0;
  for (const auto& sql : statements) {
    if (sql.rfind("SELECT", 0) != 0 && sql.rfind("UPDATE", 0) != 0 && sql.rfind("DELETE", 0) != 0 &&
        sql.rfind("INSERT", 0) != 0 && sql.rfind("WITH", 0) != 0)
      continue;  // PRAGMA, BEGIN, COMMIT, SAVEPOINT, the migrations' DDL
    sqlite3_stmt* plan = nullptr;
    const std::string explain = "EXPLAIN QUERY PLAN " + sql;
    ASSERT_EQ(sqlite3_prepare_v2(db.raw(), explain.c_str(), -1, &plan, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db.raw()) << "\n"
        << sql;
    while (sqlite3_step(plan) == SQLITE_ROW) {
      const std::string detail = reinterpret_cast<const char*>(sqlite3_column_text(plan, 3));
      EXPECT_FALSE(scans_a_large_table(sql, detail)) << detail << "\n  in: " << sql;
    }
    sqlite3_finalize(plan);
    ++checked;
  }
  EXPECT_GT(checked, 30) << "the trace captured too few statements to mean anything";
}

// The counters status reads (schema 27) are what a recount of the rows gives, after ingest, a
// new version (superseded), a missing file (failed), readiness and a batch begun.
std::string rows(sqlite::Connection& db, const std::string& sql) {
  std::string out;
  auto st = db.prepare(sql);
  while (st.step()) {
    for (int i = 0; i < 6; ++i) out += st.text(i) + "|";
    out += "\n";
  }
  return out;
}

TEST(QueryPlans, CountersAgreeWithARecount) {
  PlansTempDir dir;
  testing::FakeClock clock;
  {
    auto c = Catalog::open(dir.path() / "catalog.db", {"hdirs", "backup"}, clock);
    ASSERT_TRUE(c.ok()) << c.error().to_string();
    auto& catalog = **c;
    for (int n = 1; n <= 4; ++n)
      ASSERT_TRUE(catalog.ingest.record_instance(instance("1.2.3", n, 'a')).ok());
    ASSERT_TRUE(catalog.ingest.record_instance(instance("1.2.3", 2, 'b')).ok());
    ASSERT_TRUE(catalog.ingest.record_instance(instance("1.2.5", 1, 'c')).ok());
    ASSERT_TRUE(catalog.ingest.flag_missing_object(std::string(63, 'c') + "1").ok());
    clock.advance(std::chrono::hours(2));
    ASSERT_TRUE(catalog.ingest.promote_stable(to_epoch_ms(clock.now())).ok());
    auto status = catalog.queries.status();
    ASSERT_TRUE(status.ok());
    EXPECT_EQ(status->instances, 6);
    EXPECT_EQ(status->destinations[0].pending_instances, 4) << "1.2.3: 4 open, 1 superseded";
  }
  sqlite::Connection db((dir.path() / "catalog.db").string(), /*read_only=*/true);
  EXPECT_EQ(rows(db,
                 "SELECT destination, state, studies, deliveries, open, open_bytes FROM "
                 "study_destination_counts WHERE studies != 0 ORDER BY 1, 2"),
            rows(db,
                 "SELECT sd.destination, sd.state, count(*), sum((SELECT count(*) FROM deliveries "
                 "d WHERE d.study_id = sd.study_id AND d.destination = sd.destination AND d.state "
                 "!= 'superseded')), sum((SELECT count(*) FROM deliveries d WHERE d.study_id = "
                 "sd.study_id AND d.destination = sd.destination AND d.state IN ('pending', "
                 "'sending'))), sum((SELECT coalesce(sum(i.size), 0) FROM deliveries d JOIN "
                 "instances i ON i.id = d.instance_id WHERE d.study_id = sd.study_id AND "
                 "d.destination = sd.destination AND d.state IN ('pending', 'sending'))) FROM "
                 "study_destinations sd GROUP BY 1, 2 ORDER BY 1, 2"));
  EXPECT_EQ(rows(db,
                 "SELECT destination, state, deliveries, 0, 0, 0 FROM delivery_counts "
                 "WHERE deliveries != 0 ORDER BY 1, 2"),
            rows(db,
                 "SELECT destination, state, count(*), 0, 0, 0 FROM deliveries GROUP BY 1, 2 "
                 "ORDER BY 1, 2"));
  EXPECT_EQ(rows(db,
                 "SELECT state, studies, instances, bytes, 0, 0 FROM study_counts "
                 "WHERE studies != 0 ORDER BY 1"),
            rows(db,
                 "SELECT state, count(*), sum(instance_count), sum(byte_count), 0, 0 FROM studies "
                 "GROUP BY 1 ORDER BY 1"));
  EXPECT_EQ(rows(db,
                 "SELECT kind, objects, bytes, 0, 0, 0 FROM object_counts WHERE objects != 0 "
                 "ORDER BY 1"),
            rows(db,
                 "SELECT CASE WHEN purged_at IS NOT NULL THEN 'purged' WHEN verified_at IS NOT "
                 "NULL THEN 'verified' ELSE 'held' END AS k, count(*), sum(size), 0, 0, 0 FROM "
                 "objects GROUP BY 1 ORDER BY 1"));
}

}  // namespace
}  // namespace dirgw::catalog
