// Issue 14's configuration keys: facility.timezone, schedule, bandwidth (per destination and
// gateway-wide), concurrency, auth.oauth2, priority, type dimse. Each key read, each error with
// its key and line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "config/config.h"
#include "expect_error.h"

namespace dirgw::config {
namespace {

const char* kBase = R"yaml(facility: { name: Lakeside, timezone: America/Toronto }
ingest: { dicom: { allowed_callers: [PACS1] } }
forwarding:
  bandwidth: { max: 50MiB, office_hours: ["Mon-Fri 08:00-18:00"], office_hours_max: 5MiB }
priority:
  stat_attributes: [ { tag: "(0040,1003)", values: [STAT] } ]
  stat_calling_aes: [ER_CT]
destinations:
  - name: hdirs
    url: https://dir.example.org/dicom-web
    schedule: { windows: ["Mon-Fri 19:00-07:00", "Sat,Sun 00:00-24:00"], stat_bypass: true }
    bandwidth: 2MiB
    concurrency: 1
    auth:
      oauth2: { token_url: "https://idp.example.org/token", client_id: gw, client_secret_file: /etc/dirgw/secret, scope: "dicom.write" }
  - name: pacs
    type: dimse
    dimse: { ae_title: ARCHIVE, host: 10.0.0.5, port: 11112, tls: true, ca: /etc/dirgw/ca.pem, client_cert: /etc/dirgw/c.pem, client_key: /etc/dirgw/c.key }
)yaml";

std::string with(const std::string& from, const std::string& to) {
  std::string s = kBase;
  auto pos = s.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  s.replace(pos, from.size(), to);
  return s;
}

using testing_support::expect_error;

TEST(SchedulingConfig, EveryKeyIsRead) {
  auto r = load_string(kBase);
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].key + ": " + r.errors[0].message);
  const Config& c = *r.config;
  EXPECT_EQ(c.timezone, "America/Toronto");
  EXPECT_EQ(c.forwarding_bandwidth.max, 50ull << 20);
  EXPECT_EQ(c.forwarding_bandwidth.office_hours_max, 5ull << 20);
  ASSERT_EQ(c.forwarding_bandwidth.office_hours.size(), 1u);
  ASSERT_EQ(c.priority.stat_attributes.size(), 1u);
  EXPECT_EQ(c.priority.stat_attributes[0].tag, "(0040,1003)");
  EXPECT_EQ(c.priority.stat_attributes[0].values, std::vector<std::string>{"STAT"});
  EXPECT_EQ(c.priority.stat_calling_aes, std::vector<std::string>{"ER_CT"});
  const auto& h = c.destinations[0];
  EXPECT_EQ(h.schedule.windows.size(), 2u);
  EXPECT_TRUE(h.schedule.stat_bypass);
  EXPECT_EQ(h.bandwidth.max, 2ull << 20);
  EXPECT_EQ(h.concurrency, 1);
  EXPECT_EQ(h.auth.oauth2.token_url, "https://idp.example.org/token");
  EXPECT_EQ(h.auth.oauth2.client_id, "gw");
  EXPECT_EQ(h.auth.oauth2.client_secret_file, "/etc/dirgw/secret");
  EXPECT_EQ(h.auth.oauth2.scope, "dicom.write");
  const auto& p = c.destinations[1];
  EXPECT_EQ(p.type, "dimse");
  EXPECT_EQ(p.dimse.ae_title, "ARCHIVE");
  EXPECT_EQ(p.dimse.host, "10.0.0.5");
  EXPECT_EQ(p.dimse.port, 11112);
  EXPECT_TRUE(p.dimse.tls);
  EXPECT_EQ(p.dimse.client_key, "/etc/dirgw/c.key");
  EXPECT_EQ(p.dimse.decompress, "always");  // the default
  auto l = load_string(with("client_key: /etc/dirgw/c.key }",
                            "client_key: /etc/dirgw/c.key, decompress: lossless }"));
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l.config->destinations[1].dimse.decompress, "lossless");
}

TEST(SchedulingConfig, DefaultsSendAtAnyTimeUncapped) {
  auto r = load_string(
      "ingest: { dicom: { allowed_callers: ['*'] } }\n"
      "destinations: [ { name: a, url: 'http://127.0.0.1:1/dw' } ]\n");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config->timezone, "UTC");
  EXPECT_TRUE(r.config->destinations[0].schedule.windows.empty());
  EXPECT_EQ(r.config->destinations[0].bandwidth.max, 0u);
  EXPECT_EQ(r.config->forwarding_bandwidth.max, 0u);
}

TEST(SchedulingConfig, UnknownTimeZone) {
  expect_error(load_string(with("timezone: America/Toronto", "timezone: Mars/Olympus")),
               "facility.timezone", 1, "unknown time zone");
}

