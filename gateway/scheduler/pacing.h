// Self-pacing after throttling (issue 15, docs/scaling.md), opt-in (retry.pacing.enabled). A
// gateway the repository never throttled sends as fast as it can. Once a request is answered
// 429/503, the gateway paces its own requests to a destination: AIMD on a request rate, as TCP
// does on its window. A throttled request multiplies the rate by `decrease` (and the
// Retry-After hold is kept as well); every second of admitted requests adds `increase`
// requests/s. It sends fewer requests the repository refuses, but behind a token bucket the
// refusals are too few for AIMD to even the rates out, and gateways that pace share the
// repository less evenly than gateways that only hold as told (measured, and modelled in
// bench/fairness_sim.py): hence off by default. With no throttling for `release_after` the
// pacing ends. Pure: times come from the caller (tests use a fake clock).
#pragma once

#include <chrono>
#include <optional>
#include <random>

#include "common/clock.h"

namespace dirgw::scheduler {

struct PacingPolicy {
  bool enabled = true;
  double decrease = 0.5;  // a throttled request multiplies the rate by this
  double increase = 1.0;  // requests/s added per second of admitted requests
  std::chrono::milliseconds release_after{std::chrono::minutes(5)};  // no throttling: pacing ends
  double min_rate = 0.1;  // requests/s: never slower than one request per 10 s
};

class Pacer {
 public:
  enum class Answer { kAdmitted, kThrottled, kFailed };
  explicit Pacer(PacingPolicy policy = {}, std::uint64_t seed = std::random_device{}())
      : policy_(policy), rng_(seed) {}

  // When the next request may start; none: now (not pacing, or its time has come).
  std::optional<TimePoint> wait_until(TimePoint now);
  // A request starts now.
  void on_request(TimePoint now);
  // The answer to the request started last. kThrottled: 429/503 for the whole request, the
  // repository's hold ends at `resume_at` (the rate grows again only from then). kFailed: no
  // answer worth learning from (time-out, reset, other 5xx): no growth across it.
  void on_answer(TimePoint now, Answer answer, TimePoint resume_at = {});
  // The paced rate in requests/s; none when not pacing (never throttled, or released).
  std::optional<double> rate(TimePoint now) const;

 private:
  bool pacing(TimePoint now) const;
  void grow(TimePoint now);  // the additive increase from grow_from_ to now
  PacingPolicy policy_;
  bool active_ = false;
  double rate_ = 0;        // requests/s while active_
  TimePoint grow_from_{};  // the additive increase counts from here
  TimePoint last_throttled_{};
  std::optional<TimePoint> last_start_;
  // The start before last_start_, when no hold lies between them: their gap is the rate this
  // gateway actually sent at (pacing may not be the limit: slow requests, little work).
  std::optional<TimePoint> prev_start_;
  bool held_since_start_ = false;    // a throttle came after last_start_
  bool admitted_since_cut_ = false;  // an admitted answer since the last cut
  std::mt19937_64 rng_;
  std::chrono::milliseconds interval_{0};  // to the next request: 1/rate, jittered
};

}  // namespace dirgw::scheduler
