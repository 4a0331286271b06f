// Token buckets on simulated time: no sleeps; acquire_blocking() is given a sleeper that
// advances the FakeClock.
#include "scheduler/bandwidth.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "fakes/fake_clock.h"

namespace dirgw::scheduler {
namespace {

using namespace std::chrono_literals;
using dirgw::testing::FakeClock;

constexpr std::uint64_t kKiB = 1024;

TEST(TokenBucket, StartsWithOneBurstAndRefillsAtTheRate) {
  FakeClock clock;
  TokenBucket b(clock, 100 * kKiB, 50 * kKiB);
  EXPECT_EQ(b.available(), 50 * kKiB);
  EXPECT_EQ(b.take(1, 80 * kKiB), 50 * kKiB);  // no more than the burst
  EXPECT_EQ(b.take(1, 1), 0u);
  EXPECT_EQ(b.time_until(10 * kKiB), 100ms);
  clock.advance(100ms);
  EXPECT_EQ(b.available(), 10 * kKiB);
  EXPECT_EQ(b.time_until(10 * kKiB), 0ms);
  // A long idle spell earns no more than the burst.
  clock.advance(1h);
  EXPECT_EQ(b.available(), 50 * kKiB);
  // Asking for more than the burst waits only for the burst.
  EXPECT_EQ(b.take(1, 50 * kKiB), 50 * kKiB);
  EXPECT_EQ(b.time_until(1'000 * kKiB), 500ms);
}

TEST(TokenBucket, TakeGrantsAtLeastTheMinimumOrNothing) {
  FakeClock clock;
  TokenBucket b(clock, 10 * kKiB, 16 * kKiB);
  EXPECT_EQ(b.take(16 * kKiB, 16 * kKiB), 16 * kKiB);
  clock.advance(1s);                            // 10 KiB earned
  EXPECT_EQ(b.take(16 * kKiB, 64 * kKiB), 0u);  // fewer than at_least: nothing taken
  EXPECT_EQ(b.available(), 10 * kKiB);
  EXPECT_EQ(b.take(4 * kKiB, 64 * kKiB), 10 * kKiB);  // everything there is
  // An at_least above the burst is lowered to it, so it can be met.
  clock.advance(10s);
  EXPECT_EQ(b.take(1'000 * kKiB, 1'000 * kKiB), 16 * kKiB);
}

TEST(TokenBucket, DefaultBurstIsATenthOfASecondAndAtLeast16KiB) {
  FakeClock clock;
  EXPECT_EQ(TokenBucket(clock, 10 * 1024 * kKiB).burst(), 1024 * kKiB);
  EXPECT_EQ(TokenBucket(clock, 1 * kKiB).burst(), TokenBucket::kMinBurst);
}

TEST(TokenBucket, RateChangesAtRunTime) {
  FakeClock clock;
  TokenBucket b(clock, 100 * kKiB, 100 * kKiB);
  EXPECT_EQ(b.take(1, 100 * kKiB), 100 * kKiB);
  clock.advance(500ms);  // 50 KiB earned at the old rate, kept
  b.set_rate(10 * kKiB, 100 * kKiB);
  EXPECT_EQ(b.available(), 50 * kKiB);
  clock.advance(1s);
  EXPECT_EQ(b.available(), 60 * kKiB);
  // A smaller burst cuts what is saved.
  b.set_rate(10 * kKiB, 20 * kKiB);
  EXPECT_EQ(b.available(), 20 * kKiB);
  // Unlimited grants everything asked and never waits.
  b.set_rate(0);
  EXPECT_TRUE(b.unlimited());
  EXPECT_EQ(b.take(1, 1'000'000'000), 1'000'000'000u);
  EXPECT_EQ(b.time_until(1'000'000'000), 0ms);
  // Back to a cap: it starts with a full burst.
  b.set_rate(100 * kKiB, 30 * kKiB);
  EXPECT_EQ(b.available(), 30 * kKiB);
}

TEST(TokenBucket, AClockSteppingBackEarnsNothing) {
  FakeClock clock;
  TokenBucket b(clock, 100 * kKiB, 100 * kKiB);
  EXPECT_EQ(b.take(1, 100 * kKiB), 100 * kKiB);
  clock.advance(-10min);
  EXPECT_EQ(b.available(), 0u);
  clock.advance(100ms);
  EXPECT_EQ(b.available(), 10 * kKiB);
}

TEST(TokenBucket, ConcurrentTakersNeverGetMoreThanTheBucketHolds) {
  FakeClock clock;  // frozen while the threads run: only the initial burst is there
  auto b = std::make_shared<TokenBucket>(clock, 1024 * kKiB, 256 * kKiB);
  std::atomic<std::uint64_t> total{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      for (int k = 0; k < 2000; ++k) total += b->take(1, 1000 + static_cast<std::uint64_t>(k));
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(total.load(), 256 * kKiB);
}

TEST(Throttle, DrawsTheSameBytesFromEveryBucket) {
  FakeClock clock;
  auto destination = std::make_shared<TokenBucket>(clock, 100 * kKiB, 100 * kKiB);
  auto gateway = std::make_shared<TokenBucket>(clock, 40 * kKiB, 40 * kKiB);
  Throttle t({destination, gateway});
  EXPECT_EQ(t.take(1, 64 * kKiB), 40 * kKiB);      // the smaller bucket decides
  EXPECT_EQ(destination->available(), 60 * kKiB);  // what the gateway could not match went back
  EXPECT_EQ(gateway->available(), 0u);
  // Nothing in the gateway bucket: the destination's is left untouched.
  EXPECT_EQ(t.take(1, 10 * kKiB), 0u);
  EXPECT_EQ(destination->available(), 60 * kKiB);
  EXPECT_EQ(t.time_until(20 * kKiB), 500ms);
  t.give_back(4 * kKiB);
  EXPECT_EQ(gateway->available(), 4 * kKiB);
  EXPECT_EQ(destination->available(), 64 * kKiB);

  Throttle none;
  EXPECT_TRUE(none.unlimited());
  EXPECT_EQ(none.take(1, 12345), 12345u);
}

TEST(AcquireBlocking, PacesAnUploadAtTheCap) {
  FakeClock clock;
  auto bucket = std::make_shared<TokenBucket>(clock, 100 * kKiB, 16 * kKiB);
  Throttle t({bucket});
  std::chrono::microseconds slept(0);
  auto sleep = [&](Micros d) {
    EXPECT_LE(d, 100ms);
    slept += d;
    clock.advance(std::chrono::ceil<std::chrono::milliseconds>(d));
  };
  const TimePoint start = clock.now();
  std::uint64_t sent = 0;
  while (sent < 1024 * kKiB) {
    std::uint64_t want = std::min<std::uint64_t>(256 * kKiB, 1024 * kKiB - sent);
    std::uint64_t got = acquire_blocking(t, want, sleep);
    ASSERT_GT(got, 0u);
    ASSERT_LE(got, want);
    sent += got;
  }
  // 1 MiB at 100 KiB/s, less the first burst: 10.08 s.
  auto elapsed = clock.now() - start;
  EXPECT_GE(elapsed, 10s);
  EXPECT_LE(elapsed, 10200ms);
}

TEST(AcquireBlocking, TwoTransfersShareTheGatewayCap) {
  // Two destinations capped at 300 KiB/s each, both under a 400 KiB/s gateway cap; taking turns
  // on simulated time, neither exceeds its own cap and together they stay under the gateway's.
  FakeClock clock;
  auto gateway = std::make_shared<TokenBucket>(clock, 400 * kKiB, 32 * kKiB);
  auto a_cap = std::make_shared<TokenBucket>(clock, 300 * kKiB, 32 * kKiB);
  auto b_cap = std::make_shared<TokenBucket>(clock, 300 * kKiB, 32 * kKiB);
  Throttle a({a_cap, gateway}), b({b_cap, gateway});
  std::uint64_t sent_a = 0, sent_b = 0;
  const TimePoint start = clock.now();
  for (int step = 0; step < 10'000; ++step) {
    clock.advance(1ms);
    if (step % 2 == 0) {
      sent_a += a.take(1, 64 * kKiB);
      sent_b += b.take(1, 64 * kKiB);
    } else {
      sent_b += b.take(1, 64 * kKiB);
      sent_a += a.take(1, 64 * kKiB);
    }
  }
  double seconds = std::chrono::duration<double>(clock.now() - start).count();
  EXPECT_LE(sent_a, 300 * kKiB * seconds + 32 * kKiB);
  EXPECT_LE(sent_b, 300 * kKiB * seconds + 32 * kKiB);
  EXPECT_LE(sent_a + sent_b, 400 * kKiB * seconds + 32 * kKiB);
  EXPECT_GE(sent_a + sent_b, 400 * kKiB * seconds * 0.95);
  // Taking turns at going first shares it about evenly.
  EXPECT_NEAR(static_cast<double>(sent_a) / static_cast<double>(sent_b), 1.0, 0.15);
}

TEST(AcquireBlocking, NoticesARateChangeWhileWaiting) {
  FakeClock clock;
  auto bucket = std::make_shared<TokenBucket>(clock, 1 * kKiB, 16 * kKiB);
  Throttle t({bucket});
  ASSERT_EQ(t.take(1, 16 * kKiB), 16 * kKiB);
  int sleeps = 0;
  auto sleep = [&](Micros d) {
    clock.advance(std::chrono::ceil<std::chrono::milliseconds>(d));
    if (++sleeps == 3) bucket->set_rate(1024 * kKiB, 16 * kKiB);  // office hours end
  };
  const TimePoint start = clock.now();
  EXPECT_EQ(acquire_blocking(t, 16 * kKiB, sleep), 16 * kKiB);
  // Three 100 ms steps and a short wait at the new rate, not the 16 s the old rate needed.
  EXPECT_LE(sleeps, 6);
  EXPECT_LT(clock.now() - start, 400ms);
}

}  // namespace
}  // namespace dirgw::scheduler
