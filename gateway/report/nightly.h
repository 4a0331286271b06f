// The nightly report file (report.folder, docs/report.md): once a day, at report.at in the
// facility's time zone, yesterday's report is written into the folder as
// dirgw-report-YYYY-MM-DD.json and .csv (names from the date only; each written tmp -> fsync ->
// rename -> fsync dir). A day whose files exist is never written again; after downtime the
// missing days since the newest file are written (at most kCatchUpDays). step() is one pass, so
// a test drives it with a FakeClock; the daemon calls it from a timer.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "report/day_report.h"

namespace dirgw::report {

inline constexpr int kCatchUpDays = 31;

struct NightlySettings {
  std::filesystem::path folder;
  int at_minute = 60;  // minutes after local midnight when yesterday's report is due
  std::string time_zone = "UTC";
};

std::filesystem::path report_path(const std::filesystem::path& folder, const std::string& day,
                                  const char* extension);

class Nightly {
 public:
  using Counts =
      std::function<Result<catalog::DayCounts>(std::int64_t from_ms, std::int64_t to_ms)>;
  // `pacs`: report.pacs's counts of a day (null: none configured).
  Nightly(NightlySettings settings, const Clock& clock, Counts counts, PacsCounts pacs = nullptr)
      : settings_(std::move(settings)),
        clock_(clock),
        counts_(std::move(counts)),
        pacs_(std::move(pacs)) {}

  // Writes every due day's files that are missing; returns the days written (oldest first).
  Result<std::vector<std::string>> step();
  // Writes (or rewrites) one day's two files now.
  Result<void> write(const Day& day);

 private:
  NightlySettings settings_;
  const Clock& clock_;
  Counts counts_;
  PacsCounts pacs_;
};

}  // namespace dirgw::report
