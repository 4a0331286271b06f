#include "scheduler/backoff.h"

#include <algorithm>

namespace dirgw::scheduler {

Millis Backoff::ceiling(int attempts) const {
  if (attempts < 1) attempts = 1;
  Millis c = initial_;
  for (int i = 1; i < attempts && c < max_; ++i) c *= 2;
  return std::min(c, max_);
}

Millis Backoff::next(int attempts, std::optional<Millis> retry_after) {
  const Millis c = ceiling(attempts);
  std::uniform_int_distribution<long long> dist(0, c.count());
  Millis d(dist(rng_));
  if (retry_after) d = std::max(d, std::min(*retry_after, max_));
  return d;
}

}  // namespace dirgw::scheduler
