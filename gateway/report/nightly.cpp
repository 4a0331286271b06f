#include "report/nightly.h"

#include "common/files.h"

namespace dirgw::report {

std::filesystem::path report_path(const std::filesystem::path& folder, const std::string& day,
                                  const char* extension) {
  return folder / ("dirgw-report-" + day + "." + extension);
}

Result<void> Nightly::write(const Day& day) {
  auto counts = counts_(day.from_ms, day.to_ms);
  if (!counts) return counts.error();
  Report r{day, to_epoch_ms(clock_.now()), std::move(*counts)};
  if (pacs_) r.pacs = pacs_(day.day);
  if (auto made = make_dirs(settings_.folder, 0750); !made) return made.error();
  // CSV first: a day counts as written once its JSON exists.
  if (auto w = write_file_durably(report_path(settings_.folder, day.day, "csv"), to_csv(r), 0640);
      !w)
    return w.error();
  return write_file_durably(report_path(settings_.folder, day.day, "json"),
                            to_json(r).dump(2) + "\n", 0640);
}

Result<std::vector<std::string>> Nightly::step() {
  const TimePoint now = clock_.now();
  const int minute = minute_of_day(now, settings_.time_zone);
  if (minute < 0) return make_error(ErrorCode::kConfig, "unknown time zone " + settings_.time_zone);
  // Yesterday's report is due from report.at on; before it, the day before yesterday's.
  const int latest = minute >= settings_.at_minute ? 1 : 2;
  std::vector<Day> missing;
  bool found_older = false;
  for (int back = latest; back < latest + kCatchUpDays; ++back) {
    auto day = day_before(now, settings_.time_zone, back);
    if (!day) return day.error();
    std::error_code ec;
    if (std::filesystem::exists(report_path(settings_.folder, day->day, "json"), ec)) {
      found_older = true;
      break;
    }
    missing.push_back(std::move(*day));
  }
  // A folder with no report yet (a new installation) gets the latest day only, not a month of
  // empty ones.
  if (!found_older && missing.size() > 1) missing.resize(1);
  std::vector<std::string> written;
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (auto w = write(*it); !w) return w.error();
    written.push_back(it->day);
  }
  return written;
}

}  // namespace dirgw::report
