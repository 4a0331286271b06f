// `concurrency: N`: a destination's lanes call Forwarder::step() at the same time. What must hold:
// N requests in flight, an instance never in two requests, every instance recorded once, one
// half-open probe at a time; and the sender pool lends each member to one send() at a time.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "fakes/admit.h"
#include "forwarder_fixture.h"

namespace dirgw::scheduler {
namespace {

using std::chrono::seconds;
using testing_support::ForwarderFixture;

// A thread-safe sender whose requests stay in flight until the test lets them go, and that
// remembers how many were in flight at once and every instance it was given.
class GatedSender final : public senders::Sender {
 public:
  using senders::Sender::send;
  senders::Outcome send(const std::vector<senders::Item>& batch,
                        const senders::SendContext& context) override {
    std::unique_lock lock(mutex_);
    for (const auto& i : batch) ++times_sent_[i.sop_instance_uid];
    sizes_.push_back(static_cast<int>(batch.size()));
    ++in_flight_;
    ++requests_;
    max_in_flight_ = std::max(max_in_flight_, in_flight_);
    cv_.notify_all();
    if (context.request_sent) context.request_sent();
    cv_.wait(lock, [this] { return open_ || released_ > 0; });
    if (!open_) --released_;
    --in_flight_;
    senders::Outcome o;
    o.kind = fail_ ? senders::OutcomeKind::kRetry : senders::OutcomeKind::kOk;
    o.http_status = fail_ ? (throttle_ ? 429 : 503) : 200;
    if (fail_ && throttle_) o.retry_after = std::chrono::seconds(1);
    for (const auto& i : batch)
      o.instances.push_back(
          {i.sop_instance_uid,
           fail_ ? senders::InstanceStatus::kRetry : senders::InstanceStatus::kAccepted, ""});
    return o;
  }
  // Waits until `n` requests are in flight at once.
  bool wait_in_flight(int n) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return in_flight_ >= n; });
  }
  // Waits until `n` requests have started in all.
  bool wait_requests(int n) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return requests_ >= n; });
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }
  void close() {
    std::lock_guard lock(mutex_);
    open_ = false;
  }
  void release_one() {
    std::lock_guard lock(mutex_);
    ++released_;
    cv_.notify_all();
  }
  void set_fail(bool f) {
    std::lock_guard lock(mutex_);
    fail_ = f;
  }
  // Failing requests are answered 429 with Retry-After: 1 instead of 503.
  void set_throttle(bool t) {
    std::lock_guard lock(mutex_);
    throttle_ = t;
  }
  int in_flight() {
    std::lock_guard lock(mutex_);
    return in_flight_;
  }
  int max_in_flight() {
    std::lock_guard lock(mutex_);
    return max_in_flight_;
  }
  int requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  std::map<std::string, int> times_sent() {
    std::lock_guard lock(mutex_);
    return times_sent_;
  }
  // Instances per request, in the order the requests started.
  std::vector<int> sizes() {
    std::lock_guard lock(mutex_);
    return sizes_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false, fail_ = false, throttle_ = false;
  int released_ = 0, in_flight_ = 0, max_in_flight_ = 0, requests_ = 0;
  std::map<std::string, int> times_sent_;
  std::vector<int> sizes_;
};

class ConcurrencyTest : public ForwarderFixture {
 protected:
  void make_forwarder() {
    dest_.concurrency = 3;  // as the daemon configures a destination whose lanes these are
    forwarder_ = std::make_unique<Forwarder>(dest_, *catalog_, *spool_, gated_, clock_, 42);
  }
  // `lanes` threads each stepping until nothing is left to do.
  void run_lanes(int lanes) {
    for (int i = 0; i < lanes; ++i)
      threads_.emplace_back([this] {
        for (;;) {
          auto r = forwarder_->step();
          if (!r.did_work) return;
        }
      });
  }
  void join() {
    for (auto& t : threads_) t.join();
    threads_.clear();
  }
  int delivered() {
    int n = 0;
    for (const auto& s : *catalog_->queries.studies("", 100))
      if (s.destination_states.at(0).second == catalog::kSent) ++n;
    return n;
  }
  GatedSender gated_;
  std::vector<std::thread> threads_;
};

TEST_F(ConcurrencyTest, ThreeLanesKeepThreeRequestsInFlightAndSendEachInstanceOnce) {
  dest_.batch_max_instances = 4;
  make_forwarder();
  for (int s = 1; s <= 6; ++s)
    for (int i = 1; i <= 5; ++i) receive("1.2." + std::to_string(s), s * 10 + i);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 6);
  run_lanes(3);
  ASSERT_TRUE(gated_.wait_in_flight(3));
  EXPECT_EQ(gated_.in_flight(), 3);  // three lanes, three requests, no more
  gated_.open();
  join();
  EXPECT_EQ(gated_.max_in_flight(), 3);
  const auto sent = gated_.times_sent();
  EXPECT_EQ(sent.size(), 30u);
  for (const auto& [uid, times] : sent) EXPECT_EQ(times, 1) << uid;
  EXPECT_EQ(delivered(), 6);
  EXPECT_FALSE(forwarder_->step().did_work);
}

