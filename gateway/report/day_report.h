// The daily reconciliation report (issue 15, docs/report.md): a facility day (its bounds in the
// facility's time zone), the catalog's counts for it (catalog/day_report.h), and the report as
// JSON, CSV and the check line that proves the columns add up. Pure apart from counts(): no
// sockets, no files (the nightly writer is nightly.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "catalog/day_report.h"
#include "common/clock.h"
#include "common/result.h"
#include "report/pacs_count.h"

namespace dirgw::report {

// One facility day: "2026-12-02" in `time_zone`, as [from, to) in UTC epoch ms (23, 24 or 25
// hours long across a daylight-saving change).
struct Day {
  std::string day;  // YYYY-MM-DD
  std::string time_zone;
  std::int64_t from_ms = 0, to_ms = 0;
};

// A strict YYYY-MM-DD (a real calendar date) in an IANA zone; the error says which is wrong.
Result<Day> make_day(const std::string& day, const std::string& time_zone);
// The facility day `days_back` days before the one `now` falls in (1: yesterday, what the
// nightly report covers).
Result<Day> day_before(TimePoint now, const std::string& time_zone, int days_back = 1);
// Minutes since local midnight at `now` in `time_zone` (0-1439); -1 for an unknown zone.
int minute_of_day(TimePoint now, const std::string& time_zone);

struct Report {
  Day day;
  std::int64_t generated_at_ms = 0;
  catalog::DayCounts counts;
  std::optional<std::vector<PacsDay>> pacs;  // report.pacs; nullopt: none configured ("n/a")
};

// "n/a", or per PACS "NAME: 5 studies, 20 instances, 1 study never received" or
// "NAME: unavailable: <reason>", joined by "; ".
std::string pacs_summary(const Report& r);

// "check: <dest>: 12 received = 5 verified + 2 sent + ... : ok" per destination, one line each.
std::string check_lines(const Report& r);
// True when, for every destination, the outcome columns add up to the instances received.
bool adds_up(const Report& r);
nlohmann::json to_json(const Report& r);
// One header line, then a "source" row per source and a "destination" row per destination.
std::string to_csv(const Report& r);

}  // namespace dirgw::report
