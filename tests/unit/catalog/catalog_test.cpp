#include "catalog/catalog.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "catalog/migrations.h"
#include "catalog/sqlite/sqlite.h"
#include "fakes/admit.h"
#include "fakes/fake_clock.h"

namespace dirgw::catalog {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/dirgw-catalog-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

NewInstance instance(const std::string& study, int n, const std::string& sha = "") {
  NewInstance in;
  in.study_uid = study;
  in.series_uid = study + ".1";
  in.sop_instance_uid = study + ".1." + std::to_string(n);
  in.sop_class_uid = "1.2.840.10008.5.1.4.1.1.2";
  in.transfer_syntax = "1.2.840.10008.1.2.1";
  in.modality = "CT";
  in.sha256 =
      sha.empty() ? std::string(64, static_cast<char>('a' + n % 6)) + std::to_string(n) : sha;
  in.size = 1000;
  in.calling_ae = "PACS1";
  return in;
}

std::string state_of(Catalog& c, const std::string& study, const std::string& dest) {
  auto list = c.queries.studies("", 1000);
  for (const auto& s : *list)
    if (s.study_uid == study)
      for (const auto& [name, state] : s.destination_states)
        if (name == dest) return state;
  return "<none>";
}

TEST(Migrations, FreshDatabaseReachesLatestSchema) {
  TempDir dir;
  sqlite::Connection db((dir.path() / "c.db").string());
  auto from = migrate(db);
  ASSERT_TRUE(from.ok());
  EXPECT_EQ(*from, 0);
  auto st = db.prepare("PRAGMA user_version");
  st.step();
  EXPECT_EQ(st.int64(0), latest_schema_version());
  EXPECT_GE(latest_schema_version(), 2);
  // Every table of every migration exists.
  for (const char* table :
       {"objects", "studies", "instances", "study_destinations", "deliveries", "refusals"}) {
    auto t = db.prepare("SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?1");
    t.bind(1, table);
    t.step();
    EXPECT_EQ(t.int64(0), 1) << table;
  }
}

TEST(Migrations, UpgradeFromSchemaOneKeepsData) {
  TempDir dir;
  const auto path = (dir.path() / "c.db").string();
  {
    sqlite::Connection db(path);
    ASSERT_TRUE(migrate(db, 1).ok());
    db.exec(
        "INSERT INTO studies(study_uid, state, first_received_at, last_received_at, "
        "instance_count) VALUES ('1.2.3', 'STABLE', 1, 2, 7)");
  }
  sqlite::Connection db(path);
  auto from = migrate(db);
  ASSERT_TRUE(from.ok());
  EXPECT_EQ(*from, 1);
  auto st = db.prepare("SELECT state, instance_count FROM studies WHERE study_uid = '1.2.3'");
  ASSERT_TRUE(st.step());
  EXPECT_EQ(st.text(0), "STABLE");
  EXPECT_EQ(st.int64(1), 7);
  auto v = db.prepare("PRAGMA user_version");
  v.step();
  EXPECT_EQ(v.int64(0), latest_schema_version());
  // Running again is a no-op.
  EXPECT_EQ(*migrate(db), latest_schema_version());
}

TEST(Migrations, RefusesNewerDatabase) {
  TempDir dir;
  sqlite::Connection db((dir.path() / "c.db").string());
  db.exec("PRAGMA user_version = 999");
  auto r = migrate(db);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kCatalogSchema);
}

class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Catalog::open(dir_.path() / "catalog.db", {"hdirs", "backup"}, clock_);
    ASSERT_TRUE(c.ok()) << c.error().to_string();
    catalog_ = std::move(c).value();
  }
  TempDir dir_;
  testing::FakeClock clock_;
  std::unique_ptr<Catalog> catalog_;
};

TEST_F(CatalogTest, RecordsNewInstanceWithDeliveryPerDestination) {
  auto r = catalog_->ingest.record_instance(instance("1.2.3", 1));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kind, RecordKind::kNew);
  auto s = catalog_->queries.status();
  EXPECT_EQ(s->studies, 1);
  EXPECT_EQ(s->instances, 1);
  ASSERT_EQ(s->destinations.size(), 2u);
  EXPECT_EQ(s->destinations[0].pending_instances, 1);
  EXPECT_EQ(s->destinations[1].pending_instances, 1);
  EXPECT_EQ(state_of(*catalog_, "1.2.3", "hdirs"), kReceiving);
}

