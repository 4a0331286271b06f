// Exponential backoff with full jitter: the delay before retry n is uniform in
// [0, min(max, initial * 2^n)], so that many gateways recovering from the same outage do not
// retry in lock-step. A repository's Retry-After is honoured as a lower bound.
#pragma once

#include <chrono>
#include <optional>
#include <random>

namespace dirgw::scheduler {

using Millis = std::chrono::milliseconds;

class Backoff {
 public:
  Backoff(Millis initial, Millis max, std::uint64_t seed = std::random_device{}())
      : initial_(initial), max_(max), rng_(seed) {}

  // The ceiling for the given number of failed attempts so far (>= 1).
  Millis ceiling(int attempts) const;
  Millis next(int attempts, std::optional<Millis> retry_after = std::nullopt);

 private:
  Millis initial_, max_;
  std::mt19937_64 rng_;
};

}  // namespace dirgw::scheduler
