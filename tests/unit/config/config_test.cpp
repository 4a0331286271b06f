#include "config/config.h"
#include "expect_error.h"

#include <gtest/gtest.h>

#include <fstream>

namespace dirgw::config {
namespace {

const char* kGood = R"(facility: { name: "Lakeside General", id: LGH }
state_dir: /var/lib/dirgw
control_socket: /run/dirgw/control.sock
log: { level: debug }
ingest:
  dicom:
    ae_title: DIRGW
    bind: 127.0.0.1
    port: 11112
    allowed_callers: [PACS1, CT2]
    max_associations: 4
    dimse_timeout: 90s
policy: { stable_age: 5s }
retention: { spool_floor: 5GiB }
destinations:
  - name: hdirs
    type: stow-rs
    url: https://dir.example.org/dicom-web
    auth: { ca: /etc/dirgw/ca.pem, client_cert: /etc/dirgw/c.pem, client_key: /etc/dirgw/c.key }
    batch: { max_instances: 20, max_bytes: 32MiB }
    retry: { initial: 10s, max: 30m }
)";

std::string with(const std::string& from, const std::string& to) {
  std::string s = kGood;
  auto pos = s.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  s.replace(pos, from.size(), to);
  return s;
}

using testing_support::expect_error;

TEST(Config, GoodFileLoadsEveryValue) {
  auto r = load_string(kGood);
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].message);
  const Config& c = *r.config;
  EXPECT_EQ(c.facility_name, "Lakeside General");
  EXPECT_EQ(c.facility_id, "LGH");
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.ingest.dicom.bind, "127.0.0.1");
  EXPECT_EQ(c.ingest.dicom.allowed_callers, (std::vector<std::string>{"PACS1", "CT2"}));
  EXPECT_EQ(c.ingest.dicom.max_associations, 4);
  EXPECT_EQ(c.ingest.dicom.dimse_timeout, std::chrono::seconds(90));
  EXPECT_EQ(c.policy.stable_age, std::chrono::seconds(5));
  EXPECT_EQ(c.retention.spool_floor, 5ull << 30);
  ASSERT_EQ(c.destinations.size(), 1u);
  EXPECT_EQ(c.destinations[0].url, "https://dir.example.org/dicom-web");
  EXPECT_EQ(c.destinations[0].auth.client_key, "/etc/dirgw/c.key");
  EXPECT_EQ(c.destinations[0].batch_max_instances, 20);
  EXPECT_EQ(c.destinations[0].batch_max_bytes, 32ull << 20);
  EXPECT_EQ(c.destinations[0].retry_max, std::chrono::minutes(30));
}

TEST(Config, ShippedAnnotatedConfigIsValid) {
  auto r = load_file(DIRGW_SOURCE_DIR "/config/dirgw.yaml");
  std::string all;
  for (const auto& e : r.errors) all += e.to_string("dirgw.yaml") + "\n";
  EXPECT_TRUE(r.ok()) << all;
}

TEST(Config, UnknownKeyNamesKeyLineAndAllowedKeys) {
  auto r = load_string(with("    max_associations: 4", "    max_asociations: 4"));
  expect_error(r, "ingest.dicom.max_asociations", 11, "unknown key (allowed here:");
  expect_error(r, "ingest.dicom.max_asociations", 11, "max_associations");
}

TEST(Config, UnknownTopLevelKey) {
  auto r = load_string(std::string(kGood) + "retentoin: {}\n");
  expect_error(r, "retentoin", 22, "unknown key");
}

TEST(Config, WrongTypeForInteger) {
  auto r = load_string(with("port: 11112", "port: eleven"));
  expect_error(r, "ingest.dicom.port", 9, "whole number from 1 to 65535");
}

TEST(Config, IntegerOutOfRange) {
  auto r = load_string(with("port: 11112", "port: 70000"));
  expect_error(r, "ingest.dicom.port", 9, "not '70000'");
}

