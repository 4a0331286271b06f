// ingest.hl7.reports (issue 12): each key read, the defaults, and each mistake reported with its
// key, line and what is allowed.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "expect_error.h"

namespace dirgw::config {
namespace {

using testing_support::expect_error;

// The reports keys start on line 7.
std::string with_reports(const std::string& keys) {
  return "facility: { name: Lakeside, id: LGH }\n"
         "ingest:\n"
         "  dicom: { enabled: false }\n"
         "  hl7:\n"
         "    enabled: true\n"
         "    reports:\n" +
         keys +
         "destinations:\n"
         "  - { name: hdirs, type: stow-rs, url: https://dir.example.org/dicom-web }\n";
}

TEST(Hl7ReportsConfig, DefaultsWhenAbsent) {
  auto r = load_string(with_reports("      enabled: false\n"));
  ASSERT_TRUE(r.ok()) << r.errors[0].message;
  const auto& c = r.config->ingest.hl7.reports;
  EXPECT_FALSE(c.enabled);
  EXPECT_EQ(c.accession_field, "filler");
  EXPECT_EQ(c.preliminary, "hold");
  EXPECT_EQ(c.uid_root, "2.25");
}

TEST(Hl7ReportsConfig, EveryKeyRead) {
  auto r = load_string(
      with_reports("      enabled: true\n      accession_field: placer\n      preliminary: send\n"
                   "      uid_root: \"1.2.826.0.1.3680043.10.1011\"\n"));
  ASSERT_TRUE(r.ok()) << r.errors[0].message;
  const auto& c = r.config->ingest.hl7.reports;
  EXPECT_TRUE(c.enabled);
  EXPECT_EQ(c.accession_field, "placer");
  EXPECT_EQ(c.preliminary, "send");
  EXPECT_EQ(c.uid_root, "1.2.826.0.1.3680043.10.1011");
}

TEST(Hl7ReportsConfig, MistakesNameKeyLineAndAllowedValues) {
  expect_error(load_string(with_reports("      accession_field: obr3\n")),
               "ingest.hl7.reports.accession_field", 7, "must be filler or placer");
  expect_error(load_string(with_reports("      preliminary: maybe\n")),
               "ingest.hl7.reports.preliminary", 7, "must be hold or send");
  expect_error(load_string(with_reports("      uid_root: \"1.02.3\"\n")),
               "ingest.hl7.reports.uid_root", 7, "UID root");
  expect_error(
      load_string(with_reports("      uid_root: \"1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16\"\n")),
      "ingest.hl7.reports.uid_root", 7, "at most 32");
  expect_error(load_string(with_reports("      require_report: true\n")),
               "ingest.hl7.reports.require_report", 7, "unknown key");
}

TEST(Hl7ReportsConfig, NeedsTheListener) {
  std::string text = with_reports("      enabled: true\n");
  text.replace(text.find("    enabled: true\n"), 18, "    enabled: false\n");
  expect_error(load_string(text), "ingest.hl7.reports.enabled", 7, "needs ingest.hl7.enabled");
}

}  // namespace
}  // namespace dirgw::config
