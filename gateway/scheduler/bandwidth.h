// Bandwidth caps: a token bucket per cap (one per destination, one for the whole gateway),
// shared by the transfers running at the same time; a transfer draws from every bucket it is
// subject to (Throttle). The buckets only do arithmetic over a Clock: the caller asks how many
// bytes it may send now and how long until more are allowed, so unit tests run on FakeClock.
// acquire_blocking() is the small adapter that sleeps, for libcurl's read callback.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "common/clock.h"

namespace dirgw::scheduler {

using Micros = std::chrono::microseconds;

// Thread-safe. Rate 0 means unlimited. The bucket holds at most `burst` bytes: that is how much
// may go at once after an idle spell, so over any span T at most burst + rate * T bytes go.
class TokenBucket {
 public:
  // burst 0: the default, a tenth of a second's worth and at least kMinBurst.
  TokenBucket(const Clock& clock, std::uint64_t rate_bytes_per_s, std::uint64_t burst = 0);
  TokenBucket(const TokenBucket&) = delete;
  TokenBucket& operator=(const TokenBucket&) = delete;

  static constexpr std::uint64_t kMinBurst = 16 * 1024;

  // Takes effect at once for every transfer drawing from the bucket (the office-hours cap).
  // What was earned at the old rate is kept, up to the new burst.
  void set_rate(std::uint64_t rate_bytes_per_s, std::uint64_t burst = 0);
  std::uint64_t rate() const;
  std::uint64_t burst() const;
  bool unlimited() const { return rate() == 0; }

  // Whole bytes that may go now.
  std::uint64_t available() const;
  // Takes min(at_most, available()) bytes when that is at least min(at_least, burst()), else
  // takes nothing and returns 0. Unlimited: at_most.
  std::uint64_t take(std::uint64_t at_least, std::uint64_t at_most);
  // Returns bytes taken but not sent (never above burst).
  void give_back(std::uint64_t n);
  // How long until min(n, burst()) bytes are available if nobody else takes any; 0 when they
  // are available now or the bucket is unlimited.
  Micros time_until(std::uint64_t n) const;

 private:
  static std::uint64_t default_burst(std::uint64_t rate);
  void refill_locked(TimePoint now) const;

  const Clock& clock_;
  mutable std::mutex mutex_;
  std::uint64_t rate_ = 0;
  std::uint64_t burst_ = 0;
  mutable double tokens_ = 0;
  mutable TimePoint last_;
};

// A transfer's view of the buckets it draws from. Copyable, cheap; thread-compatible (one per
// transfer), while the buckets behind it are shared.
class Throttle {
 public:
  Throttle() = default;
  explicit Throttle(std::vector<std::shared_ptr<TokenBucket>> buckets);

  bool unlimited() const;
  // Takes the same number of bytes, between at_least and at_most, from every bucket, or nothing
  // (0). Each bucket lowers at_least to its burst, so a small bucket cannot block forever.
  std::uint64_t take(std::uint64_t at_least, std::uint64_t at_most);
  void give_back(std::uint64_t n);
  // The longest wait among the buckets for n bytes.
  Micros time_until(std::uint64_t n) const;

 private:
  std::vector<std::shared_ptr<TokenBucket>> buckets_;
};

// Blocks until `throttle` grants between min(want, quantum) and `want` bytes, and returns the
// grant (> 0 for want > 0). Sleeps with `sleep` in steps of at most `max_step`, so a rate change
// or a freed budget is noticed soon. Tests pass a `sleep` that advances a FakeClock.
using Sleeper = std::function<void(Micros)>;
inline constexpr std::uint64_t kDefaultQuantum = 16 * 1024;
std::uint64_t acquire_blocking(Throttle& throttle, std::uint64_t want, const Sleeper& sleep,
                               std::uint64_t quantum = kDefaultQuantum,
                               Micros max_step = std::chrono::milliseconds(100));
// The production Sleeper: std::this_thread::sleep_for.
void sleep_real(Micros d);

}  // namespace dirgw::scheduler