// Lanes that start together with equal batches would finish together and leave the link idle
// while all wait for their answers: from idle, the lane starting while k others are sending takes
// (k + 1) / 3 of a batch, so their requests end at different times; once all three are busy,
// every batch is whole.
TEST_F(ConcurrencyTest, LanesStartingTogetherTakeStaggeredShares) {
  dest_.batch_max_instances = 9;
  make_forwarder();
  for (int i = 1; i <= 40; ++i) receive("1.2.8", i);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  run_lanes(3);
  ASSERT_TRUE(gated_.wait_in_flight(3));
  auto first = gated_.sizes();  // in the order the requests reached the sender, not picked
  std::sort(first.begin(), first.end());
  EXPECT_EQ(first, (std::vector<int>{3, 6, 9}));
  gated_.release_one();  // one answer: its lane starts again while two are sending
  EXPECT_TRUE(gated_.wait_requests(4));
  EXPECT_EQ(gated_.in_flight(), 3);
  ASSERT_EQ(gated_.sizes().size(), 4u);
  EXPECT_EQ(gated_.sizes()[3], 9);
  gated_.open();
  join();
  const auto sent = gated_.times_sent();
  EXPECT_EQ(sent.size(), 40u);
  for (const auto& [uid, times] : sent) EXPECT_EQ(times, 1) << uid;
  EXPECT_EQ(delivered(), 1);
  EXPECT_FALSE(forwarder_->step().did_work);
}

// Half-open after failures: one lane probes with one instance; the others wait for its answer
// instead of probing too.
TEST_F(ConcurrencyTest, OneProbeAtATimeWhileHalfOpen) {
  dest_.batch_max_instances = 2;
  dest_.circuit_failures = 1;
  dest_.circuit_cooldown = seconds(30);
  dest_.retry_initial = std::chrono::milliseconds(10);
  dest_.retry_max = std::chrono::milliseconds(10);
  make_forwarder();
  for (int i = 1; i <= 8; ++i) receive("1.2.9", i);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  gated_.set_fail(true);
  gated_.release_one();
  EXPECT_EQ(forwarder_->step().retry, 1);  // the circuit opens (a third of a batch: staggered)
  EXPECT_EQ(forwarder_->status().circuit, Circuit::kOpen);
  clock_.advance(seconds(31));
  gated_.set_fail(false);
  std::thread probe([this] { forwarder_->step(); });
  ASSERT_TRUE(gated_.wait_in_flight(1));
  for (int lane = 0; lane < 3; ++lane) {
    auto r = forwarder_->step();  // a sibling lane: the probe is out, nothing starts
    EXPECT_FALSE(r.did_work);
    ASSERT_TRUE(r.next.has_value());
  }
  EXPECT_EQ(gated_.requests(), 2);
  gated_.open();
  probe.join();
  EXPECT_EQ(forwarder_->status().circuit, Circuit::kClosed);
  run_lanes(2);
  join();
  EXPECT_EQ(delivered(), 1);
  for (const auto& [uid, times] : gated_.times_sent())
    EXPECT_LE(times, 2) << uid;  // the one of the failed request went again, the rest once
}

// After a 429 with Retry-After, the destination sends one request at a time for
// kOneLaneAfterThrottle: when the hold ends one lane goes and the others wait for its answer,
// and they keep waiting after it succeeds (a repository that throttles many gateways would
// otherwise see this one's lanes take a double share, test_many_gateways); after the minute
// the lanes go together again.
TEST_F(ConcurrencyTest, OneRequestAtATimeForAMinuteAfterThrottling) {
  dest_.batch_max_instances = 2;
  make_forwarder();
  for (int i = 1; i <= 16; ++i) receive("1.2.9", i);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  gated_.set_fail(true);
  gated_.set_throttle(true);
  gated_.release_one();
  EXPECT_EQ(forwarder_->step().retry, 1);                     // 429, Retry-After: 1
  EXPECT_FALSE(forwarder_->step().did_work);                  // held: no lane sends
  EXPECT_EQ(forwarder_->status().circuit, Circuit::kClosed);  // throttled, not down
  ASSERT_TRUE(forwarder_->status().one_lane_until.has_value());
  clock_.advance(seconds(5));  // the hold is over, the minute is not
  gated_.set_fail(false);
  const auto one_request_then_siblings = [this](int requests_before) {
    std::thread first([this] { forwarder_->step(); });
    EXPECT_TRUE(gated_.wait_in_flight(1));
    std::vector<std::thread> siblings;
    for (int lane = 0; lane < 2; ++lane) siblings.emplace_back([this] { forwarder_->step(); });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(gated_.in_flight(), 1);  // the siblings wait for the first request's answer
    EXPECT_EQ(gated_.requests(), requests_before + 1);
    gated_.open();
    first.join();
    for (auto& t : siblings) t.join();
    gated_.close();
  };
  one_request_then_siblings(1);  // the first request after the hold
  const int after_first = gated_.requests();
  one_request_then_siblings(after_first);  // after a success, still one at a time
  clock_.advance(kOneLaneAfterThrottle);   // no throttled answer for a minute
  EXPECT_FALSE(forwarder_->status().one_lane_until.has_value());
  run_lanes(3);
  EXPECT_TRUE(gated_.wait_in_flight(3));  // the three lanes go together again
  gated_.open();
  join();
  EXPECT_EQ(delivered(), 1);
}

