#include "scheduler/scheduler.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <set>

#include "fakes/admit.h"
#include "fakes/fake_clock.h"
#include "forwarder_fixture.h"

namespace dirgw::scheduler {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

using testing_support::ForwarderFixture;
using testing_support::ScriptedSender;

class SchedulerTest : public ForwarderFixture {};

TEST(Backoff, CeilingDoublesUpToMax) {
  Backoff b(seconds(10), seconds(80), 1);
  EXPECT_EQ(b.ceiling(1), seconds(10));
  EXPECT_EQ(b.ceiling(2), seconds(20));
  EXPECT_EQ(b.ceiling(4), seconds(80));
  EXPECT_EQ(b.ceiling(40), seconds(80));
}

TEST(Backoff, FullJitterStaysWithinBoundsAndVaries) {
  Backoff b(seconds(10), seconds(80), 7);
  std::set<long long> seen;
  for (int i = 0; i < 200; ++i) {
    auto d = b.next(3);
    EXPECT_GE(d.count(), 0);
    EXPECT_LE(d, seconds(40));
    seen.insert(d.count());
  }
  EXPECT_GT(seen.size(), 100u);  // spread, not lock-step
}

TEST(Backoff, RetryAfterIsALowerBoundCappedAtItsMaximumWithJitter) {
  Backoff b(seconds(1), seconds(60), 3, JitterPolicy{.retry_after_max = seconds(120)});
  EXPECT_EQ(b.retry_after_bound(), seconds(120));
  std::set<long long> seen;
  for (int i = 0; i < 200; ++i) {
    const auto d = b.next(1, seconds(30));
    EXPECT_GE(d, seconds(30));
    EXPECT_LE(d, milliseconds(37500));  // + up to a quarter of it
    seen.insert(d.count());
    const auto capped = b.next(5, seconds(3600));
    EXPECT_GE(capped, seconds(120));
    EXPECT_LE(capped, seconds(150));
  }
  EXPECT_GT(seen.size(), 100u);  // gateways told the same Retry-After do not come back together
}

TEST(Backoff, ShortRetryAfterStillSpreads) {
  Backoff b(seconds(30), seconds(3600), 5);
  long long lo = 1'000'000, hi = 0;
  for (int i = 0; i < 500; ++i) {
    const auto d = b.next(9, seconds(1));  // Retry-After wins over the exponential delay
    EXPECT_GE(d, seconds(1));
    EXPECT_LE(d, milliseconds(1250));  // at least 250 ms of spread
    lo = std::min<long long>(lo, d.count());
    hi = std::max<long long>(hi, d.count());
  }
  EXPECT_LT(lo, 1025);
  EXPECT_GT(hi, 1225);
  EXPECT_LE(b.next(1, milliseconds(0)), milliseconds(250));  // "now": within the minimum spread
}

TEST(Backoff, WithoutItsOwnBoundRetryAfterIsCappedAtMax) {
  Backoff b(seconds(1), seconds(60), 3, JitterPolicy{.retry_after_max = milliseconds(0)});
  EXPECT_EQ(b.retry_after_bound(), seconds(60));
  const auto d = b.next(1, seconds(3600));
  EXPECT_GE(d, seconds(60));
  EXPECT_LE(d, seconds(75));
}

TEST(Backoff, CircuitCooldownIsJitteredDownNeverUp) {
  Backoff b(seconds(1), seconds(60), 11);
  std::set<long long> seen;
  for (int i = 0; i < 300; ++i) {
    const auto c = b.cooldown(seconds(60));
    EXPECT_GE(c, seconds(30));
    EXPECT_LE(c, seconds(60));
    seen.insert(c.count() / 1000);
  }
  EXPECT_GT(seen.size(), 20u);  // probes spread over the second half of the cool-down
  Backoff fixed(seconds(1), seconds(60), 11, JitterPolicy{.cooldown_spread = 0});
  EXPECT_EQ(fixed.cooldown(seconds(60)), seconds(60));
}

TEST_F(SchedulerTest, ReadinessWaitsForStableAge) {
  Readiness r(catalog_->ingest, clock_, seconds(60));
  receive("1.2.3", 1);
  auto first = r.step();
  EXPECT_EQ(first.promoted, 0);
  ASSERT_TRUE(first.next.has_value());
  EXPECT_EQ(*first.next, clock_.now() + seconds(60));
  clock_.advance(seconds(59));
  EXPECT_EQ(r.step().promoted, 0);
  clock_.advance(seconds(1));
  auto second = r.step();
  EXPECT_EQ(second.promoted, 1);
  EXPECT_FALSE(second.next.has_value());
  EXPECT_EQ(state("1.2.3"), catalog::kStable);  // no policy stage here: it waits for one
}

TEST_F(SchedulerTest, AcceptedBatchMarksStudySent) {
  for (int i = 1; i <= 3; ++i) receive("1.2.3", i);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  auto r = forwarder_->step();
  EXPECT_EQ(r.sent, 3);
  ASSERT_EQ(sender_.calls.size(), 1u);
  EXPECT_EQ(sender_.calls[0].size(), 3u);
  EXPECT_EQ(state("1.2.3"), catalog::kSent);
  EXPECT_FALSE(forwarder_->step().did_work);
}

// One request at a time (issue 16): while a request is in flight, one commit records the previous
// request's answers and begins the next batch, so the next step sends it at once; a lane that
// stops records what is left and puts a begun batch back.
TEST_F(SchedulerTest, OneRequestAtATimeMakesOneCommitPerBatchBesideTheRequest) {
  for (int i = 1; i <= 25; ++i) receive("1.2.3", i);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  const auto in_state = [&](const std::string& want) {
    std::set<std::string> out;
    const auto study = catalog_->queries.study("1.2.3");
    for (const auto& i : (*study)->instances)
      if (i.deliveries.at(0).state == want) out.insert(i.sop_instance_uid);
    return out;
  };
  const auto uids = [](const std::vector<std::string>& call) {
    return std::set<std::string>(call.begin(), call.end());
  };
  auto r = forwarder_->step();
  EXPECT_EQ(r.sent, 10);
  ASSERT_EQ(sender_.calls.size(), 1u);
  const auto first = uids(sender_.calls[0]);
  // The first batch's answers wait for the next commit; the next batch is begun already.
  EXPECT_TRUE(in_state("sent").empty());
  auto begun = in_state("sending");
  EXPECT_EQ(begun.size(), 20u);
  for (const auto& uid : first) begun.erase(uid);
  EXPECT_EQ(begun.size(), 10u);
  EXPECT_EQ(state("1.2.3"), catalog::kSending);

  r = forwarder_->step();
  EXPECT_EQ(r.sent, 10);
  ASSERT_EQ(sender_.calls.size(), 2u);
  EXPECT_EQ(uids(sender_.calls[1]), begun) << "the step sent the batch begun with the commit";
  EXPECT_EQ(in_state("sent"), first);
  EXPECT_EQ(in_state("sending").size(), 15u);

  forwarder_->settle_next_batch();  // the lane stops
  EXPECT_EQ(in_state("sent").size(), 20u);
  EXPECT_TRUE(in_state("sending").empty());
  EXPECT_EQ(in_state("pending").size(), 5u);

  r = forwarder_->step();
  EXPECT_EQ(r.sent, 5);
  EXPECT_EQ(in_state("sent").size(), 25u) << "the last batch is recorded at once";
  EXPECT_EQ(state("1.2.3"), catalog::kSent);
  EXPECT_FALSE(forwarder_->step().did_work);
  EXPECT_EQ(sender_.calls.size(), 3u);
}

// A batch that failed whole puts the next one back and records its answers at once; with
// several lanes (concurrency > 1) every answer is recorded at once and nothing is begun ahead.
TEST_F(SchedulerTest, NoBatchIsBegunAheadAfterAWholeFailureOrWithSeveralLanes) {
  for (int i = 1; i <= 25; ++i) receive("1.2.3", i);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  const auto count = [&](const std::string& want) {
    int n = 0;
    const auto study = catalog_->queries.study("1.2.3");
    for (const auto& i : (*study)->instances) n += i.deliveries.at(0).state == want ? 1 : 0;
    return n;
  };
  sender_.script.push_back([](const std::vector<senders::Item>& b) {
    return ScriptedSender::all(b, senders::InstanceStatus::kRetry, 503);
  });
  EXPECT_EQ(forwarder_->step().retry, 10);
  EXPECT_EQ(count("sending"), 0);
  EXPECT_EQ(count("pending"), 25);
  // Nothing on the wire: the study waits, it is not shown as SENDING (issue 17, item 8).
  EXPECT_EQ(state("1.2.3"), catalog::kRetryWait);
  dest_.concurrency = 2;
  forwarder_ = std::make_unique<Forwarder>(dest_, *catalog_, *spool_, sender_, clock_, 42);
  clock_.advance(std::chrono::minutes(10));
  // The first of two lanes to start from idle takes half a batch (Forwarder::lanes_sending_).
  EXPECT_EQ(forwarder_->step().sent, 5);
  EXPECT_EQ(count("sending"), 0);
  EXPECT_EQ(count("sent"), 5);
}

// The commit made beside the request fails (the catalog refuses): the answers are kept, nothing
// is begun ahead, the lane looks again later, and once the catalog takes writes again every
// answer is recorded and every instance is sent exactly once.
TEST_F(SchedulerTest, ACommitRefusedBesideTheRequestKeepsTheAnswersForLater) {
  for (int i = 1; i <= 25; ++i) receive("1.2.3", i);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  const auto refuse = [&](bool on) {
    ASSERT_TRUE(catalog_->db()
                    .locked([on](catalog::Connection& db) {
                      db.exec(on ? "CREATE TRIGGER refuse BEFORE UPDATE ON destination_status "
                                   "BEGIN SELECT RAISE(ABORT, 'the disk refuses'); END"
                                 : "DROP TRIGGER refuse");
                    })
                    .ok());
  };
  EXPECT_EQ(forwarder_->step().sent, 10);  // its answers wait for the next commit
  refuse(true);
  auto r = forwarder_->step();  // that commit fails beside the second request
  EXPECT_EQ(r.sent, 10);
  ASSERT_TRUE(r.next.has_value());
  EXPECT_EQ(*r.next, clock_.now() + std::chrono::seconds(5));
  EXPECT_FALSE(forwarder_->step().did_work) << "nothing goes while answers are unrecorded";
  EXPECT_EQ(sender_.calls.size(), 2u);
  refuse(false);
  while (forwarder_->step().did_work) {
  }
  EXPECT_EQ(state("1.2.3"), catalog::kSent);
  std::set<std::string> sent;
  for (const auto& call : sender_.calls) sent.insert(call.begin(), call.end());
  EXPECT_EQ(sent.size(), 25u);
  EXPECT_EQ(sender_.calls.size(), 3u) << "each instance once";
}

// A de-identifying destination never gets an original: instances without their de-identified
// copy (here: none was ever made, as after releasing a de-identification quarantine) fail with
// the reason and nothing is sent.
TEST_F(SchedulerTest, ADeidentifyingDestinationIsNeverSentAnOriginal) {
  dest_.deidentify.enabled = true;
  forwarder_ = std::make_unique<Forwarder>(dest_, *catalog_, *spool_, sender_, clock_, 42);
  for (int i = 1; i <= 2; ++i) receive("1.2.3", i);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  forwarder_->step();
  EXPECT_TRUE(sender_.calls.empty());
  EXPECT_EQ(state("1.2.3"), catalog::kFailed);
  auto detail = **catalog_->queries.study("1.2.3");
  EXPECT_NE(detail.instances[0].deliveries[0].last_error.find("no de-identified copy"),
            std::string::npos);
}

TEST_F(SchedulerTest, PartialAnswerResendsOnlyUnacknowledgedAfterBackoff) {
  for (int i = 1; i <= 3; ++i) receive("1.2.3", i);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  sender_.script.push_back([](const std::vector<senders::Item>& b) {
    auto o = ScriptedSender::all(b, senders::InstanceStatus::kAccepted, 202);
    o.instances[1].status = senders::InstanceStatus::kRetry;
    o.kind = senders::OutcomeKind::kRetry;
    return o;
  });
  auto r = forwarder_->step();
  EXPECT_EQ(r.sent, 2);
  EXPECT_EQ(r.retry, 1);
  ASSERT_TRUE(r.next.has_value());
  EXPECT_LE(*r.next, clock_.now() + seconds(10));
  EXPECT_EQ(state("1.2.3"), catalog::kRetryWait);
  clock_.advance(seconds(10));
  auto again = forwarder_->step();
  EXPECT_EQ(again.sent, 1);
  ASSERT_EQ(sender_.calls.size(), 2u);
  EXPECT_EQ(sender_.calls[1], std::vector<std::string>{"1.2.3.1.2"});
  EXPECT_EQ(state("1.2.3"), catalog::kSent);
}

TEST_F(SchedulerTest, WholeBatchRetryWaitsAndHonoursRetryAfter) {
  receive("1.2.3", 1);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  sender_.script.push_back([](const std::vector<senders::Item>& b) {
    auto o = ScriptedSender::all(b, senders::InstanceStatus::kRetry, 503);
    o.retry_after = seconds(30);
    return o;
  });
  auto r = forwarder_->step();
  ASSERT_TRUE(r.next.has_value());
  EXPECT_GE(*r.next, clock_.now() + seconds(30));
  EXPECT_LE(*r.next, clock_.now() + milliseconds(37500));  // plus at most a quarter of it
  clock_.advance(seconds(29));
  EXPECT_FALSE(forwarder_->step().did_work);  // nothing is sent before the retry is due
  clock_.advance(seconds(16));
  EXPECT_EQ(forwarder_->step().sent, 1);
}

// 429 + Retry-After: the repository throttles. Every lane of the destination waits as told
// (a newly due instance too), and the circuit stays closed: the repository answers.
TEST_F(SchedulerTest, ThrottledRequestHoldsTheWholeDestinationAndLeavesTheCircuitClosed) {
  dest_.circuit_failures = 2;
  receive("1.2.3", 1);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  auto throttled = [](const std::vector<senders::Item>& b) {
    auto o = ScriptedSender::all(b, senders::InstanceStatus::kRetry, 429);
    o.retry_after = seconds(4);
    return o;
  };
  sender_.script = {throttled, throttled, throttled};
  for (int round = 0; round < 3; ++round) {
    auto r = forwarder_->step();
    EXPECT_EQ(r.retry, round == 0 ? 1 : 2);  // from round 1 the second study goes along
    ASSERT_TRUE(r.next.has_value());
    EXPECT_GE(*r.next, clock_.now() + seconds(4));
    EXPECT_LE(*r.next, clock_.now() + seconds(5));  // 4 s + up to 1 s of jitter, not 10 s * 2^n
    EXPECT_EQ(forwarder_->status().circuit, Circuit::kClosed);
    ASSERT_TRUE(forwarder_->status().held_until.has_value());
    if (round == 0) {
      // Another study becomes due meanwhile: it waits for the hold as well.
      receive("1.2.4", 1);
      ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
      clock_.advance(seconds(3));
      EXPECT_FALSE(forwarder_->step().did_work);
      EXPECT_EQ(sender_.calls.size(), 1u);
      clock_.advance(seconds(2));
    } else {
      clock_.advance(seconds(5));
    }
  }
  EXPECT_EQ(forwarder_->step().sent, 2);  // the hold is over: everything goes
  EXPECT_FALSE(forwarder_->status().held_until.has_value());
}

// 503 + Retry-After counts towards the circuit (the repository is down) and the hold applies.
TEST_F(SchedulerTest, UnavailableWithRetryAfterOpensTheCircuitAndHolds) {
  dest_.circuit_failures = 1;
  dest_.circuit_cooldown = seconds(2);
  receive("1.2.3", 1);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  sender_.script.push_back([](const std::vector<senders::Item>& b) {
    auto o = ScriptedSender::all(b, senders::InstanceStatus::kRetry, 503);
    o.retry_after = seconds(20);
    return o;
  });
  auto r = forwarder_->step();
  EXPECT_EQ(forwarder_->status().circuit, Circuit::kOpen);
  ASSERT_TRUE(r.next.has_value());
  EXPECT_GE(*r.next, clock_.now() + seconds(20));  // the longer of cool-down and Retry-After
  clock_.advance(seconds(19));
  EXPECT_FALSE(forwarder_->step().did_work);
  clock_.advance(seconds(11));
  EXPECT_EQ(forwarder_->step().sent, 1);
  EXPECT_EQ(forwarder_->status().circuit, Circuit::kClosed);
}

TEST_F(SchedulerTest, PermanentRefusalDoesNotBlockTheRest) {
  for (int i = 1; i <= 2; ++i) receive("1.2.3", i);
  receive("1.2.4", 1);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 2);
  sender_.script.push_back([](const std::vector<senders::Item>& b) {
    auto o = ScriptedSender::all(b, senders::InstanceStatus::kAccepted, 202);
    o.instances[0].status = senders::InstanceStatus::kPermanent;
    o.instances[0].reason = "FailureReason 0xA900";
    o.kind = senders::OutcomeKind::kPermanent;
    return o;
  });
  auto r = forwarder_->step();
  EXPECT_EQ(r.refused, 1);
  EXPECT_EQ(r.sent, 2);
  EXPECT_EQ(state("1.2.3"), catalog::kFailed);
  EXPECT_EQ(state("1.2.4"), catalog::kSent);
  EXPECT_EQ(catalog_->queries.status()->destinations[0].last_error, "FailureReason 0xA900");
}

