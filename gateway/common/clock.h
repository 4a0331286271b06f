// Time comes from a Clock so that tests run on simulated time (no sleeps, no wall clock).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace dirgw {

using TimePoint = std::chrono::system_clock::time_point;
using Millis = std::chrono::milliseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::system_clock::now(); }
};

// Milliseconds since the Unix epoch: how the catalog stores time.
inline std::int64_t to_epoch_ms(TimePoint t) {
  return std::chrono::duration_cast<Millis>(t.time_since_epoch()).count();
}
inline TimePoint from_epoch_ms(std::int64_t ms) { return TimePoint(Millis(ms)); }

// "2026-11-28T10:22:32Z"
std::string format_utc(TimePoint t);
std::string format_utc_ms(std::int64_t epoch_ms);

}  // namespace dirgw