TEST_F(CatalogTest, IdenticalResendIsDuplicateAndAddsNothing) {
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", 1, std::string(64, 'f'))).ok());
  auto r = catalog_->ingest.record_instance(instance("1.2.3", 1, std::string(64, 'f')));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kind, RecordKind::kDuplicate);
  EXPECT_EQ(catalog_->queries.status()->instances, 1);
  EXPECT_EQ(catalog_->queries.status()->destinations[0].pending_instances, 1);
}

// The SCP's object is made durable inside the catalog's transaction (its flush ran beside the
// statements): before_commit runs after the instance's rows are written and before they can
// commit, and an instance whose data cannot be made durable is rolled back alone.
TEST_F(CatalogTest, AnInstanceWhoseDataCannotBeMadeDurableIsRolledBackAlone) {
  std::vector<std::string> calls;
  NewInstance failing = instance("1.2.3", 1), kept = instance("1.2.3", 2);
  failing.before_commit = [&]() -> Result<void> {
    calls.push_back("failing");
    return make_error(ErrorCode::kIo, "fsync received object: Input/output error");
  };
  kept.before_commit = [&]() -> Result<void> {
    calls.push_back("kept");
    // Inside the transaction: the rows are written, not yet visible to the reader connection.
    EXPECT_EQ(catalog_->queries.status()->instances, 0);
    return {};
  };
  auto out = catalog_->ingest.record_instances({&failing, &kept}, NewVersionPolicy::kSend);
  ASSERT_EQ(out.size(), 2u);
  ASSERT_FALSE(out[0].ok());
  EXPECT_EQ(out[0].error().code, ErrorCode::kIo);
  ASSERT_TRUE(out[1].ok()) << out[1].error().to_string();
  EXPECT_EQ(calls, (std::vector<std::string>{"failing", "kept"}));
  auto s = catalog_->queries.status();
  EXPECT_EQ(s->studies, 1);
  EXPECT_EQ(s->instances, 1);
  EXPECT_EQ(s->destinations[0].pending_instances, 1);
  auto detail = catalog_->queries.study("1.2.3");
  ASSERT_TRUE(detail.ok() && detail->has_value());
  // The one alone: the same through record_instance, and nothing of it stays.
  NewInstance lone = instance("1.2.4", 1);
  lone.before_commit = [] { return Result<void>(make_error(ErrorCode::kDiskFull, "full")); };
  auto r = catalog_->ingest.record_instance(lone);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kDiskFull);
  EXPECT_EQ(catalog_->queries.status()->studies, 1);
  EXPECT_EQ(catalog_->queries.status()->instances, 1);
}

TEST_F(CatalogTest, SameInstanceOtherBytesIsNewVersion) {
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", 1, std::string(64, 'f'))).ok());
  auto r = catalog_->ingest.record_instance(instance("1.2.3", 1, std::string(64, 'e')));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kind, RecordKind::kNewVersion);
}

TEST_F(CatalogTest, StudyBecomesReadyOnlyAfterStableAge) {
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", 1)).ok());
  clock_.advance(seconds(30));
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", 2)).ok());
  // 60 s stable age: cutoff is now - 60 s; the last instance is 0 s old.
  EXPECT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now() - seconds(60))), 0);
  auto oldest = catalog_->ingest.oldest_receiving();
  ASSERT_TRUE(oldest.ok() && oldest->has_value());
  EXPECT_EQ(**oldest, to_epoch_ms(clock_.now()));
  clock_.advance(seconds(60));
  EXPECT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now() - seconds(60))), 1);
  EXPECT_EQ(state_of(*catalog_, "1.2.3", "hdirs"), kReady);
  EXPECT_FALSE(catalog_->ingest.oldest_receiving()->has_value());
}

TEST_F(CatalogTest, NothingIsDueBeforeReady) {
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", 1)).ok());
  auto due = catalog_->delivery.due_deliveries("hdirs", to_epoch_ms(clock_.now()), 10, 1 << 30);
  EXPECT_TRUE(due->empty());
}