TEST_F(SchedulerTest, CircuitOpensAfterRepeatedWholeFailuresAndProbesWithOne) {
  dest_.circuit_failures = 2;
  dest_.circuit_cooldown = seconds(60);
  for (int i = 1; i <= 3; ++i) receive("1.2.3", i);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  auto refuse = [](const std::vector<senders::Item>& b) {
    return ScriptedSender::all(b, senders::InstanceStatus::kRetry, 0);
  };
  sender_.script = {refuse, refuse, refuse};
  forwarder_->step();
  EXPECT_EQ(forwarder_->status().circuit, Circuit::kClosed);
  clock_.advance(seconds(80));
  auto second = forwarder_->step();
  EXPECT_EQ(forwarder_->status().circuit, Circuit::kOpen);
  ASSERT_TRUE(second.next.has_value());
  // The cool-down is jittered down (30-60 s) so that gateways do not probe together.
  EXPECT_GE(*second.next, clock_.now() + seconds(30));
  EXPECT_LE(*second.next, clock_.now() + seconds(80));  // or the instances' own retry time
  const TimePoint probe_at = forwarder_->status().open_until;
  EXPECT_GE(probe_at, clock_.now() + seconds(30));
  EXPECT_LE(probe_at, clock_.now() + seconds(60));
  // While open, nothing is sent even if deliveries are due.
  clock_.advance(std::chrono::duration_cast<milliseconds>(probe_at - clock_.now()) - seconds(1));
  EXPECT_FALSE(forwarder_->step().did_work);
  EXPECT_EQ(sender_.calls.size(), 2u);
  // Then one probe of a single instance (once one is due); it fails, the pause doubles.
  clock_.advance(seconds(81));
  auto probe = forwarder_->step();
  ASSERT_EQ(sender_.calls.size(), 3u);
  EXPECT_EQ(sender_.calls[2].size(), 1u);
  EXPECT_EQ(forwarder_->status().circuit, Circuit::kOpen);
  EXPECT_GE(*probe.next, clock_.now() + seconds(40));
  // A successful probe closes it and full batches resume.
  clock_.advance(seconds(120));
  auto ok = forwarder_->step();
  EXPECT_EQ(ok.sent, 1);
  EXPECT_EQ(forwarder_->status().circuit, Circuit::kClosed);
  EXPECT_EQ(forwarder_->step().sent, 2);
}

