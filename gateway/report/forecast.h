// `dirgw status` forecasts (issue 15): when a destination's backlog will have drained at its
// recent rate, counting only the time its upload windows are open, and when the spool would
// reach its floor at the recent ingest rate if nothing left. Pure arithmetic: rates and windows
// come in, instants go out; nullopt means "n/a" (no rate yet, or not within the horizon).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>

#include "common/clock.h"

namespace dirgw::report {

// How far ahead a forecast looks: beyond it, "n/a".
inline constexpr std::chrono::hours kForecastHorizon{24 * 60};

// The upload windows as the scheduler knows them (scheduler::WindowSet::next_open /
// next_close); null functions: always open.
struct OpenTimes {
  std::function<std::optional<TimePoint>(TimePoint)> next_open;   // nullopt: never opens
  std::function<std::optional<TimePoint>(TimePoint)> next_close;  // nullopt: never closes
};

// When `backlog` items are sent at `rate_per_s`, sending only while open. `now` when there is
// no backlog; nullopt without a rate, or past the horizon.
std::optional<TimePoint> drained_at(TimePoint now, std::int64_t backlog, double rate_per_s,
                                    const OpenTimes& windows = {});

// When free space falls to `floor` at `ingest_bytes_per_s` with nothing removed; `now` when it
// is there already; nullopt without an ingest rate or past the horizon.
std::optional<TimePoint> floor_reached_at(TimePoint now, std::uint64_t free_bytes,
                                          std::uint64_t floor_bytes, double ingest_bytes_per_s);

}  // namespace dirgw::report
