#include "daemon/host_checks.h"

#include <openssl/asn1.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/timex.h>

#include <ctime>
#include <memory>

#include "common/files.h"

namespace dirgw::daemon {

namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct Asn1TimeFree {
  void operator()(ASN1_TIME* t) const { ASN1_TIME_free(t); }
};

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};

// The first certificate of a PEM file (none: unreadable or not PEM).
std::unique_ptr<X509, X509Free> read_certificate(const std::filesystem::path& path) {
  auto pem = read_small_file(path, 1 << 20);
  if (!pem) return nullptr;
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
  if (bio == nullptr) return nullptr;
  return std::unique_ptr<X509, X509Free>(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

// The warning for one destination's certificate, if any.
std::optional<std::string> certificate_warning(const config::Destination& d, TimePoint now) {
  const std::string who = "destination " + d.name + ": client certificate ";
  if (!read_small_file(d.auth.client_cert, 1 << 20)) return who + "unreadable";
  auto cert = read_certificate(d.auth.client_cert);
  if (cert == nullptr) return who + "is not PEM";
  std::unique_ptr<ASN1_TIME, Asn1TimeFree> from(ASN1_TIME_set(
      nullptr,
      static_cast<time_t>(
          std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count())));
  int days = 0, secs = 0;
  if (from == nullptr ||
      ASN1_TIME_diff(&days, &secs, from.get(), X509_get0_notAfter(cert.get())) != 1)
    return std::nullopt;
  if (days < 0 || (days == 0 && secs <= 0)) return who + "has EXPIRED";
  if (days < 30) return who + "expires in " + std::to_string(days) + " days";
  return std::nullopt;
}

}  // namespace

std::optional<std::string> clock_sync_warning(int adjtime_state, int timex_status) {
  if (adjtime_state == TIME_ERROR || (timex_status & STA_UNSYNC) != 0)
    return "system clock is not synchronised (NTP): audit times may be wrong";
  return std::nullopt;
}

std::optional<std::string> clock_sync_warning() {
  timex tx{};
  const int state = ::ntp_adjtime(&tx);
  return clock_sync_warning(state, tx.status);
}

std::vector<std::string> certificate_warnings(const std::vector<config::Destination>& destinations,
                                              TimePoint now) {
  std::vector<std::string> out;
  for (const auto& d : destinations) {
    if (d.auth.client_cert.empty()) continue;
    if (auto w = certificate_warning(d, now)) out.push_back(std::move(*w));
  }
  return out;
}

std::vector<ConfiguredCertificate> configured_certificates(const config::Config& config) {
  std::vector<ConfiguredCertificate> out;
  const auto& tls = config.ingest.dicom.tls;
  if (tls.enabled && !tls.certificate.empty())
    out.push_back({"dicom_receiver", "", tls.certificate});
  for (const auto& d : config.destinations) {
    if (!d.auth.client_cert.empty()) out.push_back({"destination", d.name, d.auth.client_cert});
    if (d.dimse.tls && !d.dimse.client_cert.empty())
      out.push_back({"destination_dimse", d.name, d.dimse.client_cert});
  }
  if (config.audit_syslog.enabled && !config.audit_syslog.client_cert.empty())
    out.push_back({"audit_syslog", "", config.audit_syslog.client_cert});
  return out;
}

std::optional<std::int64_t> certificate_not_after(const std::filesystem::path& pem) {
  auto cert = read_certificate(pem);
  if (cert == nullptr) return std::nullopt;
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &tm) != 1) return std::nullopt;
  return static_cast<std::int64_t>(timegm(&tm));
}

std::vector<std::string> host_warnings(const config::Config& config, const Clock& clock) {
  std::vector<std::string> out;
  if (auto w = clock_sync_warning()) out.push_back(std::move(*w));
  for (auto& w : certificate_warnings(config.destinations, clock.now()))
    out.push_back(std::move(w));
  return out;
}

}  // namespace dirgw::daemon