// Issue 17, item 10: a repository that keeps answering 2xx without evidence of storing an
// instance (Orthanc drops some hostile objects so) has it quarantined after verify.max_resends,
// not retried until give_up_after and FAILED.
TEST_F(SchedulerTest, TakenWithoutEvidenceTooOftenIsQuarantinedNotFailed) {
  dest_.verify.max_resends = 2;
  for (int i = 1; i <= 2; ++i) receive("1.2.4", i);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  auto no_evidence = [](const std::vector<senders::Item>& b) {
    auto o = ScriptedSender::all(b, senders::InstanceStatus::kAccepted, 200);
    for (auto& i : o.instances)
      if (i.sop_instance_uid == "1.2.4.1.2") {
        i.status = senders::InstanceStatus::kRetry;
        i.reason = "not acknowledged in the answer";
        i.unconfirmed = true;
        o.kind = senders::OutcomeKind::kRetry;
      }
    return o;
  };
  sender_.script = {no_evidence, no_evidence, no_evidence};
  EXPECT_EQ(forwarder_->step().retry, 1);
  clock_.advance(seconds(60));
  EXPECT_EQ(forwarder_->step().retry, 1);
  clock_.advance(seconds(60));
  EXPECT_EQ(forwarder_->step().refused, 1);
  EXPECT_EQ(state("1.2.4"), "QUARANTINED");
  auto d = **catalog_->queries.study("1.2.4");
  EXPECT_NE(d.instances[1].deliveries[0].last_error.find(
                "the repository answered 3 times without evidence of storing it: quarantined"),
            std::string::npos)
      << d.instances[1].deliveries[0].last_error;
}

