// ingest.dicom.tls / callers / stop_grace and ingest.hl7's time-outs: each key read, and each
// mistake reported with its key and line.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "expect_error.h"

namespace dirgw::config {
namespace {

// Line 1 is "facility", line 4 "dicom:"; the door keys start on line 8.
std::string dicom_with(const std::string& door) {
  return "facility: { name: Lakeside, id: LGH }\n"
         "state_dir: /var/lib/dirgw\n"
         "ingest:\n"
         "  dicom:\n"
         "    ae_title: DIRGW\n"
         "    port: 11112\n"
         "    allowed_callers: [PACS1]\n" +
         door +
         "destinations:\n"
         "  - { name: hdirs, type: stow-rs, url: https://dir.example.org/dicom-web }\n";
}

std::string hl7_with(const std::string& keys) {
  return "facility: { name: Lakeside, id: LGH }\n"
         "ingest:\n"
         "  dicom: { enabled: false }\n"
         "  hl7:\n"
         "    enabled: true\n" +
         keys +
         "destinations:\n"
         "  - { name: hdirs, type: stow-rs, url: https://dir.example.org/dicom-web }\n";
}

using testing_support::expect_error;

const char* kTls =
    "    tls:\n"
    "      certificate: /etc/dirgw/tls/scp.pem\n"
    "      private_key: /etc/dirgw/tls/scp.key\n"
    "      ca: /etc/dirgw/tls/ca.pem\n"
    "      require_client_certificate: true\n";

TEST(DoorConfig, DefaultsWhenAbsent) {
  auto r = load_string(dicom_with(""));
  ASSERT_TRUE(r.ok()) << r.errors[0].message;
  const auto& d = r.config->ingest.dicom;
  EXPECT_FALSE(d.tls.enabled);
  EXPECT_TRUE(d.callers.empty());
  EXPECT_EQ(d.stop_grace, std::chrono::seconds(10));
  EXPECT_EQ(r.config->ingest.hl7.idle_timeout, std::chrono::minutes(5));
  EXPECT_EQ(r.config->ingest.hl7.message_timeout, std::chrono::seconds(60));
}

TEST(DoorConfig, TlsBlockReadsEveryKey) {
  auto r = load_string(dicom_with(kTls));
  ASSERT_TRUE(r.ok()) << r.errors[0].message;
  const auto& t = r.config->ingest.dicom.tls;
  EXPECT_TRUE(t.enabled);
  EXPECT_EQ(t.certificate, "/etc/dirgw/tls/scp.pem");
  EXPECT_EQ(t.private_key, "/etc/dirgw/tls/scp.key");
  EXPECT_EQ(t.ca, "/etc/dirgw/tls/ca.pem");
  EXPECT_TRUE(t.require_client_certificate);
}

TEST(DoorConfig, TlsEnabledFalseNeedsNothing) {
  auto r = load_string(dicom_with("    tls: { enabled: false }\n"));
  ASSERT_TRUE(r.ok()) << r.errors[0].message;
  EXPECT_FALSE(r.config->ingest.dicom.tls.enabled);
}

TEST(DoorConfig, TlsWithoutCertificateOrKey) {
  auto r = load_string(dicom_with("    tls:\n      ca: /etc/dirgw/ca.pem\n"));
  expect_error(r, "ingest.dicom.tls.certificate", 9, "is required with TLS");
  expect_error(r, "ingest.dicom.tls.private_key", 9, "is required with TLS");
}

TEST(DoorConfig, ClientCertificateRequiredNeedsCa) {
  auto r =
      load_string(dicom_with("    tls:\n      certificate: /a.pem\n      private_key: /a.key\n"
                             "      require_client_certificate: true\n"));
  expect_error(r, "ingest.dicom.tls.ca", 9, "require_client_certificate");
}

TEST(DoorConfig, TlsRelativePathAndUnknownKey) {
  auto r = load_string(dicom_with(
      "    tls:\n      certificate: scp.pem\n      private_key: /a.key\n      ciphers: all\n"));
  expect_error(r, "ingest.dicom.tls.certificate", 9, "absolute path");
  expect_error(r, "ingest.dicom.tls.ciphers", 11, "unknown key");
}

TEST(DoorConfig, TlsRequireClientCertificateNotBoolean) {
  auto r = load_string(dicom_with(
      "    tls:\n      certificate: /a.pem\n      private_key: /a.key\n      ca: /ca.pem\n"
      "      require_client_certificate: maybe\n"));
  expect_error(r, "ingest.dicom.tls.require_client_certificate", 12, "true or false");
}

TEST(DoorConfig, CallersBindAddressesAndSubjects) {
  auto r = load_string(dicom_with(std::string(kTls) +
                                  "    callers:\n"
                                  "      - ae_title: PACS1\n"
                                  "        addresses: [10.0.0.5, 10.1.0.0/16]\n"
                                  "        subjects: [\"CN=pacs1,O=Lakeside\"]\n"
                                  "      - { ae_title: CT2, addresses: [192.168.4.0/24] }\n"));
  ASSERT_TRUE(r.ok()) << r.errors[0].message;
  const auto& c = r.config->ingest.dicom.callers;
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].ae_title, "PACS1");
  EXPECT_EQ(c[0].networks, (std::vector<std::string>{"10.0.0.5", "10.1.0.0/16"}));
  EXPECT_EQ(c[0].subjects, (std::vector<std::string>{"CN=pacs1,O=Lakeside"}));
  EXPECT_EQ(c[1].ae_title, "CT2");
  EXPECT_TRUE(c[1].subjects.empty());
}

