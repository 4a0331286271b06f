// Simulated time for unit tests: advances only when the test says so.
#pragma once

#include "common/clock.h"

namespace dirgw::testing {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimePoint start = from_epoch_ms(1'800'000'000'000)) : now_(start) {}
  TimePoint now() const override { return now_; }
  void advance(std::chrono::milliseconds d) { now_ += d; }

 private:
  TimePoint now_;
};

}  // namespace dirgw::testing
