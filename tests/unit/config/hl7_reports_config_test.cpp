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
  EXPECT_EQ(c.default_charset, "");
}

TEST(Hl7ReportsConfig, EveryKeyRead) {
  auto r = load_string(
      with_reports("      enabled: true\n      accession_field: placer\n      preliminary: send\n"
                   "      uid_root: \"1.2.826.0.1.3680043.10.1011\"\n"
                   "      default_charset: \"8859/1\"\n"));
  ASSERT_TRUE(r.ok()) << r.errors[0].message;
  const auto& c = r.config->ingest.hl7.reports;
  EXPECT_TRUE(c.enabled);
  EXPECT_EQ(c.accession_field, "placer");
  EXPECT_EQ(c.preliminary, "send");
  EXPECT_EQ(c.uid_root, "1.2.826.0.1.3680043.10.1011");
  EXPECT_EQ(c.default_charset, "8859/1");
}

TEST(Hl7ReportsConfig, MistakesNameKeyLineAndAllowedValues) {
  expect_error(load_string(with_reports("      accession_field: obr3\n")),
               "ingest.hl7.reports.accession_field", 7,
               "must be filler, placer or an HL7 field path");
  auto path = load_string(with_reports("      enabled: true\n      accession_field: OBR-18\n"));
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(path.config->ingest.hl7.reports.accession_field, "OBR-18");
  expect_error(load_string(with_reports("      preliminary: maybe\n")),
               "ingest.hl7.reports.preliminary", 7, "must be hold or send");
  expect_error(load_string(with_reports("      uid_root: \"1.02.3\"\n")),
               "ingest.hl7.reports.uid_root", 7, "UID root");
  expect_error(
      load_string(with_reports("      uid_root: \"1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16\"\n")),
      "ingest.hl7.reports.uid_root", 7, "at most 32");
  expect_error(load_string(with_reports("      default_charset: EBCDIC\n")),
               "ingest.hl7.reports.default_charset", 7, "MSH-18 character set");
  expect_error(load_string(with_reports("      require_report: true\n")),
               "ingest.hl7.reports.require_report", 7, "unknown key");
}

// Reports on or off, then the destinations given; the first destination starts on line 8.
std::string with_destinations(bool reports, const std::string& destinations) {
  return std::string(
             "facility: { name: Lakeside, id: LGH }\n"
             "ingest:\n"
             "  dicom: { enabled: false }\n"
             "  hl7:\n"
             "    enabled: true\n"
             "    reports: { enabled: ") +
         (reports ? "true" : "false") +
         " }\n"
         "destinations:\n" +
         destinations;
}

TEST(Hl7ReportsConfig, RequireReportPerDestination) {
  auto r = load_string(with_destinations(
      true,
      "  - { name: a, type: stow-rs, url: https://a.example.org/dw, require_report: { max_wait: "
      "4h } }\n"
      "  - { name: b, type: stow-rs, url: https://b.example.org/dw, require_report: true }\n"
      "  - { name: c, type: stow-rs, url: https://c.example.org/dw }\n"));
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].key + ": " + r.errors[0].message);
  const auto& d = r.config->destinations;
  EXPECT_TRUE(d[0].require_report.enabled);
  EXPECT_EQ(d[0].require_report.max_wait, std::chrono::hours(4));
  EXPECT_TRUE(d[1].require_report.enabled);
  EXPECT_EQ(d[1].require_report.max_wait, std::chrono::hours(24));  // the default
  EXPECT_FALSE(d[2].require_report.enabled);
  EXPECT_EQ(format_duration(d[0].require_report.max_wait), "4h");
  EXPECT_EQ(format_duration(std::chrono::milliseconds(90'000)), "90s");
  EXPECT_EQ(format_duration(std::chrono::milliseconds(250)), "250ms");
}

TEST(Hl7ReportsConfig, RequireReportMistakes) {
  expect_error(
      load_string(with_destinations(false,
                                    "  - { name: a, type: stow-rs, url: https://a.example.org/dw, "
                                    "require_report: { max_wait: 4h } }\n")),
      "destinations[0].require_report", 8, "ingest.hl7.reports.enabled");
  auto bad =
      load_string(with_destinations(true,
                                    "  - name: a\n"
                                    "    type: stow-rs\n"
                                    "    url: https://a.example.org/dw\n"
                                    "    require_report: { max_wait: forever, colour: red }\n"));
  expect_error(bad, "destinations[0].require_report.max_wait", 11, "duration");
  expect_error(bad, "destinations[0].require_report.colour", 11, "unknown key");
}

// MSH-11 processing IDs: production only by default; a test port may take T as well.
TEST(Hl7ReportsConfig, ProcessingIds) {
  auto config = [](const std::string& hl7) {
    return load_string(
        "facility: { name: Lakeside, id: LGH }\n"
        "ingest:\n"
        "  hl7: { enabled: true" +
        hl7 +
        " }\n"
        "destinations:\n"
        "  - { name: hdirs, type: stow-rs, url: https://dir.example.org/dicom-web }\n");
  };
  auto d = config("");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d.config->ingest.hl7.processing_ids, std::vector<std::string>{"P"});
  auto t = config(", processing_ids: [P, T]");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t.config->ingest.hl7.processing_ids, (std::vector<std::string>{"P", "T"}));
  expect_error(config(", processing_ids: [X]"), "ingest.hl7.processing_ids[0]", 3,
               "P (production)");
  expect_error(config(", processing_ids: []"), "ingest.hl7.processing_ids", 3, "at least one");
}

TEST(Hl7ReportsConfig, MaxMessageSize) {
  auto r = load_string(
      "facility: { name: Lakeside, id: LGH }\n"
      "ingest:\n"
      "  hl7: { enabled: true, max_message_size: 8MiB }\n"
      "destinations:\n"
      "  - { name: hdirs, type: stow-rs, url: https://dir.example.org/dicom-web }\n");
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].key + ": " + r.errors[0].message);
  EXPECT_EQ(r.config->ingest.hl7.max_message_size, 8u << 20);
  auto bad = load_string(
      "facility: { name: Lakeside, id: LGH }\n"
      "ingest:\n"
      "  hl7: { enabled: true, max_message_size: 1GiB }\n"
      "destinations:\n"
      "  - { name: hdirs, type: stow-rs, url: https://dir.example.org/dicom-web }\n");
  expect_error(bad, "ingest.hl7.max_message_size", 3, "");
}

TEST(Hl7ReportsConfig, NeedsTheListener) {
  std::string text = with_reports("      enabled: true\n");
  text.replace(text.find("    enabled: true\n"), 18, "    enabled: false\n");
  expect_error(load_string(text), "ingest.hl7.reports.enabled", 7, "needs ingest.hl7.enabled");
}

}  // namespace
}  // namespace dirgw::config
