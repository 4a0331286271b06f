#include "scheduler/bandwidth.h"

#include <algorithm>
#include <cmath>
#include <thread>

namespace dirgw::scheduler {

TokenBucket::TokenBucket(const Clock& clock, std::uint64_t rate_bytes_per_s, std::uint64_t burst)
    : clock_(clock),
      rate_(rate_bytes_per_s),
      burst_(burst != 0 ? burst : default_burst(rate_bytes_per_s)),
      tokens_(static_cast<double>(burst_)),
      last_(clock.now()) {}

std::uint64_t TokenBucket::default_burst(std::uint64_t rate) {
  return std::max<std::uint64_t>(rate / 10, kMinBurst);
}

void TokenBucket::refill_locked(TimePoint now) const {
  if (now <= last_) {
    // The wall clock stepped back (NTP): earn nothing for the lost span and start again.
    if (now < last_) last_ = now;
    return;
  }
  double seconds = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min(static_cast<double>(burst_), tokens_ + seconds * static_cast<double>(rate_));
  last_ = now;
}

void TokenBucket::set_rate(std::uint64_t rate_bytes_per_s, std::uint64_t burst) {
  std::lock_guard lock(mutex_);
  refill_locked(clock_.now());
  bool was_unlimited = rate_ == 0;
  rate_ = rate_bytes_per_s;
  burst_ = burst != 0 ? burst : default_burst(rate_bytes_per_s);
  tokens_ =
      was_unlimited ? static_cast<double>(burst_) : std::min(tokens_, static_cast<double>(burst_));
}

std::uint64_t TokenBucket::rate() const {
  std::lock_guard lock(mutex_);
  return rate_;
}

std::uint64_t TokenBucket::burst() const {
  std::lock_guard lock(mutex_);
  return burst_;
}

std::uint64_t TokenBucket::available() const {
  std::lock_guard lock(mutex_);
  if (rate_ == 0) return UINT64_MAX;
  refill_locked(clock_.now());
  return static_cast<std::uint64_t>(tokens_);
}

std::uint64_t TokenBucket::take(std::uint64_t at_least, std::uint64_t at_most) {
  std::lock_guard lock(mutex_);
  if (rate_ == 0) return at_most;
  refill_locked(clock_.now());
  auto have = static_cast<std::uint64_t>(tokens_);
  std::uint64_t floor = std::min({at_least, burst_, at_most});
  std::uint64_t grant = std::min(have, at_most);
  if (grant == 0 || grant < floor) return 0;
  tokens_ -= static_cast<double>(grant);
  return grant;
}

void TokenBucket::give_back(std::uint64_t n) {
  std::lock_guard lock(mutex_);
  if (rate_ == 0) return;
  tokens_ = std::min(static_cast<double>(burst_), tokens_ + static_cast<double>(n));
}

Micros TokenBucket::time_until(std::uint64_t n) const {
  std::lock_guard lock(mutex_);
  if (rate_ == 0) return Micros(0);
  refill_locked(clock_.now());
  double need = static_cast<double>(std::min(n, burst_)) - tokens_;
  if (need <= 0) return Micros(0);
  double us = std::ceil(need * 1e6 / static_cast<double>(rate_));
  return Micros(std::max<std::int64_t>(1, static_cast<std::int64_t>(us)));
}

Throttle::Throttle(std::vector<std::shared_ptr<TokenBucket>> buckets)
    : buckets_(std::move(buckets)) {
  std::erase(buckets_, nullptr);
}

bool Throttle::unlimited() const {
  return std::all_of(buckets_.begin(), buckets_.end(),
                     [](const auto& b) { return b->unlimited(); });
}

std::uint64_t Throttle::take(std::uint64_t at_least, std::uint64_t at_most) {
  // Bucket by bucket, never holding two locks: each grant is at most the one before, and what
  // earlier buckets gave beyond the final grant goes back to them.
  std::uint64_t grant = at_most;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    std::uint64_t g = buckets_[i]->take(at_least, grant);
    if (g < grant) {
      for (std::size_t k = 0; k < i; ++k) buckets_[k]->give_back(grant - g);
      grant = g;
    }
    if (grant == 0) return 0;
  }
  return grant;
}

void Throttle::give_back(std::uint64_t n) {
  for (auto& b : buckets_) b->give_back(n);
}

Micros Throttle::time_until(std::uint64_t n) const {
  Micros longest(0);
  for (const auto& b : buckets_) longest = std::max(longest, b->time_until(n));
  return longest;
}

std::uint64_t acquire_blocking(Throttle& throttle, std::uint64_t want, const Sleeper& sleep,
                               std::uint64_t quantum, Micros max_step) {
  if (want == 0) return 0;
  std::uint64_t at_least = std::min(want, std::max<std::uint64_t>(quantum, 1));
  for (;;) {
    std::uint64_t got = throttle.take(at_least, want);
    if (got > 0) return got;
    Micros wait = std::clamp(throttle.time_until(at_least), Micros(1), max_step);
    sleep(wait);
  }
}

void sleep_real(Micros d) { std::this_thread::sleep_for(d); }

}  // namespace dirgw::scheduler
