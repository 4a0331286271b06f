// dirgw status's forecasts (issue 15): the arithmetic, with real upload windows.
#include "report/forecast.h"

#include <gtest/gtest.h>

#include "scheduler/windows.h"

namespace dirgw::report {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

// 2026-12-02T10:00:00Z, a Wednesday.
const TimePoint kNow = from_epoch_ms(1'796'205'600'000);

TEST(Forecast, DrainedAtTheRateWhenAlwaysOpen) {
  EXPECT_EQ(format_utc(kNow), "2026-12-02T10:00:00Z");
  EXPECT_EQ(drained_at(kNow, 3600, 2.0), kNow + minutes(30));
  EXPECT_EQ(drained_at(kNow, 0, 0.0), kNow) << "nothing to send: drained now";
  EXPECT_FALSE(drained_at(kNow, 10, 0.0)) << "no rate yet: n/a";
  EXPECT_FALSE(drained_at(kNow, 1'000'000'000, 1.0)) << "beyond the horizon: n/a";
}

TEST(Forecast, DrainedCountsOnlyOpenWindowTime) {
  // Open 18:00-22:00 every day (UTC): 3 hours of sending needs tonight's 4 h window.
  auto set = scheduler::parse_windows({"Mon-Sun 18:00-22:00"}, "UTC");
  ASSERT_TRUE(set.ok());
  const auto& ws = *set;
  OpenTimes open{[&](TimePoint t) { return ws.next_open(t); },
                 [&](TimePoint t) { return ws.next_close(t); }};
  EXPECT_EQ(format_utc(*drained_at(kNow, 3 * 3600, 1.0, open)), "2026-12-02T21:00:00Z");
  // 6 hours: tonight's 4, then 2 of tomorrow's.
  EXPECT_EQ(format_utc(*drained_at(kNow, 6 * 3600, 1.0, open)), "2026-12-03T20:00:00Z");
  // Inside a window now: from now.
  EXPECT_EQ(format_utc(*drained_at(kNow + hours(9), 1800, 1.0, open)), "2026-12-02T19:30:00Z");
}

TEST(Forecast, FloorReachedAtTheIngestRate) {
  const std::uint64_t gib = 1ull << 30;
  EXPECT_EQ(floor_reached_at(kNow, 10 * gib, 4 * gib, 6.0 * gib / 3600), kNow + hours(1));
  EXPECT_EQ(floor_reached_at(kNow, 3 * gib, 4 * gib, 1.0), kNow) << "below the floor already";
  EXPECT_FALSE(floor_reached_at(kNow, 10 * gib, 4 * gib, 0.0)) << "nothing coming in: n/a";
  // A trickle beside terabytes free: centuries, past what a time point holds (UBSan aborted
  // dirgwd on this in dirgw status): beyond the horizon, n/a.
  EXPECT_FALSE(floor_reached_at(kNow, 4000 * gib, 4 * gib, 11.0));
  EXPECT_FALSE(floor_reached_at(kNow, 4000 * gib, 4 * gib, 1e-300));
}

TEST(Forecast, AFarBacklogIsBeyondTheHorizon) {
  EXPECT_FALSE(drained_at(kNow, 1'000'000'000, 1e-6, {}));
}

}  // namespace
}  // namespace dirgw::report
