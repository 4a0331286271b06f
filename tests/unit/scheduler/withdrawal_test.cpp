// A withdrawal is final (docs/policy.md): each window in which a withdrawal could once slip past
// the policy stage or the forwarder is held open here by a hook, with the withdrawal landing in
// it, and the test asserts that no request started after the withdrawal returned and that the
// catalog records exactly what the (fake) repository holds.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "fakes/fake_clock.h"
#include "fakes/spooled_study.h"
#include "policy/stage/stage.h"
#include "scheduler/scheduler.h"
#include "unit/policy/dataset_builder.h"

namespace dirgw::scheduler {
namespace {

namespace fs = std::filesystem;
using catalog::StudyState;
using std::chrono::seconds;

constexpr const char* kStudy = "1.2.826.0.1.3680043.10.543.70";

// The repository: remembers every request (with the moment it started, on a shared sequence)
// and holds what it accepted. `during` runs after the request has left, before the answer.
class FakeRepository final : public senders::Sender {
 public:
  explicit FakeRepository(std::atomic<int>& seq) : seq_(seq) {}
  using senders::Sender::send;
  senders::Outcome send(const std::vector<senders::Item>& batch,
                        const senders::SendContext& context) override {
    request_starts.push_back(++seq_);
    if (context.request_sent) context.request_sent();
    if (during) during();
    senders::Outcome o;
    o.kind = accept ? senders::OutcomeKind::kOk : senders::OutcomeKind::kRetry;
    o.http_status = accept ? 200 : 503;
    for (const auto& i : batch) {
      o.instances.push_back(
          {i.sop_instance_uid,
           accept ? senders::InstanceStatus::kAccepted : senders::InstanceStatus::kRetry,
           accept ? "" : "HTTP 503"});
      if (accept) held.insert(i.sop_instance_uid);
    }
    return o;
  }
  std::vector<int> request_starts;
  std::set<std::string> held;
  std::function<void()> during;
  bool accept = true;

 private:
  std::atomic<int>& seq_;
};

class WithdrawalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.policy.validation_profile = "none";
    config_.policy.health_number_issuer = "ON";
    config::Destination d;
    d.name = "repo";
    d.url = "http://127.0.0.1:1/dicom-web";
    d.batch_max_instances = 10;
    // No notification endpoint: the outbox is read here, not posted by the forwarder.
    config_.destinations.push_back(d);
    catalog_ = std::move(catalog::Catalog::open(dir_ / "catalog.db", {"repo"}, clock_)).value();
    spool_ =
        std::make_unique<ingest::Spool>(std::move(ingest::Spool::open(dir_ / "spool")).value());
    stage_ = std::make_unique<policy::Stage>(config_, *catalog_, *spool_, clock_);
    forwarder_ = std::make_unique<Forwarder>(config_.destinations[0], *catalog_, *spool_,
                                             repository_, clock_, 7);
  }

  // Instances of one study of the synthetic patient (health number 1234567897), in the spool.
  void receive(int first, int count) {
    for (int i = first; i < first + count; ++i) {
      auto ds = policy::test::valid_ct();
      testing::spool_instance(*spool_, catalog_->ingest, *ds, kStudy,
                              std::string(kStudy) + ".1." + std::to_string(i));
    }
  }

  void make_stable() {
    clock_.advance(seconds(120));
    ASSERT_TRUE(catalog_->ingest.promote_stable(to_epoch_ms(clock_.now())).ok());
  }

  // dirgw consent withdraw hn:1234567897, as the CLI, CSV and HL7 paths record it.
  catalog::ConsentEffect withdraw() {
    catalog::ConsentChange c;
    c.identifiers = {{"hn", "ON", policy::test::kHealthNumber}};
    c.grant = false;
    c.source = "cli";
    c.notify = {"repo"};
    auto r = catalog_->consent.record_consent(c);
    EXPECT_TRUE(r.ok());
    withdrawal_returned_ = ++seq_;
    return r.ok() ? *r : catalog::ConsentEffect{};
  }

  std::string state() {
    auto d = catalog_->queries.study(kStudy);
    return (*d)->destinations.at(0).state;
  }