TEST_F(CatalogTest, BatchLimitsCountAndBytes) {
  for (int i = 1; i <= 5; ++i)
    ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", i)).ok());
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  const auto now = to_epoch_ms(clock_.now());
  EXPECT_EQ(catalog_->delivery.due_deliveries("hdirs", now, 3, 1 << 30)->size(), 3u);
  EXPECT_EQ(catalog_->delivery.due_deliveries("hdirs", now, 10, 2500)->size(), 2u);
  // A single instance larger than max_bytes still goes, alone.
  EXPECT_EQ(catalog_->delivery.due_deliveries("hdirs", now, 10, 10)->size(), 1u);
}

TEST_F(CatalogTest, AllSentMakesStudySentForThatDestinationOnly) {
  for (int i = 1; i <= 2; ++i)
    ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", i)).ok());
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  auto due = catalog_->delivery.due_deliveries("hdirs", to_epoch_ms(clock_.now()), 10, 1 << 30);
  ASSERT_EQ(due->size(), 2u);
  auto begun = catalog_->delivery.begin_send("hdirs", *due);
  ASSERT_TRUE(begun.ok());
  EXPECT_EQ(begun->items.size(), 2u);
  begun->permit.release();
  EXPECT_EQ(state_of(*catalog_, "1.2.3", "hdirs"), kSending);
  std::vector<DeliveryUpdate> up;
  for (const auto& d : *due) up.push_back({d.instance_id, DeliveryResult::kDelivered, "", 0});
  ASSERT_TRUE(catalog_->delivery.record_deliveries("hdirs", up).ok());
  EXPECT_EQ(state_of(*catalog_, "1.2.3", "hdirs"), kSent);
  EXPECT_EQ(state_of(*catalog_, "1.2.3", "backup"), kReady);
  auto s = catalog_->queries.status();
  EXPECT_EQ(s->destinations[0].pending_instances, 0);
  EXPECT_GT(s->destinations[0].last_success_at, 0);
  EXPECT_EQ(s->destinations[1].pending_instances, 2);
}

TEST_F(CatalogTest, RetryWaitsUntilNextAttemptAndOnlyUnacknowledgedGoAgain) {
  for (int i = 1; i <= 3; ++i)
    ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", i)).ok());
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  auto due = *catalog_->delivery.due_deliveries("hdirs", to_epoch_ms(clock_.now()), 10, 1 << 30);
  ASSERT_EQ(due.size(), 3u);
  const auto retry_at = to_epoch_ms(clock_.now() + seconds(30));
  ASSERT_TRUE(catalog_->delivery
                  .record_deliveries(
                      "hdirs", {{due[0].instance_id, DeliveryResult::kDelivered, "", 0},
                                {due[1].instance_id, DeliveryResult::kRetry, "HTTP 503", retry_at},
                                {due[2].instance_id, DeliveryResult::kRefused, "0xA900", 0}})
                  .ok());
  EXPECT_EQ(state_of(*catalog_, "1.2.3", "hdirs"), kRetryWait);
  EXPECT_TRUE(
      catalog_->delivery.due_deliveries("hdirs", to_epoch_ms(clock_.now()), 10, 1 << 30)->empty());
  EXPECT_EQ(**catalog_->delivery.next_due("hdirs"), retry_at);
  clock_.advance(seconds(30));
  auto again = *catalog_->delivery.due_deliveries("hdirs", to_epoch_ms(clock_.now()), 10, 1 << 30);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].instance_id, due[1].instance_id);
  EXPECT_EQ(again[0].attempts, 1);
  ASSERT_TRUE(
      catalog_->delivery
          .record_deliveries("hdirs", {{again[0].instance_id, DeliveryResult::kDelivered, "", 0}})
          .ok());
  // One instance was refused for good: the study is FAILED, not SENT, and says why.
  EXPECT_EQ(state_of(*catalog_, "1.2.3", "hdirs"), kFailed);
  EXPECT_EQ(catalog_->queries.status()->destinations[0].last_error, "0xA900");
}

// Issue 17, item 8: a study of four instances, READY for hdirs.
void four_ready(Catalog& catalog, const testing::FakeClock& clock) {
  for (int i = 1; i <= 4; ++i)
    ASSERT_TRUE(catalog.ingest.record_instance(instance("1.2.3", i)).ok());
  ASSERT_EQ(testing::promote_ready(catalog, to_epoch_ms(clock.now())), 1);
}