TEST(DoorConfig, CallersAloneAdmitWithoutAllowedCallers) {
  std::string y = dicom_with("    callers: [{ae_title: PACS9, addresses: [127.0.0.1]}]\n");
  y.replace(y.find("    allowed_callers: [PACS1]\n"), 29, "");
  auto r = load_string(y);
  ASSERT_TRUE(r.ok()) << r.errors[0].key << ": " << r.errors[0].message;
  EXPECT_TRUE(r.config->ingest.dicom.allowed_callers.empty());
}

TEST(DoorConfig, CallerBadAddress) {
  auto r =
      load_string(dicom_with("    callers:\n      - ae_title: PACS1\n        addresses: "
                             "[10.0.0.300, 10.0.0.0/33, pacs]\n"));
  expect_error(r, "ingest.dicom.callers[0].addresses[0]", 10, "IPv4 address or network");
  expect_error(r, "ingest.dicom.callers[0].addresses[1]", 10, "IPv4 address or network");
  expect_error(r, "ingest.dicom.callers[0].addresses[2]", 10, "IPv4 address or network");
}

TEST(DoorConfig, CallerWithoutAeTitle) {
  auto r = load_string(dicom_with("    callers:\n      - addresses: [10.0.0.5]\n"));
  expect_error(r, "ingest.dicom.callers[0].ae_title", 9, "is required");
}

TEST(DoorConfig, CallerBadAeTitleAndUnknownKey) {
  auto r = load_string(dicom_with(
      "    callers:\n      - ae_title: THIS_TITLE_IS_FAR_TOO_LONG\n        hosts: [a]\n"));
  expect_error(r, "ingest.dicom.callers[0].ae_title", 9, "1 to 16");
  expect_error(r, "ingest.dicom.callers[0].hosts", 10, "unknown key");
}

TEST(DoorConfig, SubjectsNeedTls) {
  auto r = load_string(
      dicom_with("    callers:\n      - ae_title: PACS1\n        subjects: [\"CN=pacs1\"]\n"));
  expect_error(r, "ingest.dicom.callers[0].subjects", 10, "needs ingest.dicom.tls");
}

TEST(DoorConfig, SubjectMustLookLikeOne) {
  auto r = load_string(dicom_with(std::string(kTls) + "    callers:\n      - ae_title: PACS1\n"
                                                      "        subjects: [pacs1]\n"));
  expect_error(r, "ingest.dicom.callers[0].subjects[0]", 15, "certificate subject");
}

TEST(DoorConfig, CallersNotAList) {
  auto r = load_string(dicom_with("    callers: PACS1\n"));
  expect_error(r, "ingest.dicom.callers", 8, "must be a list");
}