  std::vector<catalog::InstanceDetail> instances() {
    auto d = catalog_->queries.study(kStudy);
    return (*d)->instances;
  }

  // Instances the catalog records as held by the repository.
  std::set<std::string> catalog_sent() {
    std::set<std::string> out;
    for (const auto& i : instances())
      for (const auto& d : i.deliveries)
        if (d.state == "sent") out.insert(i.sop_instance_uid);
    return out;
  }

  std::vector<catalog::Notification> due_notifications() {
    return *catalog_->delivery.due_notifications("repo", to_epoch_ms(clock_.now()) + 1);
  }

  // A withdrawal on its own thread, returned once it is blocked at the send gate (deterministic:
  // the caller goes on only then); `returned` says when it has returned.
  std::thread withdraw_blocked_at_gate(std::atomic<bool>& returned) {
    std::thread t([this, &returned] {
      withdraw();
      returned = true;
    });
    while (catalog_->delivery.send_gate_for_test().waiting_writers_for_test() == 0)
      std::this_thread::yield();
    EXPECT_FALSE(returned.load()) << "the withdrawal returned while a checked batch was pending";
    return t;
  }

  void expect_no_request_after_withdrawal() {
    ASSERT_GT(withdrawal_returned_, 0);
    for (int start : repository_.request_starts)
      EXPECT_LT(start, withdrawal_returned_) << "a request started after the withdrawal returned";
  }

  policy::test::TempDir dir_;
  testing::FakeClock clock_;
  config::Config config_;
  std::atomic<int> seq_{0};
  int withdrawal_returned_ = 0;
  FakeRepository repository_{seq_};
  std::unique_ptr<catalog::Catalog> catalog_;
  std::unique_ptr<ingest::Spool> spool_;
  std::unique_ptr<policy::Stage> stage_;
  std::unique_ptr<Forwarder> forwarder_;
};

// Window 1: the policy stage has read the study but not committed READY; the withdrawal, which
// finds studies by the identifiers that commit writes, lands in between.
TEST_F(WithdrawalTest, BetweenConsentReadAndDecisionCommitTheStudyIsWithdrawn) {
  receive(1, 4);
  make_stable();
  stage_->set_before_record_for_test([this](std::int64_t) { withdraw(); });
  auto step = stage_->step();
  EXPECT_EQ(step.withdrawn, 1);
  EXPECT_EQ(step.ready, 0);
  EXPECT_EQ(state(), "WITHDRAWN");
  for (int i = 0; i < 3; ++i) forwarder_->step();
  EXPECT_TRUE(repository_.request_starts.empty());
  expect_no_request_after_withdrawal();
  EXPECT_TRUE(repository_.held.empty());
  EXPECT_TRUE(catalog_sent().empty());
  EXPECT_EQ(catalog_->queries.status()->destinations[0].pending_instances, 0);
}

// Window 2: the forwarder's last check has passed and the request has not started; the
// withdrawal lands there. It must wait until the request has left, never return before it.
TEST_F(WithdrawalTest, BetweenLastCheckAndRequestTheWithdrawalWaitsForTheRequest) {
  receive(1, 4);
  make_stable();
  ASSERT_EQ(stage_->step().ready, 1);
  std::thread withdrawal;
  std::atomic<bool> returned{false};
  forwarder_->set_before_send_for_test([&] { withdrawal = withdraw_blocked_at_gate(returned); });
  // The request has left: the withdrawal returns before the answer comes.
  repository_.during = [&] { withdrawal.join(); };
  auto r = forwarder_->step();
  repository_.during = {};
  EXPECT_TRUE(returned.load());
  EXPECT_EQ(r.sent, 4);
  ASSERT_EQ(repository_.request_starts.size(), 1u);
  expect_no_request_after_withdrawal();
  // Nothing more leaves, and the catalog says what the repository holds.
  forwarder_->set_before_send_for_test({});
  for (int i = 0; i < 3; ++i) forwarder_->step();
  EXPECT_EQ(repository_.request_starts.size(), 1u);
  EXPECT_EQ(catalog_sent(), repository_.held);
  EXPECT_EQ(state(), "WITHDRAWN");
  auto notes = due_notifications();
  ASSERT_EQ(notes.size(), 1u);
  for (const auto& sop : repository_.held)
    EXPECT_NE(notes[0].body.find(sop), std::string::npos) << "notification lacks " << sop;
}

