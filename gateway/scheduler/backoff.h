// Exponential backoff with full jitter: the delay before retry n is uniform in
// [0, min(max, initial * 2^n)], so that many gateways recovering from the same outage do not
// retry in lock-step. A repository's Retry-After (429/503) is honoured: never sooner than it
// says (up to a configured bound), plus a random extra so that gateways told the same thing do
// not come back in the same second. The circuit breaker's cool-down is jittered too
// (docs/scaling.md: how many gateways share one repository).
#pragma once

#include <chrono>
#include <optional>
#include <random>

namespace dirgw::scheduler {

using Millis = std::chrono::milliseconds;

// The jitter policy, pure (the random source is the caller's).
struct JitterPolicy {
  // A Retry-After longer than this is cut to it (a repository's typo must not stop a gateway
  // for days); 0: no bound beyond the caller's own maximum.
  Millis retry_after_max{std::chrono::minutes(15)};
  // The extra wait after a Retry-After is uniform in [0, max(min_spread, spread * delay)]:
  // enough that gateways told the same thing do not come back in the same instant, small enough
  // that they come back together to share what the repository admits (a wide spread lets the
  // first one back take everything that accumulated; docs/scaling.md).
  double spread = 0.25;
  Millis min_spread{250};
  // A circuit's cool-down c becomes uniform in [c * (1 - cooldown_spread), c].
  double cooldown_spread = 0.5;
};

class Backoff {
 public:
  Backoff(Millis initial, Millis max, std::uint64_t seed = std::random_device{}(),
          JitterPolicy jitter = {})
      : initial_(initial), max_(max), jitter_(jitter), rng_(seed) {}

  // The ceiling for the given number of failed attempts so far (>= 1).
  Millis ceiling(int attempts) const;
  // The delay before the next attempt. With a Retry-After the repository's word wins:
  // after_retry_after(*retry_after) (not the exponential delay: the repository said when).
  Millis next(int attempts, std::optional<Millis> retry_after = std::nullopt);
  // Retry-After honoured: at least min(retry_after, bound), plus the jitter; at most
  // bound * (1 + spread) + min_spread.
  Millis after_retry_after(Millis retry_after);
  // A circuit's cool-down, jittered down so that gateways whose circuits opened together probe
  // at different times; never more than `cooldown`.
  Millis cooldown(Millis cooldown);
  // The bound in force for a Retry-After: jitter.retry_after_max (if set), else max.
  Millis retry_after_bound() const;

 private:
  Millis uniform(Millis lo, Millis hi);
  Millis initial_, max_;
  JitterPolicy jitter_;
  std::mt19937_64 rng_;
};

}  // namespace dirgw::scheduler
