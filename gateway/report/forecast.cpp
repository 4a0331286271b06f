#include "report/forecast.h"

namespace dirgw::report {

namespace {

using Seconds = std::chrono::duration<double>;

// To the millisecond: a forecast is not more exact, and a rate times a time then divides back.
TimePoint after(TimePoint t, double seconds) {
  return t + std::chrono::round<Millis>(Seconds(seconds));
}

}  // namespace

std::optional<TimePoint> drained_at(TimePoint now, std::int64_t backlog, double rate_per_s,
                                    const OpenTimes& windows) {
  if (backlog <= 0) return now;
  if (!(rate_per_s > 0)) return std::nullopt;
  double left = static_cast<double>(backlog) / rate_per_s;  // seconds of open window needed
  const TimePoint horizon = now + kForecastHorizon;
  TimePoint t = now;
  // Walk the open intervals from now; a week of windows is a few dozen steps.
  while (t < horizon) {
    auto open = windows.next_open ? windows.next_open(t) : std::optional<TimePoint>(t);
    if (!open || *open >= horizon) return std::nullopt;
    auto close = windows.next_close ? windows.next_close(*open) : std::nullopt;
    const double span = close ? Seconds(*close - *open).count() : left;
    if (!close || span >= left) {
      if (left > Seconds(horizon - *open).count()) return std::nullopt;
      return after(*open, left);
    }
    left -= span;
    t = *close;
  }
  return std::nullopt;
}

std::optional<TimePoint> floor_reached_at(TimePoint now, std::uint64_t free_bytes,
                                          std::uint64_t floor_bytes, double ingest_bytes_per_s) {
  if (free_bytes <= floor_bytes) return now;
  if (!(ingest_bytes_per_s > 0)) return std::nullopt;
  // Compared in seconds before it becomes a time: a trickle of ingest beside a large free
  // space gives centuries, past what a time point holds (UBSan caught the overflow).
  const double seconds = static_cast<double>(free_bytes - floor_bytes) / ingest_bytes_per_s;
  if (!(seconds <= Seconds(kForecastHorizon).count())) return std::nullopt;
  return after(now, seconds);
}

}  // namespace dirgw::report