TEST(Config, BadDuration) {
  auto r = load_string(with("stable_age: 5s", "stable_age: soon"));
  expect_error(r, "policy.stable_age", 13, "duration such as");
}

TEST(Config, BadSize) {
  auto r = load_string(with("spool_floor: 5GiB", "spool_floor: lots"));
  expect_error(r, "retention.spool_floor", 14, "size such as");
}

TEST(Config, RelativePathRefused) {
  auto r = load_string(with("state_dir: /var/lib/dirgw", "state_dir: var/lib"));
  expect_error(r, "state_dir", 2, "absolute path");
}

TEST(Config, BadUrl) {
  auto r = load_string(with("url: https://dir.example.org/dicom-web", "url: ftp://x"));
  expect_error(r, "destinations[0].url", 18, "http:// or https://");
}

TEST(Config, BadAeTitle) {
  auto r = load_string(with("ae_title: DIRGW", "ae_title: THIS_AE_TITLE_IS_TOO_LONG"));
  expect_error(r, "ingest.dicom.ae_title", 7, "1 to 16");
}

TEST(Config, CallersMustBeAList) {
  auto r = load_string(with("allowed_callers: [PACS1, CT2]", "allowed_callers: PACS1"));
  expect_error(r, "ingest.dicom.allowed_callers", 10, "must be a list");
}

TEST(Config, BadEnumValue) {
  auto r = load_string(with("level: debug", "level: loud"));
  expect_error(r, "log.level", 4, "debug, info, warn, error");
}

TEST(Config, MissingDestinations) {
  std::string s = kGood;
  s = s.substr(0, s.find("destinations:"));
  auto r = load_string(s);
  expect_error(r, "destinations", 1, "is required");
}

TEST(Config, DuplicateDestinationNames) {
  auto r = load_string(std::string(kGood) +
                       "  - { name: hdirs, url: http://127.0.0.1:8042/dicom-web }\n");
  expect_error(r, "destinations[1].name", 22, "duplicates");
}

const char* kResearch = R"(  - name: research
    url: https://research.example.org/dicom-web
    deidentify:
      profile: basic
      options: [retain_longitudinal_modified_dates, retain_device_identity, clean_descriptors,
                retain_safe_private]
      descriptor_allow_list: ["CT CHEST"]
      safe_private: [ { group: 0x0029, creator: "SIEMENS CSA HEADER", element: 0x10 } ]
      burned_in_allow: [ { modality: US, manufacturer: ACME } ]
deidentification: { key_file: /etc/dirgw/deid.key }
)";

TEST(Config, DeidentifyBlockMapsEveryOption) {
  auto r = load_string(std::string(kGood) + kResearch);
  ASSERT_TRUE(r.ok()) << r.errors[0].to_string("t");
  const auto& d = r.config->destinations[1].deidentify;
  EXPECT_FALSE(r.config->destinations[0].deidentify.enabled);
  EXPECT_TRUE(d.enabled);
  EXPECT_EQ(d.dates, "modified");
  EXPECT_TRUE(d.retain_device_identity);
  EXPECT_FALSE(d.retain_uids);
  EXPECT_TRUE(d.clean_descriptors);
  ASSERT_EQ(d.safe_private.size(), 1u);
  EXPECT_EQ(d.safe_private[0].group, 0x29);
  EXPECT_EQ(d.safe_private[0].element, 0x10);
  EXPECT_EQ(d.safe_private[0].creator, "SIEMENS CSA HEADER");
  EXPECT_TRUE(d.safe_private_table);
  EXPECT_FALSE(r.config->destinations[0].deidentify.safe_private_table);
  ASSERT_EQ(d.burned_in_allow.size(), 1u);
  EXPECT_EQ(d.burned_in_allow[0].modality, "US");
  EXPECT_EQ(r.config->deid_key_file, "/etc/dirgw/deid.key");
}