// The next two due instances of hdirs, put on the wire (begin_send).
std::vector<DueItem> start_two(Catalog& catalog, const testing::FakeClock& clock) {
  auto due = *catalog.delivery.due_deliveries("hdirs", to_epoch_ms(clock.now()), 2, 1 << 30);
  EXPECT_EQ(due.size(), 2u);
  auto begun = catalog.delivery.begin_send("hdirs", due);
  EXPECT_TRUE(begun.ok());
  if (begun) begun->permit.release();
  return due;
}

void answer_two(Catalog& catalog, const std::vector<DueItem>& due, DeliveryResult result,
                std::int64_t retry_at = 0) {
  ASSERT_EQ(due.size(), 2u);
  const std::string error = result == DeliveryResult::kDelivered ? "" : "HTTP 503";
  ASSERT_TRUE(catalog.delivery
                  .record_deliveries("hdirs", {{due[0].instance_id, result, error, retry_at},
                                               {due[1].instance_id, result, error, retry_at}})
                  .ok());
}

// A batch that failed as a whole leaves nothing on the wire; the study's other instances (never
// tried, due now) must not keep it SENDING while the circuit is open.
TEST_F(CatalogTest, WholeBatchFailedLeavesStudyWaitingNotSending) {
  four_ready(*catalog_, clock_);
  const auto first = start_two(*catalog_, clock_);
  EXPECT_EQ(state_of(*catalog_, "1.2.3", "hdirs"), kSending);
  answer_two(*catalog_, first, DeliveryResult::kRetry, to_epoch_ms(clock_.now() + seconds(30)));
  EXPECT_EQ(state_of(*catalog_, "1.2.3", "hdirs"), kRetryWait);
  // Its untried instances still go at the next attempt, which makes it SENDING again.
  const auto next = start_two(*catalog_, clock_);
  EXPECT_EQ(state_of(*catalog_, "1.2.3", "hdirs"), kSending);
  // Those two delivered: progress, but the first two wait for their retry: RETRY_WAIT.
  answer_two(*catalog_, next, DeliveryResult::kDelivered);
  EXPECT_EQ(state_of(*catalog_, "1.2.3", "hdirs"), kRetryWait);
}

TEST_F(CatalogTest, BatchThatMadeProgressKeepsStudySendingWhileMoreIsDue) {
  four_ready(*catalog_, clock_);
  answer_two(*catalog_, start_two(*catalog_, clock_), DeliveryResult::kDelivered);
  EXPECT_EQ(state_of(*catalog_, "1.2.3", "hdirs"), kSending);
}

TEST_F(CatalogTest, LateInstanceAfterSendOpensDelta) {
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", 1)).ok());
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  auto due = *catalog_->delivery.due_deliveries("hdirs", to_epoch_ms(clock_.now()), 10, 1 << 30);
  ASSERT_TRUE(
      catalog_->delivery
          .record_deliveries("hdirs", {{due[0].instance_id, DeliveryResult::kDelivered, "", 0}})
          .ok());
  ASSERT_EQ(state_of(*catalog_, "1.2.3", "hdirs"), kSent);
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", 2)).ok());
  EXPECT_EQ(state_of(*catalog_, "1.2.3", "hdirs"), kReceiving);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  auto delta = *catalog_->delivery.due_deliveries("hdirs", to_epoch_ms(clock_.now()), 10, 1 << 30);
  ASSERT_EQ(delta.size(), 1u);  // only the new instance goes
  EXPECT_NE(delta[0].instance_id, due[0].instance_id);
}

TEST_F(CatalogTest, RefusalsAreCountedWithTheLastReason) {
  ASSERT_TRUE(catalog_->ingest
                  .record_refusal({0, "dicom", "EVIL", "127.0.0.1:1234", "calling AE not allowed"})
                  .ok());
  auto s = catalog_->queries.status();
  EXPECT_EQ(s->refusals, 1);
  ASSERT_TRUE(s->last_refusal.has_value());
  EXPECT_EQ(s->last_refusal->reason, "calling AE not allowed");
}

TEST_F(CatalogTest, ReopenKeepsEverything) {
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", 1)).ok());
  catalog_.reset();
  auto c = Catalog::open(dir_.path() / "catalog.db", {"hdirs", "backup"}, clock_);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->queries.status()->instances, 1);
  EXPECT_EQ((*c)->queries.schema_version(), latest_schema_version());
}