// A withdrawal still waits only for requests on the wire, and stops what is not: with three
// lanes busy, the withdrawal returns once their requests have left, and nothing of the study
// starts afterwards.
TEST_F(ConcurrencyTest, EveryLaneHoldsTheSendGateUntilItsRequestLeft) {
  dest_.batch_max_instances = 1;
  make_forwarder();
  for (int i = 1; i <= 6; ++i) receive("1.2.7", i);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  std::mutex m;
  std::condition_variable cv;
  int before = 0;
  bool go = false;
  forwarder_->set_before_send_for_test([&] {
    std::unique_lock lock(m);
    ++before;
    cv.notify_all();
    cv.wait(lock, [&] { return go; });
  });
  run_lanes(3);
  {
    std::unique_lock lock(m);
    ASSERT_TRUE(cv.wait_for(lock, seconds(10), [&] { return before == 3; }));
  }
  // Three permits are held (no request has left): a withdrawal must wait for all three.
  std::atomic<bool> locked{false};
  std::thread withdrawal([&] {
    catalog_->delivery.send_gate_for_test().lock();
    locked = true;
    catalog_->delivery.send_gate_for_test().unlock();
  });
  while (catalog_->delivery.send_gate_for_test().waiting_writers_for_test() == 0)
    std::this_thread::yield();
  EXPECT_FALSE(locked);
  {
    std::lock_guard lock(m);
    go = true;
  }
  cv.notify_all();
  withdrawal.join();  // the three requests left (request_sent released their permits)
  EXPECT_TRUE(locked);
  gated_.open();
  join();
  EXPECT_EQ(gated_.times_sent().size(), 6u);
}

// One sender per lane, each used by one send() at a time.
class CountingMember final : public senders::Sender {
 public:
  explicit CountingMember(std::atomic<int>& busy_members) : busy_members_(busy_members) {}
  using senders::Sender::send;
  senders::Outcome send(const std::vector<senders::Item>&, const senders::SendContext&) override {
    if (busy_.exchange(true)) reentered = true;
    ++busy_members_;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    --busy_members_;
    busy_ = false;
    ++uses;
    senders::Outcome o;
    o.kind = senders::OutcomeKind::kOk;
    return o;
  }
  std::atomic<bool> reentered{false};
  std::atomic<int> uses{0};

 private:
  std::atomic<bool> busy_{false};
  std::atomic<int>& busy_members_;
};

TEST(SenderPool, LendsEachMemberToOneSendAtATime) {
  std::atomic<int> busy{0};
  std::vector<std::unique_ptr<senders::Sender>> members;
  std::vector<CountingMember*> raw;
  for (int i = 0; i < 3; ++i) {
    auto m = std::make_unique<CountingMember>(busy);
    raw.push_back(m.get());
    members.push_back(std::move(m));
  }
  auto pool = senders::make_sender_pool(std::move(members));
  std::vector<std::thread> threads;
  std::atomic<int> max_busy{0};
  for (int t = 0; t < 6; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        pool->send({});
        max_busy = std::max(max_busy.load(), busy.load());
      }
    });
  for (auto& t : threads) t.join();
  int uses = 0;
  for (auto* m : raw) {
    EXPECT_FALSE(m->reentered);
    uses += m->uses;
  }
  EXPECT_EQ(uses, 30);
  EXPECT_LE(max_busy.load(), 3);
}

TEST(SenderPool, OneMemberIsThatMember) {
  std::atomic<int> busy{0};
  std::vector<std::unique_ptr<senders::Sender>> members;
  members.push_back(std::make_unique<CountingMember>(busy));
  senders::Sender* raw = members.front().get();
  EXPECT_EQ(senders::make_sender_pool(std::move(members)).get(), raw);
}

}  // namespace
}  // namespace dirgw::scheduler
