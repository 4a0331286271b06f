#include "daemon/host_checks.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/timex.h>

#include <cstdlib>
#include <filesystem>

#include "common/files.h"

namespace dirgw::daemon {
namespace {

using namespace std::chrono_literals;

const TimePoint kNow = from_epoch_ms(1'800'000'000'000);

class HostChecksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dirgw-host-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A self-signed certificate valid until `not_after`, written as PEM.
  std::filesystem::path certificate(const std::string& name, TimePoint not_after) {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    const auto secs = [](TimePoint t) {
      return static_cast<time_t>(
          std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count());
    };
    ASN1_TIME_set(X509_getm_notBefore(x), secs(kNow - 24h * 365));
    ASN1_TIME_set(X509_getm_notAfter(x), secs(not_after));
    X509_NAME* subject = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("dirgw-test"), -1, -1, 0);
    X509_set_issuer_name(x, subject);
    X509_set_pubkey(x, key);
    X509_sign(x, key, EVP_sha256());
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, x);
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    const auto path = dir_ / name;
    EXPECT_TRUE(
        write_file_durably(path, std::string(data, static_cast<std::size_t>(len)), 0600).ok());
    BIO_free(bio);
    X509_free(x);
    EVP_PKEY_free(key);
    return path;
  }

  static config::Destination destination(const std::string& name,
                                         const std::filesystem::path& cert) {
    config::Destination d;
    d.name = name;
    d.auth.client_cert = cert;
    return d;
  }

  std::filesystem::path dir_;
};

TEST(ClockSync, WarnsWhenTheKernelSaysUnsynchronised) {
  EXPECT_EQ(clock_sync_warning(TIME_OK, 0), std::nullopt);
  EXPECT_EQ(clock_sync_warning(TIME_OK, STA_UNSYNC),
            "system clock is not synchronised (NTP): audit times may be wrong");
  EXPECT_EQ(clock_sync_warning(TIME_ERROR, 0),
            "system clock is not synchronised (NTP): audit times may be wrong");
}

TEST_F(HostChecksTest, CertificateFarFromExpiryGivesNoWarning) {
  const auto cert = certificate("ok.pem", kNow + 24h * 200);
  EXPECT_TRUE(certificate_warnings({destination("hdirs", cert)}, kNow).empty());
}

TEST_F(HostChecksTest, CertificateExpiringWithinThirtyDaysSaysWhen) {
  const auto cert = certificate("soon.pem", kNow + 24h * 10 + 1h);
  const auto w = certificate_warnings({destination("hdirs", cert)}, kNow);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0], "destination hdirs: client certificate expires in 10 days");
}

TEST_F(HostChecksTest, ExpiredCertificateIsShouted) {
  const auto cert = certificate("old.pem", kNow - 1h);
  const auto w = certificate_warnings({destination("hdirs", cert)}, kNow);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0], "destination hdirs: client certificate has EXPIRED");
}

TEST_F(HostChecksTest, UnreadableAndNonPemCertificatesAreNamed) {
  ASSERT_TRUE(write_file_durably(dir_ / "junk.pem", "not a certificate", 0600).ok());
  const auto w = certificate_warnings(
      {destination("a", dir_ / "absent.pem"), destination("b", dir_ / "junk.pem")}, kNow);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0], "destination a: client certificate unreadable");
  EXPECT_EQ(w[1], "destination b: client certificate is not PEM");
}

TEST_F(HostChecksTest, DestinationsWithoutClientCertificatesAreSkipped) {
  config::Destination plain;
  plain.name = "plain";
  EXPECT_TRUE(certificate_warnings({plain}, kNow).empty());
}

}  // namespace
}  // namespace dirgw::daemon

namespace dirgw::daemon {
namespace {

// The certificate-expiry metric (daemon/ops_metrics) reads notAfter with these.
TEST_F(HostChecksTest, NotAfterIsReadFromThePemFile) {
  const auto cert = certificate("metric.pem", kNow + 24h * 42);
  const auto t = certificate_not_after(cert);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(*t, to_epoch_ms(kNow + 24h * 42) / 1000);
  EXPECT_FALSE(certificate_not_after(dir_ / "absent.pem").has_value());
}

TEST_F(HostChecksTest, ConfiguredCertificatesAreEveryOneDirgwPresents) {
  config::Config c;
  c.ingest.dicom.tls.enabled = true;
  c.ingest.dicom.tls.certificate = "/etc/dirgw/tls/scp.pem";
  c.destinations.push_back(destination("hdirs", "/etc/dirgw/tls/client.pem"));
  c.destinations.push_back(destination("plain", ""));
  c.destinations.back().dimse.tls = true;
  c.destinations.back().dimse.client_cert = "/etc/dirgw/tls/dimse.pem";
  c.audit_syslog.enabled = true;
  c.audit_syslog.client_cert = "/etc/dirgw/tls/audit.pem";
  const auto certs = configured_certificates(c);
  ASSERT_EQ(certs.size(), 4u);
  EXPECT_EQ(certs[0].use, "dicom_receiver");
  EXPECT_EQ(certs[1].use, "destination");
  EXPECT_EQ(certs[1].name, "hdirs");
  EXPECT_EQ(certs[2].use, "destination_dimse");
  EXPECT_EQ(certs[2].name, "plain");
  EXPECT_EQ(certs[3].path, "/etc/dirgw/tls/audit.pem");
}

}  // namespace
}  // namespace dirgw::daemon