TEST(DoorConfig, StopGrace) {
  auto r = load_string(dicom_with("    stop_grace: 30s\n"));
  ASSERT_TRUE(r.ok()) << r.errors[0].message;
  EXPECT_EQ(r.config->ingest.dicom.stop_grace, std::chrono::seconds(30));
  auto zero = load_string(dicom_with("    stop_grace: 0s\n"));
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(zero.config->ingest.dicom.stop_grace, std::chrono::seconds(0));
  expect_error(load_string(dicom_with("    stop_grace: 10m\n")), "ingest.dicom.stop_grace", 8,
               "between");
  expect_error(load_string(dicom_with("    stop_grace: soon\n")), "ingest.dicom.stop_grace", 8,
               "duration");
}

TEST(DoorConfig, MaxItems) {
  auto absent = load_string(dicom_with(""));
  ASSERT_TRUE(absent.ok()) << absent.errors[0].message;
  EXPECT_EQ(absent.config->ingest.dicom.max_items, 1000000u);
  auto r = load_string(dicom_with("    max_items: 5000000\n"));
  ASSERT_TRUE(r.ok()) << r.errors[0].message;
  EXPECT_EQ(r.config->ingest.dicom.max_items, 5000000u);
  expect_error(load_string(dicom_with("    max_items: 10\n")), "ingest.dicom.max_items", 8,
               "whole number from 1000");
  expect_error(load_string(dicom_with("    max_items: many\n")), "ingest.dicom.max_items", 8,
               "whole number");
}

TEST(DoorConfig, Hl7Timeouts) {
  auto r = load_string(hl7_with("    idle_timeout: 2m\n    message_timeout: 15s\n"));
  ASSERT_TRUE(r.ok()) << r.errors[0].message;
  EXPECT_EQ(r.config->ingest.hl7.idle_timeout, std::chrono::minutes(2));
  EXPECT_EQ(r.config->ingest.hl7.message_timeout, std::chrono::seconds(15));
}

TEST(DoorConfig, Hl7TimeoutErrors) {
  auto r = load_string(hl7_with("    idle_timeout: 0s\n    message_timeout: 2h\n"));
  expect_error(r, "ingest.hl7.idle_timeout", 6, "between");
  expect_error(r, "ingest.hl7.message_timeout", 7, "between");
  expect_error(load_string(hl7_with("    idle_timeout: [1s]\n")), "ingest.hl7.idle_timeout", 6,
               "single value");
}

// Issue 17, item 3: a destination's answer to Explicit VR Big Endian.
std::string destination_with(const std::string& key) {
  return "facility: { name: Lakeside, id: LGH }\n"
         "destinations:\n"
         "  - name: hdirs\n"
         "    type: stow-rs\n"
         "    url: https://dir.example.org/dicom-web\n" +
         key;
}

TEST(DoorConfig, BigEndianPerDestination) {
  auto r = load_string(destination_with(""));
  ASSERT_TRUE(r.ok()) << r.errors[0].message;
  EXPECT_EQ(r.config->destinations[0].big_endian, "send");
  for (const char* mode : {"send", "convert", "refuse"}) {
    auto m = load_string(destination_with(std::string("    big_endian: ") + mode + "\n"));
    ASSERT_TRUE(m.ok()) << m.errors[0].message;
    EXPECT_EQ(m.config->destinations[0].big_endian, mode);
  }
  expect_error(load_string(destination_with("    big_endian: swap\n")),
               "destinations[0].big_endian", 6, "must be send, convert or refuse, not 'swap'");
}

TEST(DoorConfig, UnElementsPerDestination) {
  auto r = load_string(destination_with(""));
  ASSERT_TRUE(r.ok()) << r.errors[0].message;
  EXPECT_EQ(r.config->destinations[0].un_elements, "decode");
  auto m = load_string(destination_with("    un_elements: send\n"));
  ASSERT_TRUE(m.ok()) << m.errors[0].message;
  EXPECT_EQ(m.config->destinations[0].un_elements, "send");
  expect_error(load_string(destination_with("    un_elements: rewrite\n")),
               "destinations[0].un_elements", 6, "must be decode or send, not 'rewrite'");
}

}  // namespace
}  // namespace dirgw::config
