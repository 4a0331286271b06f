// Forwarding on a schedule (issue 14): upload windows hold a destination's work, STAT studies
// bypass them and the queue order, operator prioritization. FakeClock starts Fri 2027-01-15
// 08:00 UTC.
#include <gtest/gtest.h>
#include <unistd.h>

#include <deque>
#include <filesystem>

#include "fakes/admit.h"
#include "fakes/fake_clock.h"
#include "forwarder_fixture.h"
#include "scheduler/scheduler.h"

namespace dirgw::scheduler {
namespace {

namespace fs = std::filesystem;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

using testing_support::ForwarderFixture;
using testing_support::ScriptedSender;

class ScheduleTest : public ForwarderFixture {};

// The daily 10:00-11:00 UTC window: closed at the fixture's start (08:00).
ForwardSchedule ten_to_eleven(bool stat_bypass = true) {
  ForwardSchedule s;
  s.windows = *parse_windows({"Mon-Sun 10:00-11:00"}, "UTC");
  s.stat_bypass = stat_bypass;
  return s;
}

TEST_F(ScheduleTest, OutsideTheWindowNothingIsSentAndStatusSaysWhenItOpens) {
  forwarder_->set_schedule(ten_to_eleven());
  receive("1.2.3", 1);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  auto r = forwarder_->step();
  EXPECT_EQ(r.sent, 0);
  EXPECT_TRUE(sender_.calls.empty());
  ASSERT_TRUE(r.next.has_value());
  EXPECT_EQ(*r.next, clock_.now() + hours(2));  // wakes when the window opens
  const auto st = forwarder_->status();
  EXPECT_TRUE(st.scheduled);
  EXPECT_FALSE(st.window_open);
  ASSERT_TRUE(st.next_open.has_value());
  EXPECT_EQ(format_utc(*st.next_open), format_utc(clock_.now() + hours(2)));
  EXPECT_EQ(state("1.2.3"), catalog::kReady);  // waiting, not failed

  clock_.advance(hours(2));
  EXPECT_EQ(forwarder_->step().sent, 1);
  EXPECT_EQ(state("1.2.3"), catalog::kSent);
  EXPECT_TRUE(forwarder_->status().window_open);
}

// A batch begun with the last answers (one request at a time) does not go once the window has
// closed: it is pending again, and waits for the next window with the rest.
TEST_F(ScheduleTest, ABatchBegunBeforeTheWindowClosedWaitsForTheNextWindow) {
  forwarder_->set_schedule(ten_to_eleven(false));
  for (int i = 1; i <= 15; ++i) receive("1.2.3", i);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  clock_.advance(hours(3) - seconds(1));  // 10:59:59
  EXPECT_EQ(forwarder_->step().sent, 10);
  clock_.advance(seconds(2));  // 11:00:01: closed
  auto r = forwarder_->step();
  EXPECT_EQ(r.sent, 0);
  EXPECT_EQ(sender_.calls.size(), 1u);
  ASSERT_TRUE(r.next.has_value());
  EXPECT_EQ(*r.next, clock_.now() + hours(23) - seconds(1));
  const auto study = catalog_->queries.study("1.2.3");
  for (const auto& i : (*study)->instances)
    EXPECT_NE(i.deliveries.at(0).state, "sending") << i.sop_instance_uid;
  clock_.advance(hours(23));
  EXPECT_EQ(forwarder_->step().sent, 5);
  EXPECT_EQ(state("1.2.3"), catalog::kSent);
}

TEST_F(ScheduleTest, AStatStudyBypassesTheClosedWindowAndOthersWait) {
  forwarder_->set_schedule(ten_to_eleven());
  receive("1.2.3", 1);
  receive("1.2.4", 2);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 2);
  ASSERT_EQ(catalog_->operators.prioritize("1.2.4")->changed, 1);
  auto r = forwarder_->step();
  EXPECT_EQ(r.sent, 1);
  ASSERT_EQ(sender_.calls.size(), 1u);
  EXPECT_EQ(sender_.calls[0], std::vector<std::string>{"1.2.4.1.2"});
  EXPECT_EQ(state("1.2.4"), catalog::kSent);
  EXPECT_EQ(state("1.2.3"), catalog::kReady);
  // Nothing more may go: the next wake-up is the window's opening.
  auto idle = forwarder_->step();
  EXPECT_EQ(idle.sent, 0);
  ASSERT_TRUE(idle.next.has_value());
  EXPECT_EQ(*idle.next, clock_.now() + hours(2));
}

TEST_F(ScheduleTest, WithoutStatBypassEvenStatWaitsForTheWindow) {
  forwarder_->set_schedule(ten_to_eleven(/*stat_bypass=*/false));
  receive("1.2.3", 1);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  ASSERT_EQ(catalog_->operators.prioritize("1.2.3")->changed, 1);
  EXPECT_EQ(forwarder_->step().sent, 0);
  EXPECT_TRUE(sender_.calls.empty());
}

TEST_F(ScheduleTest, StatGoesBeforeOlderStudiesThenOldestFirst) {
  dest_.batch_max_instances = 1;  // one instance per request: the order is visible
  receive("1.2.3", 1);
  clock_.advance(seconds(1));
  receive("1.2.4", 2);
  clock_.advance(seconds(1));
  receive("1.2.5", 3);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 3);
  ASSERT_EQ(catalog_->operators.prioritize("1.2.5")->changed, 1);
  for (int i = 0; i < 3; ++i) forwarder_->step();
  ASSERT_EQ(sender_.calls.size(), 3u);
  EXPECT_EQ(sender_.calls[0][0], "1.2.5.1.3");
  EXPECT_EQ(sender_.calls[1][0], "1.2.3.1.1");
  EXPECT_EQ(sender_.calls[2][0], "1.2.4.1.2");
}

TEST_F(ScheduleTest, PrioritizeTwiceChangesNothingAndUnknownStudyIsAnError) {
  receive("1.2.3", 1);
  EXPECT_EQ(catalog_->operators.prioritize("1.2.3")->changed, 1);
  EXPECT_EQ(catalog_->operators.prioritize("1.2.3")->changed, 0);
  EXPECT_FALSE(catalog_->operators.prioritize("9.9.9").ok());
}

TEST_F(ScheduleTest, OfficeHoursCapSwitchesTheBucketRate) {
  auto bucket = std::make_shared<TokenBucket>(clock_, 1000);
  ForwardSchedule s;
  s.bucket = bucket;
  s.rates.push_back({bucket, OfficeHours(*parse_windows({"Mon-Fri 09:00-17:00"}, "UTC")),
                     /*inside=*/100'000, /*outside=*/2'000'000});
  forwarder_->set_schedule(std::move(s));
  forwarder_->step();  // 08:00 Friday: outside office hours
  EXPECT_EQ(bucket->rate(), 2'000'000u);
  EXPECT_EQ(forwarder_->status().cap, 2'000'000u);
  clock_.advance(hours(2));
  forwarder_->step();
  EXPECT_EQ(bucket->rate(), 100'000u);
}

}  // namespace
}  // namespace dirgw::scheduler
