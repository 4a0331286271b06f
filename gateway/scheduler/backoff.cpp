#include "scheduler/backoff.h"

#include <algorithm>

namespace dirgw::scheduler {

Millis Backoff::ceiling(int attempts) const {
  if (attempts < 1) attempts = 1;
  Millis c = initial_;
  for (int i = 1; i < attempts && c < max_; ++i) c *= 2;
  return std::min(c, max_);
}

Millis Backoff::uniform(Millis lo, Millis hi) {
  if (hi <= lo) return lo;
  std::uniform_int_distribution<long long> dist(lo.count(), hi.count());
  return Millis(dist(rng_));
}

Millis Backoff::next(int attempts, std::optional<Millis> retry_after) {
  if (retry_after) return after_retry_after(*retry_after);
  return uniform(Millis(0), ceiling(attempts));
}

Millis Backoff::retry_after_bound() const {
  return jitter_.retry_after_max.count() > 0 ? jitter_.retry_after_max : max_;
}

Millis Backoff::after_retry_after(Millis retry_after) {
  const Millis wait = std::clamp(retry_after, Millis(0), retry_after_bound());
  const auto spread = Millis(
      static_cast<long long>(static_cast<double>(wait.count()) * std::max(0.0, jitter_.spread)));
  return wait + uniform(Millis(0), std::max(jitter_.min_spread, spread));
}

Millis Backoff::cooldown(Millis cooldown) {
  const double keep = 1.0 - std::clamp(jitter_.cooldown_spread, 0.0, 1.0);
  const Millis lo(static_cast<long long>(static_cast<double>(cooldown.count()) * keep));
  return uniform(lo, cooldown);
}

}  // namespace dirgw::scheduler
