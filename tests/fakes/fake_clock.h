// Simulated time for unit tests: advances only when the test says so.
#pragma once

#include <chrono>

#include "common/clock.h"

namespace dirgw::testing {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimePoint start = from_epoch_ms(1'800'000'000'000)) : now_(start) {}
  TimePoint now() const override { return now_; }
  // Any duration, down to the clock's own resolution (a paced upload sleeps microseconds).
  template <class Rep, class Period>
  void advance(std::chrono::duration<Rep, Period> d) {
    now_ += std::chrono::duration_cast<TimePoint::duration>(d);
  }

 private:
  TimePoint now_;
};

}  // namespace dirgw::testing
