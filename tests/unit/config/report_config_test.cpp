// The daily report's keys (issue 15, docs/report.md): report.folder and report.at. Each key
// read, each error with its key, line and what is allowed.
#include <gtest/gtest.h>

#include "config/config.h"
#include "expect_error.h"

namespace dirgw::config {
namespace {

using testing_support::expect_error;
using testing_support::replace_once;

const char* kReportBase = R"yaml(facility: { name: Lakeside, timezone: America/Toronto }
ingest: { dicom: { allowed_callers: [PACS1] } }
report: { folder: /var/lib/dirgw/reports, at: "02:30" }
destinations:
  - name: hdirs
    url: https://dir.example.org/dicom-web
)yaml";

TEST(ReportConfig, EveryKeyIsRead) {
  auto r = load_string(kReportBase);
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].key + ": " + r.errors[0].message);
  EXPECT_EQ(r.config->report.folder, "/var/lib/dirgw/reports");
  EXPECT_EQ(r.config->report.at_minute, 150);
}

TEST(ReportConfig, NoBlockNoNightlyFile) {
  auto r = load_string(
      replace_once(kReportBase, "report: { folder: /var/lib/dirgw/reports, at: \"02:30\" }\n", ""));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.config->report.folder.empty());
  EXPECT_EQ(r.config->report.at_minute, 60);
}

TEST(ReportConfig, ErrorsNameKeyLineAndWhatIsAllowed) {
  expect_error(load_string(replace_once(kReportBase, "\"02:30\"", "\"24:00\"")), "report.at", 3,
               "HH:MM from 00:00 to 23:59");
  expect_error(load_string(replace_once(kReportBase, "\"02:30\"", "2am")), "report.at", 3,
               "HH:MM from 00:00 to 23:59");
  expect_error(load_string(replace_once(kReportBase, "/var/lib/dirgw/reports", "reports")),
               "report.folder", 3, "absolute path");
  expect_error(load_string(replace_once(kReportBase, "at: \"02:30\"", "when: \"02:30\"")),
               "report.when", 3, "unknown key (allowed here: at, folder, pacs)");
}

const char* kPacs = R"yaml(facility: { name: Lakeside, timezone: America/Toronto }
ingest:
  dicom: { ae_title: GW, allowed_callers: [PACS1, OLDPACS] }
  pull:
    - { name: old-pacs, ae_title: OLDPACS, host: 10.0.0.9, calling_ae: GWQR, timeout: 20s }
report:
  pacs:
    - pull: old-pacs
    - { name: main-pacs, ae_title: PACS1, host: pacs.example.org, port: 4242, timeout: 5s }
destinations:
  - name: hdirs
    url: https://dir.example.org/dicom-web
)yaml";

TEST(ReportConfig, PacsCountedByPullSourceOrByItsOwnAddress) {
  auto r = load_string(kPacs);
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].key + ": " + r.errors[0].message);
  const auto& p = r.config->report.pacs;
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].name, "old-pacs");
  EXPECT_EQ(p[0].ae_title, "OLDPACS");
  EXPECT_EQ(p[0].host, "10.0.0.9");
  EXPECT_EQ(p[0].calling_ae, "GWQR");
  EXPECT_EQ(p[0].timeout, std::chrono::seconds(20));
  EXPECT_EQ(p[1].name, "main-pacs");
  EXPECT_EQ(p[1].ae_title, "PACS1");
  EXPECT_EQ(p[1].host, "pacs.example.org");
  EXPECT_EQ(p[1].port, 4242);
  EXPECT_EQ(p[1].calling_ae, "GW");  // ingest.dicom.ae_title
  EXPECT_EQ(p[1].timeout, std::chrono::seconds(5));
  EXPECT_TRUE(load_string(kReportBase).config->report.pacs.empty());
}

TEST(ReportConfig, PacsErrorsNameKeyLineAndWhatIsAllowed) {
  expect_error(load_string(replace_once(kPacs, "pull: old-pacs", "pull: new-pacs")),
               "report.pacs[0].pull", 8, "no ingest.pull source is named 'new-pacs'");
  expect_error(load_string(replace_once(kPacs, "pull: old-pacs", "{ pull: old-pacs, port: 1 }")),
               "report.pacs[0].port", 8, "comes from the pull source");
  expect_error(load_string(replace_once(kPacs, "host: pacs.example.org, ", "")),
               "report.pacs[1].host", 9, "missing");
  expect_error(load_string(replace_once(kPacs, "port: 4242", "port: 70000")), "report.pacs[1].port",
               9, "from 1 to 65535");
  expect_error(load_string(replace_once(kPacs, "timeout: 5s", "every: 5s")), "report.pacs[1].every",
               9,
               "unknown key (allowed here: ae_title, calling_ae, host, name, port, pull, timeout)");
  expect_error(load_string(replace_once(kPacs, "name: main-pacs", "name: old-pacs")),
               "report.pacs[1]", 9, "counted twice");
  expect_error(load_string(replace_once(kPacs, "    - pull: old-pacs\n", "    - PACS1\n")),
               "report.pacs[0]", 8, "must be a mapping");
  expect_error(load_string(replace_once(kReportBase, "at: \"02:30\"", "pacs: PACS1")),
               "report.pacs", 3, "must be a list of PACS");
}

TEST(ReportConfig, RetentionReportDays) {
  EXPECT_EQ(load_string(kReportBase).config->retention.report_days, 400);
  const std::string with_days =
      replace_once(kReportBase, "report: {", "retention: { report_days: 30 }\nreport: {");
  auto r = load_string(with_days);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config->retention.report_days, 30);
  EXPECT_EQ(load_string(replace_once(with_days, "30", "0")).config->retention.report_days, 0);
  expect_error(load_string(replace_once(with_days, "30", "-1")), "retention.report_days", 3,
               "whole number from 0 to 36500");
  expect_error(load_string(replace_once(with_days, "report_days", "report_day")),
               "retention.report_day", 3, "report_days");
}

}  // namespace
}  // namespace dirgw::config