// Window 2b: one request at a time, the next batch was checked and begun by the commit made
// beside the previous request (issue 16). A withdrawal then waits until that batch has left too,
// and nothing starts after it returns.
TEST_F(WithdrawalTest, ABatchBegunWithTheLastAnswersHoldsTheWithdrawalUntilItLeaves) {
  config_.destinations[0].batch_max_instances = 2;
  receive(1, 4);
  make_stable();
  ASSERT_EQ(stage_->step().ready, 1);
  EXPECT_EQ(forwarder_->step().sent, 2);  // the other two were begun during this request
  std::atomic<bool> returned{false};
  std::thread withdrawal = withdraw_blocked_at_gate(returned);
  repository_.during = [&] { withdrawal.join(); };
  EXPECT_EQ(forwarder_->step().sent, 2);
  repository_.during = {};
  EXPECT_TRUE(returned.load());
  for (int i = 0; i < 3; ++i) forwarder_->step();
  ASSERT_EQ(repository_.request_starts.size(), 2u);
  expect_no_request_after_withdrawal();
  EXPECT_EQ(catalog_sent(), repository_.held);
  EXPECT_EQ(repository_.held.size(), 4u);
  auto notes = due_notifications();
  ASSERT_EQ(notes.size(), 1u);
  for (const auto& sop : repository_.held)
    EXPECT_NE(notes[0].body.find(sop), std::string::npos) << "notification lacks " << sop;
}

// Window 3: the request is on the wire; the withdrawal returns at once (the request has left),
// the notification waits for the answer, and the answer is recorded as what it is.
TEST_F(WithdrawalTest, WhileARequestIsInFlightTheAnswerIsRecordedAndNotified) {
  receive(1, 3);
  make_stable();
  ASSERT_EQ(stage_->step().ready, 1);
  repository_.during = [&] {
    auto effect = withdraw();  // returns: the request has already left
    EXPECT_EQ(effect.studies_withdrawn, 1);
    EXPECT_TRUE(due_notifications().empty()) << "the notification must wait for the answer";
  };
  auto r = forwarder_->step();
  EXPECT_EQ(r.sent, 3);
  repository_.during = {};
  for (int i = 0; i < 3; ++i) forwarder_->step();
  EXPECT_EQ(repository_.request_starts.size(), 1u);
  expect_no_request_after_withdrawal();
  EXPECT_EQ(catalog_sent().size(), 3u);
  EXPECT_EQ(catalog_sent(), repository_.held);
  auto notes = due_notifications();
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].body.find(kStudy), std::string::npos);
  for (const auto& sop : repository_.held)
    EXPECT_NE(notes[0].body.find(sop), std::string::npos) << "notification lacks " << sop;
  // The audit trail says why a withdrawn study has sent instances.
  bool audited = false;
  auto events = catalog_->audit.audit_since(0, 1000);
  for (const auto& e : *events)
    audited =
        audited || e.detail.dump().find("sent before withdrawal took effect") != std::string::npos;
  EXPECT_TRUE(audited);
}

// The same window when the repository fails the request: nothing is held, nothing goes again.
TEST_F(WithdrawalTest, AFailedRequestInFlightIsWithdrawnNotRetried) {
  receive(1, 3);
  make_stable();
  ASSERT_EQ(stage_->step().ready, 1);
  repository_.accept = false;
  repository_.during = [&] { withdraw(); };
  forwarder_->step();
  repository_.during = {};
  clock_.advance(std::chrono::hours(2));
  for (int i = 0; i < 3; ++i) forwarder_->step();
  EXPECT_EQ(repository_.request_starts.size(), 1u);
  EXPECT_TRUE(catalog_sent().empty());
  for (const auto& i : instances()) EXPECT_EQ(i.deliveries.at(0).state, "withdrawn");
  EXPECT_EQ(catalog_->queries.status()->destinations[0].pending_instances, 0);
  auto notes = due_notifications();
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_EQ(notes[0].body.find(kStudy), std::string::npos) << "the repository holds nothing";
}

