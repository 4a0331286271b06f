// Upload windows: when a destination may be sent to, as weekly wall-clock spans in an IANA time
// zone ("Mon-Fri 19:00-07:00", "Sat,Sun 00:00-24:00"). Pure arithmetic over instants: no clock,
// no I/O beyond reading the system's tzdb once per zone. docs/scheduling.md has the semantics
// (overnight windows, both DST changes) and why they were chosen.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"

namespace date {
class time_zone;
}

namespace dirgw::scheduler {

// One spec: a set of week days and a wall-clock span that starts on each of those days.
struct Window {
  std::uint8_t days = 0;  // bit 0 Monday ... bit 6 Sunday
  int start_minute = 0;   // minutes after local midnight, 0..1439
  int end_minute = 0;     // 1..1440 (24:00); <= start_minute: the window ends the next day
  bool overnight() const { return end_minute <= start_minute; }
  // Canonical spelling, e.g. "Mon,Tue,Wed,Thu,Fri 19:00-07:00".
  std::string to_string() const;
};

// "DAYS HH:MM-HH:MM": DAYS is a comma list of Mon..Sun (any case) and ranges such as Mon-Fri or
// Fri-Mon (wrapping over the week end); the span's end may be 24:00 and, when not after the
// start, falls on the next day. The error says what is wrong and what is allowed; the caller
// adds the config key and line.
Result<Window> parse_window(std::string_view spec);

class WindowSet {
 public:
  // `time_zone` is an IANA name ("America/Toronto", "UTC") from the system tzdb.
  static Result<WindowSet> make(std::vector<Window> windows, const std::string& time_zone);

  // Open at `t` when some window occurrence covers it (begin inclusive, end exclusive).
  bool open_at(TimePoint t) const;
  // The first instant at or after `t` at which the set is open (`t` itself when open now);
  // nullopt only for a set that never opens.
  std::optional<TimePoint> next_open(TimePoint t) const;
  // The first instant at or after `t` at which the set is closed (`t` itself when closed now);
  // nullopt when windows that touch or overlap keep it open for good ("Mon-Sun 00:00-24:00").
  std::optional<TimePoint> next_close(TimePoint t) const;

  const std::string& time_zone() const { return zone_name_; }
  const std::vector<Window>& windows() const { return windows_; }

 private:
  struct Interval {
    TimePoint begin, end;
  };
  WindowSet() = default;
  // Occurrences of every window starting on local days [first_day, last_day] (days since the
  // epoch in local time), sorted by begin.
  std::vector<Interval> occurrences(std::int64_t first_day, std::int64_t last_day) const;
  std::int64_t local_day(TimePoint t) const;

  std::vector<Window> windows_;
  const date::time_zone* zone_ = nullptr;  // owned by the process-wide tzdb
  std::string zone_name_;
};

// parse_window() for each entry, then WindowSet::make(). An error names the entry as
// "windows[i]" (0-based, as config keys are) and quotes it.
Result<WindowSet> parse_windows(const std::vector<std::string>& specs, const std::string& tz);

// Office hours: the same window syntax, used to pick a different value (a bandwidth cap) inside
// and outside them. Whoever applies the value sets a timer for next_change().
class OfficeHours {
 public:
  explicit OfficeHours(WindowSet hours) : hours_(std::move(hours)) {}
  bool inside(TimePoint t) const { return hours_.open_at(t); }
  template <typename T>
  const T& pick(TimePoint t, const T& inside_value, const T& outside_value) const {
    return inside(t) ? inside_value : outside_value;
  }
  // When inside() next changes its answer after `t`; nullopt when it never does.
  std::optional<TimePoint> next_change(TimePoint t) const;
  const WindowSet& hours() const { return hours_; }

 private:
  WindowSet hours_;
};

}  // namespace dirgw::scheduler