TEST(Config, DeidentifyErrorsNameTheKey) {
  const std::string base = std::string(kGood) + kResearch;
  auto refused = [&](const std::string& from, const std::string& to, const std::string& key,
                     const std::string& words) {
    std::string s = base;
    s.replace(s.find(from), from.size(), to);
    auto r = load_string(s);
    ASSERT_FALSE(r.ok()) << to;
    EXPECT_EQ(r.errors[0].key, key) << to;
    EXPECT_NE(r.errors[0].message.find(words), std::string::npos) << r.errors[0].message;
    EXPECT_GT(r.errors[0].line, 0);
  };
  refused("retain_device_identity,", "retain_everything,", "destinations[1].deidentify.options[1]",
          "unknown option");
  refused("retain_device_identity,", "retain_longitudinal_full_dates,",
          "destinations[1].deidentify.options[1]", "exclude each other");
  refused("group: 0x0029", "group: 0x0028", "destinations[1].deidentify.safe_private[0].group",
          "odd group");
  refused("element: 0x10", "element: 0x100", "destinations[1].deidentify.safe_private[0].element",
          "low byte");
  refused("profile: basic", "profile: everything", "destinations[1].deidentify.profile", "basic");
  refused("{ modality: US, manufacturer: ACME }", "{ allow_marked_yes: true }",
          "destinations[1].deidentify.burned_in_allow[0]", "at least one");
  refused(", clean_descriptors,", ",", "destinations[1].deidentify.descriptor_allow_list",
          "clean_descriptors");
}

TEST(Config, ClientCertWithoutKey) {
  auto r = load_string(with(", client_key: /etc/dirgw/c.key", ""));
  expect_error(r, "destinations[0].auth", 19, "go together");
}

TEST(Config, EveryErrorIsReportedNotOnlyTheFirst) {
  auto s = with("port: 11112", "port: 0");
  s.replace(s.find("stable_age: 5s"), 14, "stable_age: x");
  auto r = load_string(s);
  EXPECT_EQ(r.errors.size(), 2u);
}

TEST(Config, InvalidYamlGivesLine) {
  auto r = load_string("facility: {name: [unclosed\nstate_dir: /x\n");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].message.find("not valid YAML"), std::string::npos);
  EXPECT_GT(r.errors[0].line, 0);
}

TEST(Config, EmptyAndMissingFiles) {
  EXPECT_EQ(load_string("").errors.at(0).message, "the file is empty");
  EXPECT_EQ(load_file("/nonexistent/dirgw.yaml").errors.at(0).message,
            "cannot open the configuration file");
}

TEST(Config, DurationAndSizeParsing) {
  EXPECT_EQ(parse_duration("250ms"), std::chrono::milliseconds(250));
  EXPECT_EQ(parse_duration("7d"), std::chrono::hours(24 * 7));
  EXPECT_FALSE(parse_duration("5"));
  EXPECT_FALSE(parse_duration("-5s"));
  EXPECT_EQ(parse_size("64MiB"), 64ull << 20);
  EXPECT_EQ(parse_size("10MB"), 10'000'000ull);
  EXPECT_EQ(parse_size("1234"), 1234ull);
  EXPECT_FALSE(parse_size("5 GiB"));
  EXPECT_FALSE(parse_size("GiB"));
}