TEST_F(WithdrawalTest, LateInstancesOfAWithdrawnStudyAreWithdrawnOnArrival) {
  receive(1, 2);
  make_stable();
  ASSERT_EQ(stage_->step().ready, 1);
  EXPECT_EQ(withdraw().studies_withdrawn, 1);
  receive(3, 2);
  EXPECT_EQ(state(), "WITHDRAWN");
  EXPECT_EQ(catalog_->queries.status()->destinations[0].pending_instances, 0);
  for (const auto& i : instances())
    EXPECT_EQ(i.deliveries.at(0).state, "withdrawn") << i.sop_instance_uid;
  make_stable();
  stage_->step();
  for (int i = 0; i < 3; ++i) forwarder_->step();
  EXPECT_TRUE(repository_.request_starts.empty());
}

// A stop in the middle of a request: the answer is never known. The withdrawal that follows
// lists those instances as possibly held, and they are never sent again.
TEST_F(WithdrawalTest, AStopMidRequestLeavesInstancesInDoubtAndNotified) {
  receive(1, 2);
  make_stable();
  ASSERT_EQ(stage_->step().ready, 1);
  auto due = catalog_->delivery.due_deliveries("repo", to_epoch_ms(clock_.now()), 10, 1 << 30);
  auto begun = catalog_->delivery.begin_send("repo", *due);
  ASSERT_EQ(begun->items.size(), 2u);
  begun->permit.release();  // the request left; then the daemon died before the answer
  withdraw();
  EXPECT_TRUE(due_notifications().empty());
  ASSERT_EQ(*catalog_->delivery.recover_interrupted_sends(), 2);
  auto notes = due_notifications();
  ASSERT_EQ(notes.size(), 1u);
  for (const auto& d : *due) EXPECT_NE(notes[0].body.find(d.sop_instance_uid), std::string::npos);
  for (int i = 0; i < 3; ++i) forwarder_->step();
  EXPECT_TRUE(repository_.request_starts.empty());
  EXPECT_EQ(catalog_->queries.status()->destinations[0].pending_instances, 0);
}

// The outbox: a notification is posted by the destination's forwarder (through the Notifier
// interface) and retried with backoff until the endpoint accepts it.
class FakeNotifier final : public senders::Notifier {
 public:
  senders::NotifyOutcome notify(const std::string& body) override {
    bodies.push_back(body);
    senders::NotifyOutcome o;
    o.ok = accept;
    o.http_status = accept ? 204 : 503;
    o.message = accept ? "" : "HTTP 503";
    return o;
  }
  std::vector<std::string> bodies;
  bool accept = false;
};

TEST_F(WithdrawalTest, TheNotificationIsPostedAndRetriedUntilAccepted) {
  receive(1, 2);
  make_stable();
  ASSERT_EQ(stage_->step().ready, 1);
  forwarder_->step();  // the study reaches the repository
  FakeNotifier notifier;
  Forwarder forwarder(config_.destinations[0], *catalog_, *spool_, repository_, clock_, 7, nullptr,
                      &notifier);
  withdraw();
  forwarder.step();
  ASSERT_EQ(notifier.bodies.size(), 1u);
  EXPECT_NE(notifier.bodies[0].find(kStudy), std::string::npos);
  EXPECT_TRUE(due_notifications().empty()) << "a refused notification waits for its backoff";
  forwarder.step();
  EXPECT_EQ(notifier.bodies.size(), 1u) << "not before its backoff";
  notifier.accept = true;
  clock_.advance(std::chrono::hours(1));
  forwarder.step();
  ASSERT_EQ(notifier.bodies.size(), 2u);
  EXPECT_EQ(notifier.bodies[1], notifier.bodies[0]) << "the same notice, unchanged";
  clock_.advance(std::chrono::hours(1));
  forwarder.step();
  EXPECT_EQ(notifier.bodies.size(), 2u) << "accepted: never posted again";
}

}  // namespace
}  // namespace dirgw::scheduler
