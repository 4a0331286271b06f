// Forwarding on a schedule (issue 14): upload windows hold a destination's work, STAT studies
// bypass them and the queue order, operator prioritization. FakeClock starts Fri 2027-01-15
// 08:00 UTC.
#include <gtest/gtest.h>
#include <unistd.h>

#include <deque>
#include <filesystem>

#include "fakes/admit.h"
#include "fakes/fake_clock.h"
#include "scheduler/scheduler.h"

namespace dirgw::scheduler {
namespace {

namespace fs = std::filesystem;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

// A sender that answers from a script and remembers what it was asked to send.
class ScriptedSender final : public senders::Sender {
 public:
  using Script = std::function<senders::Outcome(const std::vector<senders::Item>&)>;
  std::deque<Script> script;
  std::vector<std::vector<std::string>> calls;

  using senders::Sender::send;
  senders::Outcome send(const std::vector<senders::Item>& batch,
                        const senders::SendContext&) override {
    std::vector<std::string> uids;
    for (const auto& i : batch) uids.push_back(i.sop_instance_uid);
    calls.push_back(uids);
    if (script.empty()) return all(batch, senders::InstanceStatus::kAccepted, 200);
    auto s = std::move(script.front());
    script.pop_front();
    return s(batch);
  }

  static senders::Outcome all(const std::vector<senders::Item>& batch, senders::InstanceStatus st,
                              int http) {
    senders::Outcome o;
    o.kind = st == senders::InstanceStatus::kAccepted ? senders::OutcomeKind::kOk
             : st == senders::InstanceStatus::kRetry  ? senders::OutcomeKind::kRetry
                                                      : senders::OutcomeKind::kPermanent;
    o.http_status = http;
    for (const auto& i : batch) o.instances.push_back({i.sop_instance_uid, st, "scripted"});
    return o;
  }
};

class ScheduleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dirgw-window-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    dest_.name = "repo";
    dest_.url = "http://127.0.0.1:1/dicom-web";
    dest_.batch_max_instances = 10;
    dest_.retry_initial = seconds(10);
    dest_.retry_max = seconds(80);
    catalog_ = std::move(catalog::Catalog::open(dir_ / "c.db", {"repo"}, clock_)).value();
    spool_ =
        std::make_unique<ingest::Spool>(std::move(ingest::Spool::open(dir_ / "spool")).value());
    forwarder_ = std::make_unique<Forwarder>(dest_, *catalog_, *spool_, sender_, clock_, 42);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void receive(const std::string& study, int n) {
    catalog::NewInstance in;
    in.study_uid = study;
    in.series_uid = study + ".1";
    in.sop_instance_uid = study + ".1." + std::to_string(n);
    in.sop_class_uid = "1.2.840.10008.5.1.4.1.1.2";
    in.transfer_syntax = "1.2.840.10008.1.2.1";
    in.sha256 = std::string(60, 'a') + std::to_string(1000 + n);
    in.size = 100;
    ASSERT_TRUE(catalog_->ingest.record_instance(in).ok());
  }

  std::string state(const std::string& study) {
    for (const auto& s : *catalog_->queries.studies("", 100))
      if (s.study_uid == study) return s.destination_states.at(0).second;
    return "";
  }

  fs::path dir_;
  testing::FakeClock clock_;
  config::Destination dest_;
  std::unique_ptr<catalog::Catalog> catalog_;
  std::unique_ptr<ingest::Spool> spool_;
  ScriptedSender sender_;
  std::unique_ptr<Forwarder> forwarder_;
};

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