TEST_F(CatalogTest, DeltaIsASecondRoundAndStudyShowsBothSends) {
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", 1)).ok());
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  auto due = *catalog_->delivery.due_deliveries("hdirs", to_epoch_ms(clock_.now()), 10, 1 << 30);
  ASSERT_TRUE(
      catalog_->delivery
          .record_deliveries("hdirs", {{due[0].instance_id, DeliveryResult::kDelivered, "", 0}})
          .ok());
  clock_.advance(seconds(600));
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", 2)).ok());
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  due = *catalog_->delivery.due_deliveries("hdirs", to_epoch_ms(clock_.now()), 10, 1 << 30);
  ASSERT_TRUE(
      catalog_->delivery
          .record_deliveries("hdirs", {{due[0].instance_id, DeliveryResult::kDelivered, "", 0}})
          .ok());
  auto d = catalog_->queries.study("1.2.3");
  ASSERT_TRUE(d.ok() && d->has_value());
  std::vector<RoundDetail> hdirs;
  for (const auto& r : (*d)->rounds)
    if (r.destination == "hdirs") hdirs.push_back(r);
  ASSERT_EQ(hdirs.size(), 2u);
  EXPECT_EQ(hdirs[0].round, 1);
  EXPECT_EQ(hdirs[0].sent, 1);
  EXPECT_EQ(hdirs[1].round, 2);
  EXPECT_EQ(hdirs[1].sent, 1);
  EXPECT_LT(hdirs[0].last_sent_at, hdirs[1].first_sent_at);
  EXPECT_EQ(state_of(*catalog_, "1.2.3", "hdirs"), kSent);
  EXPECT_EQ((*d)->instances.size(), 2u);
}

TEST_F(CatalogTest, NewVersionCanHoldTheStudy) {
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", 1, std::string(64, 'f'))).ok());
  auto r = catalog_->ingest.record_instance(instance("1.2.3", 1, std::string(64, 'e')),
                                            NewVersionPolicy::kHold);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kind, RecordKind::kNewVersion);
  EXPECT_EQ(state_of(*catalog_, "1.2.3", "hdirs"), "HELD");
  auto d = **catalog_->queries.study("1.2.3");
  EXPECT_EQ(d.instances[1].flags, "new-version");
  EXPECT_EQ(d.destinations[0].reason, "an instance was received again with different bytes");
  // Stable age does not release a held study; a person does.
  EXPECT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  EXPECT_EQ(state_of(*catalog_, "1.2.3", "hdirs"), "HELD");
  auto rel = catalog_->operators.release("1.2.3", "hdirs");
  ASSERT_TRUE(rel.ok());
  EXPECT_EQ(rel->changed, 1);
  EXPECT_EQ(state_of(*catalog_, "1.2.3", "hdirs"), kReady);
}

TEST_F(CatalogTest, OperatorHoldReleaseAndRefusedTransitions) {
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", 1)).ok());
  auto held = catalog_->operators.hold("1.2.3", "", "radiologist asked");
  ASSERT_TRUE(held.ok());
  EXPECT_EQ(held->changed, 2);
  EXPECT_EQ(state_of(*catalog_, "1.2.3", "hdirs"), "HELD");
  // Released while the study is still receiving: back to RECEIVING, not READY.
  ASSERT_EQ(catalog_->operators.release("1.2.3", "hdirs")->changed, 1);
  EXPECT_EQ(state_of(*catalog_, "1.2.3", "hdirs"), kReceiving);
  // Releasing what is not held is refused, with a reason.
  auto again = catalog_->operators.release("1.2.3", "hdirs");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->changed, 0);
  ASSERT_EQ(again->refused.size(), 1u);
  EXPECT_NE(again->refused[0].find("RECEIVING cannot become"), std::string::npos);
}