// A site's adjustments to its validation profile: modalities, the private value limit and the
// findings it accepts; a code that does not exist, or that can never be accepted, is refused.
TEST(Config, ValidationAdjustmentsAndTheirErrors) {
  const std::string from = "policy: { stable_age: 5s }";
  auto r = load_string(with(from,
                            "policy:\n"
                            "  validation:\n"
                            "    profile: ontario-dir\n"
                            "    allow_modalities: [OP, SEG]\n"
                            "    max_private_value: 64MiB\n"
                            "    accept_findings: [charset.unknown, health_number.missing, "
                            "\"attribute.missing (0008,0050)\", \"pixel_data.length_short "
                            "(7fe0,0010)\"]"));
  ASSERT_TRUE(r.ok()) << r.errors.at(0).to_string("x");
  const auto& v = r.config->policy.validation;
  EXPECT_EQ(v.allow_modalities, (std::vector<std::string>{"OP", "SEG"}));
  ASSERT_TRUE(v.max_private_value.has_value());
  EXPECT_EQ(*v.max_private_value, 64u << 20);
  EXPECT_EQ(v.accept_findings, (std::vector<std::string>{"charset.unknown", "health_number.missing",
                                                         "attribute.missing (0008,0050)",
                                                         "pixel_data.length_short (7FE0,0010)"}));
  // Absent: nothing changes the profile.
  auto plain = load_string(kGood);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain.config->policy.validation.max_private_value.has_value());
  EXPECT_TRUE(plain.config->policy.validation.accept_findings.empty());

  const auto bad = [&](const std::string& line) {
    return load_string(with(from, "policy:\n  validation:\n    " + line));
  };
  expect_error(bad("allow_modalities: [op]"), "policy.validation.allow_modalities[0]", 15,
               "modality code");
  expect_error(bad("max_private_value: lots"), "policy.validation.max_private_value", 15,
               "must be a size");
  expect_error(bad("accept_findings: [charset.unkown]"), "policy.validation.accept_findings[0]", 15,
               "finding code");
  expect_error(bad("accept_findings: [parse]"), "policy.validation.accept_findings[0]", 15,
               "cannot be accepted");
  expect_error(bad("accept_findings: [uid.bad_character]"), "policy.validation.accept_findings[0]",
               15, "cannot be accepted");
  expect_error(bad("accept_findings: [identifier.unsafe_characters]"),
               "policy.validation.accept_findings[0]", 15, "only for a named attribute");
  expect_error(bad("accept_findings: charset.unknown"), "policy.validation.accept_findings", 15,
               "must be a list");
  // A code that covers attributes as different as the Accession Number and the Patient ID is
  // accepted only with the attribute's tag.
  expect_error(bad("accept_findings: [attribute.missing]"), "policy.validation.accept_findings[0]",
               15, "only for a named attribute");
  expect_error(bad("accept_findings: [\"attribute.missing 0008,0050\"]"),
               "policy.validation.accept_findings[0]", 15, "a code and a tag");
}

}  // namespace
}  // namespace dirgw::config

