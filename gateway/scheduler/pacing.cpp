#include "scheduler/pacing.h"

#include <algorithm>

namespace dirgw::scheduler {

namespace {

constexpr double kJitter = 0.5;

double seconds_between(TimePoint from, TimePoint to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

void Pacer::grow(TimePoint now) {
  // Per second, whatever the rate: a slow gateway grows as fast as a quick one (that is what
  // makes the shares converge). An idle spell earns no more than two requests' worth.
  rate_ += policy_.increase *
           std::clamp(seconds_between(grow_from_, now), 0.0, std::max(1.0, 2.0 / rate_));
  grow_from_ = std::max(grow_from_, now);
}

bool Pacer::pacing(TimePoint now) const {
  return active_ && policy_.enabled && now - last_throttled_ < policy_.release_after;
}

std::optional<double> Pacer::rate(TimePoint now) const {
  if (!pacing(now)) return std::nullopt;
  return rate_;
}

std::optional<TimePoint> Pacer::wait_until(TimePoint now) {
  if (active_ && !pacing(now)) active_ = false;  // released: full speed again
  if (!active_ || !last_start_) return std::nullopt;
  const TimePoint due = *last_start_ + interval_;
  if (due <= now) return std::nullopt;
  return due;
}

void Pacer::on_request(TimePoint now) {
  prev_start_ = held_since_start_ ? std::nullopt : last_start_;
  last_start_ = now;
  held_since_start_ = false;
  // Jittered around 1/rate: strictly periodic gateways lock into phase with the repository's
  // refills, and the one that always arrives just after a refill always wins.
  if (active_) {
    std::uniform_real_distribution<double> spread(1.0 - kJitter, 1.0 + kJitter);
    interval_ = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::duration<double>(spread(rng_) / rate_));
  }
}

void Pacer::on_answer(TimePoint now, Answer answer, TimePoint resume_at) {
  if (!policy_.enabled) return;
  switch (answer) {
    case Answer::kAdmitted:
      admitted_since_cut_ = true;
      if (pacing(now)) grow(now);
      return;
    case Answer::kFailed:
      grow_from_ = std::max(grow_from_, now);
      return;
    case Answer::kThrottled:
      break;
  }
  // What this gateway actually sent at: the gap between its last two requests, or (the first
  // request, or one right after a hold) how long the throttled request took, i.e. as fast as it
  // could go. Pacing that was not the limit is not what gets cut.
  double sent_at = 0;
  if (last_start_) {
    const double gap = prev_start_ ? seconds_between(*prev_start_, *last_start_)
                                   : seconds_between(*last_start_, now);
    sent_at = 1.0 / std::max(gap, 0.001);
  }
  const bool was_pacing = pacing(now);
  if (was_pacing) grow(now);  // up to this answer: a slow gateway is not short-changed
  double current = was_pacing ? rate_ : sent_at;
  if (was_pacing && prev_start_) current = std::min(current, sent_at);
  if (current <= 0) current = policy_.min_rate / policy_.decrease;
  // One cut per hold, as TCP cuts once per window: the first request after a hold answered 429
  // again says nothing new (the others grew into the room this one left) and costs another hold
  // already; cutting again would drive an unlucky gateway down and down.
  if (!was_pacing || admitted_since_cut_)
    rate_ = std::max(policy_.min_rate, current * policy_.decrease);
  admitted_since_cut_ = false;
  active_ = true;
  last_throttled_ = now;
  grow_from_ = std::max(now, resume_at);
  held_since_start_ = true;
  interval_ = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::duration<double>(1.0 / rate_));
}

}  // namespace dirgw::scheduler