TEST_F(SchedulerTest, DeliveryFailingPastGiveUpAgeBecomesFailed) {
  dest_.give_up_after = seconds(100);
  receive("1.2.3", 1);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  auto transient = [](const std::vector<senders::Item>& b) {
    return ScriptedSender::all(b, senders::InstanceStatus::kRetry, 503);
  };
  sender_.script = {transient, transient, transient};
  EXPECT_EQ(forwarder_->step().retry, 1);
  clock_.advance(seconds(60));
  EXPECT_EQ(forwarder_->step().retry, 1);
  clock_.advance(seconds(60));
  auto last = forwarder_->step();
  EXPECT_EQ(last.refused, 1);
  EXPECT_EQ(state("1.2.3"), catalog::kFailed);
  auto d = **catalog_->queries.study("1.2.3");
  EXPECT_NE(d.instances[0].deliveries[0].last_error.find("gave up after failing for 100s"),
            std::string::npos);
}

}  // namespace
}  // namespace dirgw::scheduler

namespace dirgw::scheduler {
namespace {

// A 401/403 is the destination's trouble, not the studies': with a static token the sender
// reports the instances permanent, yet nothing fails; the destination pauses (circuit open,
// status says authentication failed) and the backlog goes once the credentials work again.
TEST_F(SchedulerTest, AuthenticationFailurePausesTheDestinationAndFailsNothing) {
  dest_.circuit_failures = 5;
  dest_.circuit_cooldown = seconds(60);
  dest_.give_up_after = seconds(30);
  for (int i = 1; i <= 3; ++i) receive("1.2.3", i);
  ASSERT_EQ(testing::promote_ready(*catalog_, to_epoch_ms(clock_.now())), 1);
  auto unauthorized = [](const std::vector<senders::Item>& b) {
    auto o = ScriptedSender::all(b, senders::InstanceStatus::kPermanent, 401);
    o.auth_failed = true;
    o.message = "HTTP 401";
    return o;
  };
  sender_.script = {unauthorized, unauthorized};
  auto r = forwarder_->step();
  EXPECT_EQ(r.refused, 0);
  EXPECT_EQ(r.retry, 3);
  EXPECT_EQ(forwarder_->status().circuit, Circuit::kOpen) << "one 401 is enough";
  EXPECT_TRUE(forwarder_->status().auth_failed);
  EXPECT_NE(state("1.2.3"), "FAILED");
  // Long past give_up_after: still not failed.
  clock_.advance(seconds(61));
  forwarder_->step();
  EXPECT_EQ(sender_.calls.size(), 2u);
  EXPECT_NE(state("1.2.3"), "FAILED");
  EXPECT_EQ(catalog_->queries.status()->destinations[0].pending_instances, 3);
  // Credentials restored: the probe and the rest go.
  clock_.advance(seconds(200));
  EXPECT_EQ(forwarder_->step().sent, 1);
  EXPECT_FALSE(forwarder_->status().auth_failed);
  EXPECT_EQ(forwarder_->step().sent, 2);
  EXPECT_EQ(state("1.2.3"), "SENT");
}

}  // namespace
}  // namespace dirgw::scheduler