namespace dirgw::config {
namespace {

TEST(Config, RetryGiveUpCircuitAndNewVersions) {
  auto r = load_string(
      std::string(kGood).replace(std::string(kGood).find("retry: { initial: 10s, max: 30m }"), 33,
                                 "retry: { initial: 10s, max: 30m, give_up_after: 2d }\n    "
                                 "circuit: { failures: 3, cooldown: 20s }") +
      "");
  ASSERT_TRUE(r.ok()) << r.errors.at(0).to_string("x");
  EXPECT_EQ(r.config->destinations[0].give_up_after, std::chrono::hours(48));
  EXPECT_EQ(r.config->destinations[0].circuit_failures, 3);
  EXPECT_EQ(r.config->destinations[0].circuit_cooldown, std::chrono::seconds(20));
  EXPECT_EQ(r.config->ingest.new_versions, "send");
  auto bad = load_string(with("ingest:\n", "ingest:\n  new_versions: maybe\n"));
  expect_error(bad, "ingest.new_versions", 6, "send or hold");
}

TEST(Config, PacingAfterThrottlingIsReadAndChecked) {
  const std::string from = "retry: { initial: 10s, max: 30m }";
  auto text = std::string(kGood);
  const auto defaults = load_string(text).config->destinations[0].pacing;
  EXPECT_FALSE(defaults.enabled);  // opt-in: docs/scaling.md
  EXPECT_DOUBLE_EQ(defaults.decrease, 0.5);
  EXPECT_DOUBLE_EQ(defaults.increase, 1.0);
  EXPECT_EQ(defaults.release_after, std::chrono::minutes(5));
  text.replace(text.find(from), from.size(),
               "retry: { initial: 10s, max: 30m, pacing: { enabled: true, decrease: 0.7, "
               "increase: 2.5, release_after: 10m } }");
  auto r = load_string(text);
  ASSERT_TRUE(r.ok()) << r.errors.at(0).to_string("x");
  EXPECT_DOUBLE_EQ(r.config->destinations[0].pacing.decrease, 0.7);
  EXPECT_DOUBLE_EQ(r.config->destinations[0].pacing.increase, 2.5);
  EXPECT_EQ(r.config->destinations[0].pacing.release_after, std::chrono::minutes(10));
  for (const char* bad_pacing : {"{ decrease: 1.5 }", "{ decrease: half }", "{ increase: 0 }",
                                 "{ increase: -1 }", "{ enabled: maybe }", "{ fast: true }"}) {
    auto bad = std::string(kGood);
    bad.replace(bad.find(from), from.size(),
                std::string("retry: { initial: 10s, max: 30m, pacing: ") + bad_pacing + " }");
    auto b = load_string(bad);
    ASSERT_FALSE(b.ok()) << bad_pacing;
    EXPECT_NE(b.errors.at(0).key.find("retry.pacing."), std::string::npos) << b.errors.at(0).key;
    EXPECT_GT(b.errors.at(0).line, 0);
  }
  auto bad = std::string(kGood);
  bad.replace(bad.find(from), from.size(),
              "retry: { initial: 10s, max: 30m, pacing: { decrease: 2 } }");
  EXPECT_NE(load_string(bad).errors.at(0).message.find("from 0.1 to 0.95"), std::string::npos)
      << load_string(bad).errors.at(0).message;
}

TEST(Config, RetryAfterMaximumIsReadAndBounded) {
  const std::string from = "retry: { initial: 10s, max: 30m }";
  auto text = std::string(kGood);
  EXPECT_EQ(load_string(text).config->destinations[0].retry_after_max, std::chrono::minutes(15));
  text.replace(text.find(from), from.size(),
               "retry: { initial: 10s, max: 30m, retry_after_max: 2m }");
  auto r = load_string(text);
  ASSERT_TRUE(r.ok()) << r.errors.at(0).to_string("x");
  EXPECT_EQ(r.config->destinations[0].retry_after_max, std::chrono::minutes(2));
  auto bad = std::string(kGood);
  bad.replace(bad.find(from), from.size(),
              "retry: { initial: 10s, max: 30m, retry_after_max: 2d }");
  auto b = load_string(bad);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.errors.at(0).key.find("retry.retry_after_max"), std::string::npos)
      << b.errors.at(0).key;
  EXPECT_GT(b.errors.at(0).line, 0);
}

}  // namespace
}  // namespace dirgw::config

namespace dirgw::config {
namespace {

TEST(Config, CoercionSetListAndItsErrors) {
  const std::string base = kGood;
  const std::string from = "policy: { stable_age: 5s }";
  auto good = base;
  good.replace(good.find(from), from.size(),
               "policy:\n  stable_age: 5s\n  coercion:\n    set: { \"(0008,1010)\": CT1, "
               "\"(0008,0081)\": Road }");
  auto r = load_string(good);
  ASSERT_TRUE(r.ok()) << r.errors.at(0).to_string("x");
  ASSERT_EQ(r.config->policy.coercion.set.size(), 2u);
  EXPECT_EQ(r.config->policy.coercion.set[0].first, "(0008,1010)");
  auto bad_text = base;
  bad_text.replace(bad_text.find(from), from.size(),
                   "policy:\n  coercion:\n    set: { \"0008,1010\": CT1 }");
  auto bad = load_string(bad_text);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.errors.at(0).message.find("(gggg,eeee)"), std::string::npos);
}

}  // namespace
}  // namespace dirgw::config
