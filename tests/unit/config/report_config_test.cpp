// The daily report's keys (issue 15, docs/report.md): report.folder and report.at. Each key
// read, each error with its key, line and what is allowed.
#include <gtest/gtest.h>

#include "config/config.h"
#include "expect_error.h"

namespace dirgw::config {
namespace {

using testing_support::expect_error;
using testing_support::replace_once;

const char* kBase = R"yaml(facility: { name: Lakeside, timezone: America/Toronto }
ingest: { dicom: { allowed_callers: [PACS1] } }
report: { folder: /var/lib/dirgw/reports, at: "02:30" }
destinations:
  - name: hdirs
    url: https://dir.example.org/dicom-web
)yaml";

TEST(ReportConfig, EveryKeyIsRead) {
  auto r = load_string(kBase);
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].key + ": " + r.errors[0].message);
  EXPECT_EQ(r.config->report.folder, "/var/lib/dirgw/reports");
  EXPECT_EQ(r.config->report.at_minute, 150);
}

TEST(ReportConfig, NoBlockNoNightlyFile) {
  auto r = load_string(
      replace_once(kBase, "report: { folder: /var/lib/dirgw/reports, at: \"02:30\" }\n", ""));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.config->report.folder.empty());
  EXPECT_EQ(r.config->report.at_minute, 60);
}

TEST(ReportConfig, ErrorsNameKeyLineAndWhatIsAllowed) {
  expect_error(load_string(replace_once(kBase, "\"02:30\"", "\"24:00\"")), "report.at", 3,
               "HH:MM from 00:00 to 23:59");
  expect_error(load_string(replace_once(kBase, "\"02:30\"", "2am")), "report.at", 3,
               "HH:MM from 00:00 to 23:59");
  expect_error(load_string(replace_once(kBase, "/var/lib/dirgw/reports", "reports")),
               "report.folder", 3, "absolute path");
  expect_error(load_string(replace_once(kBase, "at: \"02:30\"", "when: \"02:30\"")), "report.when",
               3, "unknown key (allowed here: at, folder)");
}

}  // namespace
}  // namespace dirgw::config
