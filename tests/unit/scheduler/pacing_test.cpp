// Self-pacing after throttling (scheduler/pacing.h): the AIMD rule, step by step on a fake clock,
// and the AIMD argument: gateways throttled together converge to equal rates.
#include "scheduler/pacing.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "fakes/fake_clock.h"

namespace dirgw::scheduler {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::FakeClock;
using Answer = Pacer::Answer;

// Two requests `gap` apart, the second throttled (its hold ends at once): pacing starts at
// half of 1/gap.
void throttle_after_gap(Pacer& p, FakeClock& clock, milliseconds gap) {
  p.on_request(clock.now());
  clock.advance(gap);
  p.on_request(clock.now());
  p.on_answer(clock.now(), Answer::kThrottled, clock.now());
}

TEST(Pacer, NeverThrottledNeverPaces) {
  FakeClock clock;
  Pacer p;
  for (int i = 0; i < 100; ++i) {
    EXPECT_FALSE(p.wait_until(clock.now()));
    p.on_request(clock.now());
    clock.advance(milliseconds(5));
    p.on_answer(clock.now(), Answer::kAdmitted);
    p.on_answer(clock.now(), Answer::kFailed);  // a time-out is not throttling either
  }
  EXPECT_FALSE(p.rate(clock.now()));
}

TEST(Pacer, FirstThrottleHalvesTheRateItSentAt) {
  FakeClock clock;
  Pacer p;
  p.on_request(clock.now());
  clock.advance(milliseconds(100));  // 10 requests/s
  p.on_request(clock.now());
  clock.advance(milliseconds(10));
  p.on_answer(clock.now(), Answer::kThrottled, clock.now() + seconds(1));
  ASSERT_TRUE(p.rate(clock.now()));
  EXPECT_DOUBLE_EQ(*p.rate(clock.now()), 5.0);
  // The next request: 200 ms after the last one started (the Retry-After hold is the
  // forwarder's; the pacer only spaces requests).
  const TimePoint last = clock.now() - milliseconds(10);
  EXPECT_EQ(p.wait_until(clock.now()), last + milliseconds(200));
  clock.advance(milliseconds(190));
  EXPECT_FALSE(p.wait_until(clock.now()));
}

TEST(Pacer, FirstRequestThrottledCutsFromHowFastItWent) {
  FakeClock clock;
  Pacer p;
  p.on_request(clock.now());
  clock.advance(milliseconds(50));  // as fast as it goes: 20 requests/s
  p.on_answer(clock.now(), Answer::kThrottled, clock.now() + seconds(1));
  EXPECT_DOUBLE_EQ(*p.rate(clock.now()), 10.0);
}

TEST(Pacer, AdmittedRequestsAddIncreasePerSecondFromTheEndOfTheHold) {
  FakeClock clock;
  Pacer p(PacingPolicy{.decrease = 0.5, .increase = 1.0});
  p.on_request(clock.now());
  clock.advance(milliseconds(250));
  p.on_request(clock.now());
  p.on_answer(clock.now(), Answer::kThrottled, clock.now() + seconds(1));
  EXPECT_DOUBLE_EQ(*p.rate(clock.now()), 2.0);
  clock.advance(seconds(1));  // the hold: no growth
  for (int i = 0; i < 4; ++i) {
    clock.advance(milliseconds(250));
    p.on_request(clock.now());
    p.on_answer(clock.now(), Answer::kAdmitted);
  }
  EXPECT_NEAR(*p.rate(clock.now()), 3.0, 1e-9);  // one second of admitted requests: +1
}

TEST(Pacer, AnIdleSpellOrAFailureEarnsNoMoreThanTwoRequestsWorth) {
  FakeClock clock;
  Pacer p(PacingPolicy{.decrease = 0.5, .increase = 1.0});
  throttle_after_gap(p, clock, seconds(1));
  EXPECT_DOUBLE_EQ(*p.rate(clock.now()), 0.5);
  clock.advance(seconds(30));  // nothing to send for 30 s: 4 s (two requests at 0.5/s) count
  p.on_request(clock.now());
  p.on_answer(clock.now(), Answer::kAdmitted);
  EXPECT_DOUBLE_EQ(*p.rate(clock.now()), 4.5);
  clock.advance(seconds(30));
  p.on_answer(clock.now(), Answer::kFailed);  // an outage: growth starts again from here
  clock.advance(milliseconds(500));
  p.on_answer(clock.now(), Answer::kAdmitted);
  EXPECT_DOUBLE_EQ(*p.rate(clock.now()), 5.0);
}

TEST(Pacer, ThrottledAgainCutsAgainAndNeverBelowTheFloor) {
  FakeClock clock;
  Pacer p(PacingPolicy{.decrease = 0.5, .increase = 0.01, .min_rate = 0.1});
  p.on_request(clock.now());
  clock.advance(milliseconds(100));
  p.on_answer(clock.now(), Answer::kThrottled, clock.now() + seconds(1));
  EXPECT_DOUBLE_EQ(*p.rate(clock.now()), 5.0);
  for (int i = 0; i < 20; ++i) {
    clock.advance(seconds(2));
    p.on_request(clock.now());
    p.on_answer(clock.now(), Answer::kAdmitted);
    p.on_request(clock.now());
    clock.advance(milliseconds(10));
    p.on_answer(clock.now(), Answer::kThrottled, clock.now() + seconds(1));
  }
  EXPECT_DOUBLE_EQ(*p.rate(clock.now()), 0.1);
}

TEST(Pacer, AThrottleRightAfterAHoldDoesNotCutAgain) {
  FakeClock clock;
  Pacer p(PacingPolicy{.decrease = 0.5});
  p.on_request(clock.now());
  clock.advance(milliseconds(100));
  p.on_answer(clock.now(), Answer::kThrottled, clock.now() + seconds(1));
  EXPECT_DOUBLE_EQ(*p.rate(clock.now()), 5.0);
  clock.advance(seconds(1));
  p.on_request(clock.now());  // the first request after the hold: 429 again
  p.on_answer(clock.now(), Answer::kThrottled, clock.now() + seconds(1));
  EXPECT_DOUBLE_EQ(*p.rate(clock.now()), 5.0);  // held again, not cut again
}

TEST(Pacer, APacedRateThatWasNotTheLimitIsNotWhatGetsCut) {
  FakeClock clock;
  Pacer p(PacingPolicy{.decrease = 0.5, .increase = 1.0});
  throttle_after_gap(p, clock, milliseconds(500));
  EXPECT_DOUBLE_EQ(*p.rate(clock.now()), 1.0);
  // Slow requests (2 s each): the rate grows to 7 requests/s, far above what goes.
  for (int i = 0; i < 5; ++i) {
    clock.advance(seconds(2));
    p.on_request(clock.now());
    p.on_answer(clock.now(), Answer::kAdmitted);
  }
  EXPECT_DOUBLE_EQ(*p.rate(clock.now()), 7.0);
  clock.advance(seconds(2));
  p.on_request(clock.now());
  p.on_answer(clock.now(), Answer::kThrottled, clock.now());
  EXPECT_DOUBLE_EQ(*p.rate(clock.now()), 0.25);  // half of one request per 2 s
}

TEST(Pacer, ReleasedAfterNoThrottlingForReleaseAfter) {
  FakeClock clock;
  Pacer p(PacingPolicy{.release_after = seconds(60)});
  p.on_request(clock.now());
  clock.advance(milliseconds(100));
  p.on_answer(clock.now(), Answer::kThrottled, clock.now());
  clock.advance(seconds(59));
  EXPECT_TRUE(p.rate(clock.now()));
  clock.advance(seconds(1));
  EXPECT_FALSE(p.rate(clock.now()));
  p.on_request(clock.now());
  EXPECT_FALSE(p.wait_until(clock.now()));  // full speed again
}

TEST(Pacer, DisabledOnlyHonoursRetryAfter) {
  FakeClock clock;
  Pacer p(PacingPolicy{.enabled = false});
  p.on_request(clock.now());
  clock.advance(milliseconds(100));
  p.on_answer(clock.now(), Answer::kThrottled, clock.now());
  p.on_request(clock.now());
  EXPECT_FALSE(p.wait_until(clock.now()));
  EXPECT_FALSE(p.rate(clock.now()));
}

// The AIMD argument: two gateways throttled together (the repository's bucket ran dry for both)
// and growing by the same step converge to equal rates, whatever they started from.
TEST(PacerSimulation, TwoGatewaysThrottledTogetherConverge) {
  FakeClock clock;
  Pacer fast(PacingPolicy{.decrease = 0.5, .increase = 1.0}, 1);
  Pacer slow(PacingPolicy{.decrease = 0.5, .increase = 1.0}, 2);
  slow.on_request(clock.now());
  clock.advance(seconds(1));
  slow.on_request(clock.now());  // slow goes at 1 request/s
  fast.on_request(clock.now());
  clock.advance(milliseconds(50));  // fast as fast as 20 requests/s
  fast.on_answer(clock.now(), Answer::kThrottled, clock.now());
  slow.on_answer(clock.now(), Answer::kThrottled, clock.now());
  ASSERT_GT(*fast.rate(clock.now()) / *slow.rate(clock.now()), 5.0);
  const double capacity = 16;  // requests/s the repository admits
  int cuts = 0;
  for (int step = 0; step < 600; ++step) {  // 60 s in steps of 100 ms
    clock.advance(milliseconds(100));
    for (Pacer* p : {&fast, &slow}) {
      p->on_request(clock.now());
      p->on_answer(clock.now(), Answer::kAdmitted);
    }
    if (*fast.rate(clock.now()) + *slow.rate(clock.now()) > capacity) {
      ++cuts;
      for (Pacer* p : {&fast, &slow}) {
        p->on_request(clock.now());
        p->on_answer(clock.now(), Answer::kThrottled, clock.now());
      }
    }
  }
  const double a = *fast.rate(clock.now()), b = *slow.rate(clock.now());
  EXPECT_GE(cuts, 5);
  EXPECT_LT(std::abs(a - b) / (a + b), 0.05) << a << " vs " << b;
}

}  // namespace
}  // namespace dirgw::scheduler