TEST(SchedulingConfig, BadWindow) {
  expect_error(load_string(with("\"Sat,Sun 00:00-24:00\"", "\"Sat,Sun 25:00-24:00\"")),
               "destinations[0].schedule.windows[1]", 11, "");
  expect_error(load_string(with("windows: [\"Mon-Fri 19:00-07:00\", \"Sat,Sun 00:00-24:00\"]",
                                "windows: []")),
               "destinations[0].schedule.windows", 11, "at least one window");
  expect_error(load_string(with("stat_bypass: true", "stat_bypass: maybe")),
               "destinations[0].schedule.stat_bypass", 11, "true or false");
  expect_error(load_string(with("stat_bypass: true", "stat: true")),
               "destinations[0].schedule.stat", 11, "unknown key");
}

TEST(SchedulingConfig, BadBandwidth) {
  expect_error(load_string(with("bandwidth: 2MiB", "bandwidth: fast")), "destinations[0].bandwidth",
               12, "size");
  expect_error(load_string(with("office_hours: [\"Mon-Fri 08:00-18:00\"], ", "")),
               "forwarding.bandwidth.office_hours", 4, "required with office_hours_max");
  expect_error(load_string(with("office_hours: [\"Mon-Fri 08:00-18:00\"]",
                                "office_hours: [\"Someday 08:00-18:00\"]")),
               "forwarding.bandwidth.office_hours[0]", 4, "");
}

TEST(SchedulingConfig, ConcurrencyFromOneTo64) {
  auto r = load_string(with("concurrency: 1", "concurrency: 4"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config->destinations[0].concurrency, 4);
  expect_error(load_string(with("concurrency: 1", "concurrency: 0")), "destinations[0].concurrency",
               13, "from 1 to 64");
  expect_error(load_string(with("concurrency: 1", "concurrency: 65")),
               "destinations[0].concurrency", 13, "from 1 to 64");
}

// Unset: two requests in flight for stow-rs (issue 16), one association for dimse; an explicit 1
// is kept.
TEST(SchedulingConfig, ConcurrencyDefaultsByType) {
  auto r = load_string(with("    concurrency: 1\n", ""));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config->destinations[0].type, "stow-rs");
  EXPECT_EQ(r.config->destinations[0].concurrency, kDefaultStowRsConcurrency);
  EXPECT_EQ(kDefaultStowRsConcurrency, 2);
  EXPECT_EQ(r.config->destinations[1].type, "dimse");
  EXPECT_EQ(r.config->destinations[1].concurrency, 1);
  auto one = load_string(kBase);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one.config->destinations[0].concurrency, 1);
}

// send_while_receiving (issue 16): a boolean per destination, false unless set.
TEST(SchedulingConfig, SendWhileReceivingIsABooleanPerDestination) {
  auto plain = load_string(kBase);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain.config->destinations[0].send_while_receiving);
  auto r = load_string(with("concurrency: 1", "concurrency: 1\n    send_while_receiving: true"));
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].key + ": " + r.errors[0].message);
  EXPECT_TRUE(r.config->destinations[0].send_while_receiving);
  EXPECT_FALSE(r.config->destinations[1].send_while_receiving);
  expect_error(
      load_string(with("concurrency: 1", "concurrency: 1\n    send_while_receiving: soon")),
      "destinations[0].send_while_receiving", 14, "true or false");
  expect_error(load_string(with("concurrency: 1", "concurrency: 1\n    send_while_receving: true")),
               "destinations[0].send_while_receving", 14, "");
}

