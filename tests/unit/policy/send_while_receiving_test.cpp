// send_while_receiving (issue 16): instances of a RECEIVING study are checked on their own and,
// when consent and their checks allow, selected for sending before the study is stable; the
// study-level decision still governs the study's state. Stage + catalog, no network.
#include <gtest/gtest.h>

#include "catalog/catalog.h"
#include "fakes/fake_clock.h"
#include "fakes/spooled_study.h"
#include "policy/stage/stage.h"

namespace dirgw::policy {
namespace {

using std::chrono::seconds;
constexpr const char* kReceivingStudy = "1.2.826.0.1.3680043.10.543.91";

class SendWhileReceivingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.policy.validation_profile = "ontario-dir";
    config_.policy.health_number_issuer = "ON";
    config::Destination early;
    early.name = "early";
    early.send_while_receiving = true;
    config::Destination plain;
    plain.name = "plain";
    config_.destinations = {early, plain};
    catalog_ = std::move(catalog::Catalog::open(dir_ / "c.db", {"early", "plain"}, clock_)).value();
    spool_ =
        std::make_unique<ingest::Spool>(std::move(ingest::Spool::open(dir_ / "spool")).value());
  }
  Stage& stage() {
    if (!stage_) stage_ = std::make_unique<Stage>(config_, *catalog_, *spool_, clock_);
    return *stage_;
  }
  void arrive(int i, const std::string& health_number = test::kHealthNumber) {
    auto ds = test::valid_ct();
    test::set_health_number(*ds, health_number);
    testing::spool_instance(*spool_, catalog_->ingest, *ds, kReceivingStudy,
                            std::string(kReceivingStudy) + ".1." + std::to_string(i));
  }
  std::vector<catalog::DueItem> due(const std::string& dest) {
    return *catalog_->delivery.due_deliveries(dest, to_epoch_ms(clock_.now()), 100, 1ull << 40);
  }
  std::string state(const std::string& dest) {
    auto study = catalog_->queries.study(kReceivingStudy);
    for (const auto& d : (*study)->destinations)
      if (d.destination == dest) return d.state;
    return "?";
  }
  // Sends what is due for `dest` and records every instance accepted.
  int send_all(const std::string& dest) {
    auto batch = catalog_->delivery.begin_send(dest, due(dest));
    EXPECT_TRUE(batch.ok());
    std::vector<catalog::DeliveryUpdate> updates;
    for (const auto& item : batch->items)
      updates.push_back({item.instance_id, catalog::DeliveryResult::kDelivered, "", 0});
    batch->permit.release();
    EXPECT_TRUE(catalog_->delivery.record_deliveries(dest, updates).ok());
    return static_cast<int>(updates.size());
  }
  void become_stable() {
    clock_.advance(seconds(120));
    ASSERT_TRUE(catalog_->ingest.promote_stable(to_epoch_ms(clock_.now())).ok());
  }
  void withdraw() {
    catalog::ConsentChange c;
    c.identifiers = {{"hn", "ON", test::kHealthNumber}};
    c.grant = false;
    c.source = "cli";
    ASSERT_TRUE(catalog_->consent.record_consent(c).ok());
  }
  int audit_count(const std::string& note) {
    int n = 0;
    auto all = catalog_->audit.audit_after(0, 10000);
    for (const auto& e : *all)
      if (e.detail.dump().find(note) != std::string::npos) ++n;
    return n;
  }

  test::TempDir dir_;
  ::dirgw::testing::FakeClock clock_;
  config::Config config_;
  std::unique_ptr<catalog::Catalog> catalog_;
  std::unique_ptr<ingest::Spool> spool_;
  std::unique_ptr<Stage> stage_;
};

TEST_F(SendWhileReceivingTest, CheckedInstancesOfAReceivingStudyAreDueOnlyWhereConfigured) {
  arrive(1);
  arrive(2);
  EXPECT_TRUE(due("early").empty()) << "due before its own checks ran";
  auto r = stage().step();
  EXPECT_EQ(r.early_cleared, 2);
  EXPECT_EQ(r.ready, 0);
  EXPECT_EQ(state("early"), "RECEIVING");
  EXPECT_EQ(due("early").size(), 2u);
  EXPECT_TRUE(due("plain").empty()) << "a destination without the key waits for the study";
  // Sent while receiving: the study stays RECEIVING (stable age and policy still decide).
  EXPECT_EQ(send_all("early"), 2);
  EXPECT_EQ(state("early"), "RECEIVING");
  // A late instance goes as a further batch.
  arrive(3);
  EXPECT_EQ(stage().step().early_cleared, 1);
  EXPECT_EQ(send_all("early"), 1);
  // The study-level decision: READY with nothing left to send is SENT at once (verification
  // then starts as for any SENT study); the other destination sends the whole study.
  become_stable();
  auto decided = stage().step();
  EXPECT_EQ(decided.ready, 2);
  EXPECT_EQ(state("early"), "SENT");
  EXPECT_EQ(state("plain"), "READY");
  EXPECT_EQ(send_all("plain"), 3);
  EXPECT_EQ(state("plain"), "SENT");
}

