#include "scheduler/windows.h"

#include <date/date.h>
#include <date/tz.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <exception>

namespace dirgw::scheduler {

namespace {

using std::chrono::minutes;

constexpr std::array<std::string_view, 7> kDayNames = {"Mon", "Tue", "Wed", "Thu",
                                                       "Fri", "Sat", "Sun"};
constexpr std::string_view kAllowed =
    "expected \"DAYS HH:MM-HH:MM\": DAYS a comma list of Mon Tue Wed Thu Fri Sat Sun and ranges "
    "such as Mon-Fri, times 00:00 to 24:00, e.g. \"Mon-Fri 19:00-07:00\" or \"Sat,Sun "
    "00:00-24:00\"";

Error config_error(std::string detail) { return make_error(ErrorCode::kConfig, std::move(detail)); }

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::optional<int> day_index(std::string_view name) {
  if (name.size() != 3) return std::nullopt;
  for (std::size_t i = 0; i < kDayNames.size(); ++i) {
    bool same = true;
    for (std::size_t k = 0; k < 3; ++k) {
      if (std::tolower(static_cast<unsigned char>(name[k])) !=
          std::tolower(static_cast<unsigned char>(kDayNames[i][k])))
        same = false;
    }
    if (same) return static_cast<int>(i);
  }
  return std::nullopt;
}

Result<std::uint8_t> parse_days(std::string_view text) {
  std::uint8_t mask = 0;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view item = text.substr(pos, comma - pos);
    if (item.empty())
      return config_error("empty day in " + quoted(text) + "; " + std::string(kAllowed));
    std::size_t dash = item.find('-');
    std::string_view first = item.substr(0, dash);
    auto a = day_index(first);
    if (!a) return config_error("unknown day " + quoted(first) + "; " + std::string(kAllowed));
    int b = *a;
    if (dash != std::string_view::npos) {
      std::string_view last = item.substr(dash + 1);
      auto bb = day_index(last);
      if (!bb) return config_error("unknown day " + quoted(last) + "; " + std::string(kAllowed));
      b = *bb;
    }
    // A range may wrap over the end of the week: Fri-Mon is Fri, Sat, Sun, Mon.
    for (int d = *a;; d = (d + 1) % 7) {
      mask = static_cast<std::uint8_t>(mask | (1u << d));
      if (d == b) break;
    }
    pos = comma + 1;
  }
  return mask;
}

// "HH:MM" (H:MM accepted), 00:00..24:00 when allow_24, else 00:00..23:59.
std::optional<int> parse_clock(std::string_view s, bool allow_24) {
  std::size_t colon = s.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon > 2 || s.size() != colon + 3)
    return std::nullopt;
  for (char c : s) {
    if (c != ':' && !std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  int h = 0;
  for (std::size_t i = 0; i < colon; ++i) h = h * 10 + (s[i] - '0');
  int m = (s[colon + 1] - '0') * 10 + (s[colon + 2] - '0');
  if (m > 59) return std::nullopt;
  if (h == 24 && m == 0 && allow_24) return 24 * 60;
  if (h > 23) return std::nullopt;
  return h * 60 + m;
}

std::string format_clock(int minute) {
  std::string out(5, '0');
  out[0] = static_cast<char>('0' + minute / 600);
  out[1] = static_cast<char>('0' + minute / 60 % 10);
  out[2] = ':';
  out[3] = static_cast<char>('0' + minute % 60 / 10);
  out[4] = static_cast<char>('0' + minute % 10);
  return out;
}

TimePoint to_time_point(date::sys_seconds s) {
  return std::chrono::time_point_cast<TimePoint::duration>(s);
}

}  // namespace

std::string Window::to_string() const {
  std::string out;
  for (std::size_t i = 0; i < kDayNames.size(); ++i) {
    if ((days & (1u << i)) == 0) continue;
    if (!out.empty()) out += ',';
    out += kDayNames[i];
  }
  return out + " " + format_clock(start_minute) + "-" + format_clock(end_minute);
}

Result<Window> parse_window(std::string_view spec) {
  auto space = [](char c) { return c == ' ' || c == '\t'; };
  while (!spec.empty() && space(spec.front())) spec.remove_prefix(1);
  while (!spec.empty() && space(spec.back())) spec.remove_suffix(1);
  // The times are the last word; the days are everything before it ("Sat, Sun" is fine).
  std::size_t last_space = spec.find_last_of(" \t");
  if (spec.empty() || last_space == std::string_view::npos)
    return config_error("missing days or times; " + std::string(kAllowed));
  std::string days_text;
  for (char c : spec.substr(0, last_space)) {
    if (!space(c)) days_text += c;
  }
  std::string_view times = spec.substr(last_space + 1);

  auto days = parse_days(days_text);
  if (!days) return days.error();

  std::size_t dash = times.find('-');
  if (dash == std::string_view::npos)
    return config_error("times " + quoted(times) + " are not HH:MM-HH:MM; " +
                        std::string(kAllowed));
  auto start = parse_clock(times.substr(0, dash), false);
  if (!start)
    return config_error("start " + quoted(times.substr(0, dash)) +
                        " is not a time HH:MM from 00:00 to 23:59");
  auto end = parse_clock(times.substr(dash + 1), true);
  if (!end)
    return config_error("end " + quoted(times.substr(dash + 1)) +
                        " is not a time HH:MM from 00:00 to 24:00");
  if (*start == *end)
    return config_error("start and end are both " + format_clock(*start) +
                        "; for a whole day write 00:00-24:00");
  Window w;
  w.days = *days;
  w.start_minute = *start;
  w.end_minute = *end == 0 ? 24 * 60 : *end;  // "22:00-00:00" ends at midnight, same as 24:00
  return w;
}

Result<WindowSet> WindowSet::make(std::vector<Window> windows, const std::string& time_zone) {
  if (windows.empty()) return config_error("no windows; at least one is needed");
  if (time_zone.empty())
    return config_error("no time zone; give an IANA name such as America/Toronto or UTC");
  WindowSet set;
  try {
    set.zone_ = date::locate_zone(time_zone);
  } catch (const std::exception&) {
    return config_error("unknown time zone " + quoted(time_zone) +
                        "; expected an IANA name such as America/Toronto or UTC (see "
                        "/usr/share/zoneinfo)");
  }
  set.windows_ = std::move(windows);
  set.zone_name_ = time_zone;
  return set;
}

std::int64_t WindowSet::local_day(TimePoint t) const {
  auto local = zone_->to_local(date::floor<std::chrono::seconds>(t));
  return date::floor<date::days>(local).time_since_epoch().count();
}

std::vector<WindowSet::Interval> WindowSet::occurrences(std::int64_t first_day,
                                                        std::int64_t last_day) const {
  std::vector<Interval> out;
  for (std::int64_t day = first_day; day <= last_day; ++day) {
    date::local_days d{date::days(day)};
    // ISO numbering: Monday 0 ... Sunday 6.
    unsigned iso = (date::weekday(d).c_encoding() + 6) % 7;
    for (const Window& w : windows_) {
      if ((w.days & (1u << iso)) == 0) continue;
      date::local_seconds start = d + minutes(w.start_minute);
      date::local_seconds end =
          d + minutes(w.end_minute) + (w.overnight() ? date::days(1) : date::days(0));
      // A time the clock skips (spring forward) maps to the end of the gap; a time it shows
      // twice (fall back) opens at its first and closes at its second occurrence, so that no
      // occurrence is cut in two. docs/scheduling.md.
      auto b = to_time_point(zone_->to_sys(start, date::choose::earliest));
      auto e = to_time_point(zone_->to_sys(end, date::choose::latest));
      if (e > b) out.push_back({b, e});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const Interval& x, const Interval& y) { return x.begin < y.begin; });
  return out;
}

bool WindowSet::open_at(TimePoint t) const {
  // An occurrence lasts at most a day and an hour; two days back covers every one alive at t.
  std::int64_t today = local_day(t);
  for (const Interval& i : occurrences(today - 2, today)) {
    if (i.begin <= t && t < i.end) return true;
  }
  return false;
}

std::optional<TimePoint> WindowSet::next_open(TimePoint t) const {
  if (open_at(t)) return t;
  std::int64_t today = local_day(t);
  for (const Interval& i : occurrences(today - 1, today + 8)) {
    if (i.begin > t) return i.begin;
  }
  return std::nullopt;
}

std::optional<TimePoint> WindowSet::next_close(TimePoint t) const {
  if (!open_at(t)) return t;
  // Windows repeat every week and last at most a day (plus a DST hour), so a set that closes at
  // all closes within 9 days of `t`. Merge touching occurrences and follow the one holding t.
  std::int64_t today = local_day(t);
  auto all = occurrences(today - 2, today + 16);
  std::optional<TimePoint> end;
  for (const Interval& i : all) {
    if (!end) {
      if (i.begin <= t && t < i.end) end = i.end;
      continue;
    }
    if (i.begin > *end) break;
    end = std::max(*end, i.end);
  }
  if (!end || *end > t + date::days(9)) return std::nullopt;
  return end;
}

Result<WindowSet> parse_windows(const std::vector<std::string>& specs, const std::string& tz) {
  std::vector<Window> windows;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    auto w = parse_window(specs[i]);
    if (!w) {
      return config_error("windows[" + std::to_string(i) + "] " + quoted(specs[i]) + ": " +
                          w.error().detail);
    }
    windows.push_back(*w);
  }
  return WindowSet::make(std::move(windows), tz);
}

std::optional<TimePoint> OfficeHours::next_change(TimePoint t) const {
  return inside(t) ? hours_.next_close(t) : hours_.next_open(t);
}

}  // namespace dirgw::scheduler