TEST_F(CatalogTest, UnknownStudyIsNotFound) {
  auto r = catalog_->operators.hold("9.9.9", "", "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
}

TEST_F(CatalogTest, RetryFailedSendsFailedInstancesAgainNow) {
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", 1)).ok());
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  auto due = *catalog_->delivery.due_deliveries("hdirs", to_epoch_ms(clock_.now()), 10, 1 << 30);
  ASSERT_TRUE(catalog_->delivery
                  .record_deliveries("hdirs",
                                     {{due[0].instance_id, DeliveryResult::kRefused, "gave up", 0}})
                  .ok());
  ASSERT_EQ(state_of(*catalog_, "1.2.3", "hdirs"), kFailed);
  // Failed after many tries and resends (verification kept finding it missing).
  sqlite::Connection db((dir_.path() / "catalog.db").string());
  db.exec("UPDATE deliveries SET attempts = 7, resends = 3 WHERE destination = 'hdirs'");
  auto r = catalog_->operators.retry_all_failed("");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->changed, 1);
  EXPECT_EQ(state_of(*catalog_, "1.2.3", "hdirs"), kReady);
  auto again = *catalog_->delivery.due_deliveries("hdirs", to_epoch_ms(clock_.now()), 10, 1 << 30);
  ASSERT_EQ(again.size(), 1u);
  // An operator's retry counts afresh: the backoff starts small again, and the resend limit
  // does not fail the instance on its next missing finding.
  EXPECT_EQ(again[0].attempts, 0);
  auto resends = db.prepare("SELECT resends FROM deliveries WHERE destination = 'hdirs'");
  ASSERT_TRUE(resends.step());
  EXPECT_EQ(resends.int64(0), 0);
}

TEST_F(CatalogTest, MissingObjectFailsItsPendingDeliveries) {
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", 1, std::string(64, 'c'))).ok());
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  auto hashes = catalog_->ingest.object_hashes();
  ASSERT_EQ(hashes->size(), 1u);
  EXPECT_TRUE(*catalog_->ingest.has_object(std::string(64, 'c')));
  EXPECT_EQ(*catalog_->ingest.flag_missing_object(std::string(64, 'c')), 2);
  EXPECT_EQ(state_of(*catalog_, "1.2.3", "hdirs"), kFailed);
  auto d = **catalog_->queries.study("1.2.3");
  EXPECT_EQ(d.instances[0].deliveries[0].last_error, "spool file missing");
  ASSERT_TRUE(catalog_->ingest.record_reconciliation({0, 1, 2, 3, 1}).ok());
  EXPECT_EQ(catalog_->queries.status()->last_reconciliation->adopted, 2);
}

// Schema 9 keeps per-study delivery counters by triggers; they must always equal a recount.
void expect_counters_match_recount(const fs::path& db_path) {
  sqlite::Connection db(db_path.string());
  auto st = db.prepare(
      "SELECT sd.study_id, sd.destination, sd.open_count, sd.sending_count, sd.failed_count, "
      "(SELECT count(*) FROM deliveries d JOIN instances i ON i.id = d.instance_id "
      " WHERE i.study_id = sd.study_id AND d.destination = sd.destination "
      " AND d.state IN ('pending', 'sending')), "
      "(SELECT count(*) FROM deliveries d JOIN instances i ON i.id = d.instance_id "
      " WHERE i.study_id = sd.study_id AND d.destination = sd.destination AND d.state = "
      "'sending'), "
      "(SELECT count(*) FROM deliveries d JOIN instances i ON i.id = d.instance_id "
      " WHERE i.study_id = sd.study_id AND d.destination = sd.destination AND d.state = 'failed') "
      "FROM study_destinations sd");
  int rows = 0;
  while (st.step()) {
    ++rows;
    SCOPED_TRACE("study " + std::to_string(st.int64(0)) + " " + st.text(1));
    EXPECT_EQ(st.int64(2), st.int64(5));
    EXPECT_EQ(st.int64(3), st.int64(6));
    EXPECT_EQ(st.int64(4), st.int64(7));
  }
  EXPECT_GT(rows, 0);
}

