// The PACS's own count of a day beside dirgw's (issue 15, report.pacs, docs/report.md): a STUDY
// level C-FIND by Study Date (the report's day, YYYYMMDD) to each configured PACS, asking for
// NumberOfStudyRelatedInstances, with SERIES/IMAGE C-FINDs for a study whose count the PACS does
// not answer; then what dirgw holds of those studies (any day), and the Study Instance UIDs the
// PACS has that dirgw never received. UIDs and counts only: no patient value is asked for. A PACS
// that cannot be asked is "unavailable: <reason>", never a number.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "config/pull_config.h"
#include "ingest/pull/qr_client.h"

namespace dirgw::report {

struct PacsDay {
  std::string pacs;                         // report.pacs name (a pull source's name with pull:)
  std::string ae_title;                     // the PACS's AE title
  std::string study_date;                   // YYYYMMDD asked for
  std::string unavailable;                  // empty: counted; else why not
  std::int64_t studies = 0, instances = 0;  // the PACS's count of studies of that date
  // Of those studies, what dirgw holds (received on any day; a new version counted once).
  std::int64_t received_studies = 0, received_instances = 0;
  std::vector<std::string> never_received;  // Study Instance UIDs the PACS has and dirgw not
  bool available() const { return unavailable.empty(); }
};

// For Study Instance UIDs, the SOP instances dirgw holds of each (absent: never received):
// catalog::DayReportQueries::instances_of_studies.
using HeldInstances = std::function<Result<std::map<std::string, std::int64_t>>(
    const std::vector<std::string>& study_uids)>;

// One PACS's count of `study_date` (YYYYMMDD), on one association through `connect`.
PacsDay count_pacs(const config::PullSource& pacs, const std::string& study_date,
                   const ingest::pull::QrConnect& connect, const HeldInstances& held);

// What the report asks for a day ("YYYY-MM-DD"): every configured PACS, in order.
using PacsCounts = std::function<std::vector<PacsDay>(const std::string& day)>;
PacsCounts make_pacs_counts(const std::vector<config::PullSource>& pacs,
                            ingest::pull::QrConnect connect, HeldInstances held);

}  // namespace dirgw::report