TEST_F(SendWhileReceivingTest, ANewInstanceAfterAnEarlyOneStaysForTheStudyPathIfNotChecked) {
  arrive(1);
  stage().step();
  arrive(2);  // not checked yet
  ASSERT_EQ(due("early").size(), 1u);
  become_stable();
  stage().step();  // STABLE -> READY: everything pending goes by the study path now
  EXPECT_EQ(state("early"), "READY");
  EXPECT_EQ(due("early").size(), 2u);
  EXPECT_EQ(send_all("early"), 2);
  EXPECT_EQ(state("early"), "SENT");
}

TEST_F(SendWhileReceivingTest, BeginSendDropsEarlyItemsOfAStudyNoLongerReceiving) {
  arrive(1);
  stage().step();
  auto items = due("early");
  ASSERT_EQ(items.size(), 1u);
  ASSERT_TRUE(catalog_->operators.hold(kReceivingStudy, "early", "checking").ok());
  auto batch = catalog_->delivery.begin_send("early", items);
  ASSERT_TRUE(batch.ok());
  EXPECT_TRUE(batch->items.empty());
  EXPECT_EQ(batch->dropped, 1);
  EXPECT_EQ(state("early"), "HELD");
}

TEST_F(SendWhileReceivingTest, AFailingInstanceHoldsBackTheRestOfTheStudy) {
  arrive(1);
  stage().step();
  EXPECT_EQ(send_all("early"), 1);
  arrive(2, "1234567890");  // bad check digit: a validation finding
  auto r = stage().step();
  EXPECT_EQ(r.early_cleared, 0);
  EXPECT_EQ(r.early_held, 1);
  arrive(3);  // valid, but its study will be quarantined: not sent early either
  EXPECT_EQ(stage().step().early_held, 1);
  EXPECT_TRUE(due("early").empty());
  // The study is quarantined; what went while receiving stays recorded as sent and the trail
  // says so.
  become_stable();
  stage().step();
  EXPECT_EQ(state("early"), "QUARANTINED");
  auto detail = *catalog_->queries.study(kReceivingStudy);
  int sent = 0;
  for (const auto& i : detail->instances)
    for (const auto& d : i.deliveries)
      if (d.destination == "early" && d.state == "sent") ++sent;
  EXPECT_EQ(sent, 1);
  EXPECT_EQ(audit_count("sent while receiving, before the study-level decision"), 1);
}

TEST_F(SendWhileReceivingTest, OptInWithoutAGrantSendsNothingEarly) {
  config_.destinations[0].consent_mode = "opt-in";
  arrive(1);
  auto r = stage().step();
  EXPECT_EQ(r.early_cleared, 0);
  EXPECT_EQ(r.early_held, 1);
  EXPECT_TRUE(due("early").empty());
}

TEST_F(SendWhileReceivingTest, AWithdrawalStopsWhatIsNotOnTheWire) {
  arrive(1);
  arrive(2);
  stage().step();
  ASSERT_EQ(due("early").size(), 2u);
  // The first is on the wire when the withdrawal lands: it is answered and recorded as sent;
  // the second never goes, and neither does anything that arrives later.
  auto items = due("early");
  items.resize(1);
  auto batch = catalog_->delivery.begin_send("early", items);
  ASSERT_EQ(batch->items.size(), 1u);
  batch->permit.release();  // the request has left
  withdraw();
  EXPECT_EQ(state("early"), "WITHDRAWN");
  EXPECT_TRUE(due("early").empty());
  ASSERT_TRUE(catalog_->delivery
                  .record_deliveries("early", {{batch->items[0].instance_id,
                                                catalog::DeliveryResult::kDelivered, "", 0}})
                  .ok());
  arrive(3);
  stage().step();
  EXPECT_TRUE(due("early").empty());
  EXPECT_EQ(state("early"), "WITHDRAWN");
}

TEST_F(SendWhileReceivingTest, AWithdrawnPatientsInstancesAreNeverClearedEarly) {
  withdraw();
  arrive(1);
  auto r = stage().step();
  EXPECT_EQ(r.early_cleared, 0);
  EXPECT_TRUE(due("early").empty());
}

}  // namespace
}  // namespace dirgw::policy