TEST_F(CatalogTest, PerStudyCountersFollowEveryDeliveryChange) {
  const auto db_path = dir_.path() / "catalog.db";
  for (int i = 1; i <= 4; ++i)
    ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", i)).ok());
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.4", 9)).ok());
  expect_counters_match_recount(db_path);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 2);
  auto due = *catalog_->delivery.due_deliveries("hdirs", to_epoch_ms(clock_.now()), 10, 1 << 30);
  ASSERT_EQ(due.size(), 5u);
  auto begun = catalog_->delivery.begin_send("hdirs", due);
  ASSERT_TRUE(begun.ok());
  begun->permit.release();
  expect_counters_match_recount(db_path);  // sending
  const auto retry_at = to_epoch_ms(clock_.now() + seconds(30));
  ASSERT_TRUE(catalog_->delivery
                  .record_deliveries(
                      "hdirs", {{due[0].instance_id, DeliveryResult::kDelivered, "", 0},
                                {due[1].instance_id, DeliveryResult::kRetry, "HTTP 503", retry_at},
                                {due[2].instance_id, DeliveryResult::kRefused, "0xA900", 0},
                                {due[3].instance_id, DeliveryResult::kDelivered, "", 0},
                                {due[4].instance_id, DeliveryResult::kDelivered, "", 0}})
                  .ok());
  expect_counters_match_recount(db_path);
  EXPECT_EQ(state_of(*catalog_, "1.2.3", "hdirs"), kRetryWait);
  EXPECT_EQ(state_of(*catalog_, "1.2.4", "hdirs"), kSent);
  // A new version supersedes the pending one; a late instance opens a new round.
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", 2, std::string(64, 'f'))).ok());
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.4", 10)).ok());
  expect_counters_match_recount(db_path);
  ASSERT_TRUE(catalog_->operators.retry_all_failed("").ok());
  expect_counters_match_recount(db_path);
  ASSERT_TRUE(catalog_->ingest.flag_missing_object(std::string(64, 'f')).ok());
  expect_counters_match_recount(db_path);
}

TEST(Migrations, SchemaNineCountsExistingDeliveries) {
  TempDir dir;
  const auto path = (dir.path() / "c.db").string();
  {
    sqlite::Connection db(path);
    ASSERT_TRUE(migrate(db, 8).ok());
    db.exec(
        "INSERT INTO objects(sha256, size, created_at) VALUES ('aa', 1, 1);"
        "INSERT INTO studies(id, study_uid, state, first_received_at, last_received_at) "
        "VALUES (7, '1.2.3', 'READY', 1, 2);"
        "INSERT INTO instances(id, study_id, sop_instance_uid, sop_class_uid, series_uid, "
        "transfer_syntax, object_sha256, size, received_at) VALUES "
        "(1, 7, '1.2.3.1', '1.2', '1.2.3.9', '1.2.840.10008.1.2.1', 'aa', 1, 1), "
        "(2, 7, '1.2.3.2', '1.2', '1.2.3.9', '1.2.840.10008.1.2.1', 'aa', 1, 1), "
        "(3, 7, '1.2.3.3', '1.2', '1.2.3.9', '1.2.840.10008.1.2.1', 'aa', 1, 1);"
        "INSERT INTO study_destinations(study_id, destination, state, updated_at) "
        "VALUES (7, 'hdirs', 'SENDING', 1);"
        "INSERT INTO deliveries(instance_id, destination, state) VALUES "
        "(1, 'hdirs', 'pending'), (2, 'hdirs', 'sending'), (3, 'hdirs', 'failed');");
  }
  sqlite::Connection db(path);
  ASSERT_TRUE(migrate(db).ok());
  auto st = db.prepare(
      "SELECT open_count, sending_count, failed_count FROM study_destinations WHERE study_id = 7");
  ASSERT_TRUE(st.step());
  EXPECT_EQ(st.int64(0), 2);
  EXPECT_EQ(st.int64(1), 1);
  EXPECT_EQ(st.int64(2), 1);
  auto d = db.prepare("SELECT count(*) FROM deliveries WHERE study_id = 7");
  d.step();
  EXPECT_EQ(d.int64(0), 3);
  // A delivery without its study is refused, not silently left out of the counters.
  EXPECT_THROW(db.exec("INSERT INTO deliveries(instance_id, destination, state) "
                       "VALUES (1, 'other', 'pending')"),
               sqlite::SqliteError);
}

TEST_F(CatalogTest, StudiesFilterByStateAndDestination) {
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", 1)).ok());
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.4", 1)).ok());
  ASSERT_TRUE(catalog_->operators.hold("1.2.4", "backup", "").ok());
  EXPECT_EQ(catalog_->queries.studies("HELD", 10)->size(), 1u);
  EXPECT_EQ(catalog_->queries.studies("HELD", 10, "hdirs")->size(), 0u);
  EXPECT_EQ(catalog_->queries.studies("HELD", 10, "backup")->size(), 1u);
  EXPECT_EQ(catalog_->queries.studies("", 10, "hdirs")->size(), 2u);
  EXPECT_EQ(catalog_->queries.studies("", 10)->size(), 2u);
}