// A client secret file that exists must be a private regular file: a symbolic link or a file
// that group or others may read is refused with the key and its line.
TEST(SchedulingConfig, OAuth2SecretFileMustBePrivate) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("dirgw-secret-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto secret = dir / "secret";
  { std::ofstream(secret) << "s3cret\n"; }
  const auto config_with = [&](const std::filesystem::path& p) {
    return load_string(
        with("client_secret_file: /etc/dirgw/secret", "client_secret_file: " + p.string()));
  };
  std::filesystem::permissions(
      secret, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  EXPECT_TRUE(config_with(secret).ok());
  std::filesystem::permissions(secret, std::filesystem::perms::group_read,
                               std::filesystem::perm_options::add);
  expect_error(config_with(secret), "destinations[0].auth.oauth2.client_secret_file", 15,
               "has mode 0640: group and others must have no access");
  std::filesystem::permissions(secret, std::filesystem::perms::owner_read |
                                           std::filesystem::perms::owner_write |
                                           std::filesystem::perms::others_read);
  expect_error(config_with(secret), "destinations[0].auth.oauth2.client_secret_file", 15,
               "has mode 0604");
  std::filesystem::permissions(
      secret, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  const auto link = dir / "link";
  std::filesystem::create_symlink(secret, link);
  expect_error(config_with(link), "destinations[0].auth.oauth2.client_secret_file", 15,
               "is a symbolic link");
  std::filesystem::remove_all(dir);
}

TEST(SchedulingConfig, OAuth2Errors) {
  expect_error(
      load_string(with("\"https://idp.example.org/token\"", "\"http://idp.example.org/token\"")),
      "destinations[0].auth.oauth2.token_url", 15, "loopback");
  expect_error(load_string(with("client_id: gw, ", "")), "destinations[0].auth.oauth2.client_id",
               15, "required");
  expect_error(
      load_string(with("client_secret_file: /etc/dirgw/secret", "client_secret_file: secret")),
      "destinations[0].auth.oauth2.client_secret_file", 15, "absolute path");
  expect_error(load_string(with("    auth:\n", "    auth:\n      bearer_token_file: /etc/t\n")),
               "destinations[0].auth.oauth2", 16, "excludes bearer_token_file");
}

TEST(SchedulingConfig, PriorityErrors) {
  expect_error(load_string(with("tag: \"(0040,1003)\"", "tag: RequestedProcedurePriority")),
               "priority.stat_attributes[0].tag", 6, "(gggg,eeee)");
  expect_error(load_string(with("values: [STAT]", "values: []")),
               "priority.stat_attributes[0].values", 6, "at least one value");
  expect_error(load_string(with("stat_calling_aes: [ER_CT]",
                                "stat_calling_aes: [THIS_AE_TITLE_IS_TOO_LONG]")),
               "priority.stat_calling_aes[0]", 7, "AE title");
}

TEST(SchedulingConfig, Hl7OrdersDefaultsAndKeys) {
  auto r = load_string(kBase);
  ASSERT_TRUE(r.ok());
  const auto& d = r.config->priority.hl7_orders;
  EXPECT_TRUE(d.enabled);
  EXPECT_EQ(d.accession_fields, (std::vector<std::string>{"IPC-1", "OBR-18"}));
  EXPECT_EQ(d.stat_values, (std::vector<std::string>{"S"}));
  auto c = load_string(with("stat_calling_aes: [ER_CT]",
                            "stat_calling_aes: [ER_CT]\n  hl7_orders: { accession_fields: [OBR-3], "
                            "priority_fields: [ORC-7.6], stat_values: [S, A] }"));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c.config->priority.hl7_orders.accession_fields, std::vector<std::string>{"OBR-3"});
  EXPECT_EQ(c.config->priority.hl7_orders.stat_values, (std::vector<std::string>{"S", "A"}));
  expect_error(load_string(with("stat_calling_aes: [ER_CT]",
                                "stat_calling_aes: [ER_CT]\n  hl7_orders: { accession_fields: "
                                "[\"OBR 18\"] }")),
               "priority.hl7_orders.accession_fields[0]", 8, "HL7 field path");
  expect_error(load_string(with("stat_calling_aes: [ER_CT]",
                                "stat_calling_aes: [ER_CT]\n  hl7_orders: { stat_values: [] }")),
               "priority.hl7_orders.stat_values", 8, "at least one value");
  expect_error(load_string(with("stat_calling_aes: [ER_CT]",
                                "stat_calling_aes: [ER_CT]\n  hl7_orders: { accesion: [OBR-3] }")),
               "priority.hl7_orders.accesion", 8, "");
}

TEST(SchedulingConfig, DimseErrors) {
  expect_error(load_string(with("type: dimse", "type: dicom")), "destinations[1].type", 17,
               "stow-rs or dimse");
  expect_error(load_string(with("ae_title: ARCHIVE, ", "")), "destinations[1].dimse.ae_title", 18,
               "required");
  expect_error(load_string(with("port: 11112, tls: true", "port: 70000, tls: true")),
               "destinations[1].dimse.port", 18, "from 1 to 65535");
  expect_error(load_string(with("tls: true, ", "")), "destinations[1].dimse.tls", 18,
               "must be true");
  expect_error(load_string(with(
                   "    dimse: { ae_title: ARCHIVE, host: 10.0.0.5, port: 11112, tls: true, ca: "
                   "/etc/dirgw/ca.pem, client_cert: /etc/dirgw/c.pem, client_key: "
                   "/etc/dirgw/c.key }\n",
                   "")),
               "destinations[1].dimse", 16, "required for type dimse");
  expect_error(load_string(with("    type: dimse\n", "    type: dimse\n    url: http://x/\n")),
               "destinations[1].url", 18, "stow-rs only");
  expect_error(load_string(with("client_key: /etc/dirgw/c.key }",
                                "client_key: /etc/dirgw/c.key, decompress: lossy }")),
               "destinations[1].dimse.decompress", 18, "must be always, lossless or never");
}

}  // namespace
}  // namespace dirgw::config