TEST_F(CatalogTest, AuditTrailRecordsReceiptsAndDetectsAnEditedEntry) {
  for (int i = 1; i <= 3; ++i)
    ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.3", i)).ok());
  ASSERT_TRUE(
      catalog_->ingest.record_instance(instance("1.2.3", 1)).ok());  // a duplicate: recorded too
  auto ok = catalog_->audit.verify_audit(std::nullopt);
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(ok->ok) << ok->reason;
  EXPECT_EQ(ok->checked, 4);
  auto head = *catalog_->audit.audit_head();
  EXPECT_EQ(head.seq, 4);
  auto events = *catalog_->audit.audit_since(0, 100);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].type, audit::EventType::kObjectReceived);
  EXPECT_EQ(events[0].actor, "dicom:PACS1@");
  EXPECT_EQ(events[3].detail.value("duplicate", false), true);
  {
    sqlite::Connection raw((dir_.path() / "catalog.db").string());
    EXPECT_THROW(raw.exec("UPDATE audit_events SET actor = 'x' WHERE seq = 2"),
                 sqlite::SqliteError);
    raw.exec("DROP TRIGGER audit_events_no_update");
    raw.exec("UPDATE audit_events SET study_uid = '9.9' WHERE seq = 2");
  }
  auto bad = catalog_->audit.verify_audit(head);
  ASSERT_TRUE(bad.ok());
  EXPECT_FALSE(bad->ok);
  ASSERT_TRUE(bad->first_bad_seq.has_value());
  EXPECT_EQ(*bad->first_bad_seq, 2);
}

// HL7 orders (schema 17): a STAT order and a study with the same accession number make the
// study STAT whichever comes first; a routine order does not, and never lowers a STAT.
std::int64_t study_id_of(Catalog& c, const std::string& uid) {
  return c.db()
      .locked([&](Connection& db) -> std::int64_t {
        auto st = db.prepare("SELECT id FROM studies WHERE study_uid = ?1");
        st.bind(1, uid);
        return st.step() ? st.int64(0) : 0;
      })
      .value();
}

int priority_of(Catalog& c, const std::string& uid) {
  for (const auto& s : *c.queries.studies("", 100))
    if (s.study_uid == uid) return s.priority;
  return -1;
}

TEST_F(CatalogTest, StatOrderAndItsStudyMeetWhicheverComesFirst) {
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.10", 1)).ok());
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.11", 2)).ok());
  const auto before = study_id_of(*catalog_, "1.2.10"), after = study_id_of(*catalog_, "1.2.11");
  // Study first: noted, no order yet; then the STAT order makes it STAT.
  EXPECT_FALSE(*catalog_->orders.link_study(before, "ACC-B"));
  EXPECT_EQ(priority_of(*catalog_, "1.2.10"), 0);
  EXPECT_EQ(*catalog_->orders.record_order({"ACC-B", "S", true, "C1", "RIS/LGH"}), 1);
  EXPECT_EQ(priority_of(*catalog_, "1.2.10"), 1);
  // Order first: the study is STAT when it is noted.
  EXPECT_EQ(*catalog_->orders.record_order({"ACC-A", "S", true, "C2", "RIS/LGH"}), 0);
  EXPECT_TRUE(*catalog_->orders.link_study(after, "ACC-A"));
  EXPECT_EQ(priority_of(*catalog_, "1.2.11"), 1);
  // A routine order afterwards lowers nothing; a routine order alone raises nothing.
  EXPECT_EQ(*catalog_->orders.record_order({"ACC-A", "R", false, "C3", "RIS/LGH"}), 0);
  EXPECT_EQ(priority_of(*catalog_, "1.2.11"), 1);
  ASSERT_TRUE(catalog_->ingest.record_instance(instance("1.2.12", 3)).ok());
  EXPECT_EQ(*catalog_->orders.record_order({"ACC-C", "R", false, "C4", "RIS/LGH"}), 0);
  EXPECT_FALSE(*catalog_->orders.link_study(study_id_of(*catalog_, "1.2.12"), "ACC-C"));
  EXPECT_EQ(priority_of(*catalog_, "1.2.12"), 0);
  // An operator's STAT (2) stays 2.
  ASSERT_TRUE(catalog_->operators.prioritize("1.2.12").ok());
  EXPECT_EQ(*catalog_->orders.record_order({"ACC-C", "S", true, "C5", "RIS/LGH"}), 0);
  EXPECT_EQ(priority_of(*catalog_, "1.2.12"), 2);
}

}  // namespace
}  // namespace dirgw::catalog
