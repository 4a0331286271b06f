#include "daemon/host_checks.h"

#include <openssl/asn1.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/timex.h>

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

// The warning for one destination's certificate, if any.
std::optional<std::string> certificate_warning(const config::Destination& d, TimePoint now) {
  const std::string who = "destination " + d.name + ": client certificate ";
  auto pem = read_small_file(d.auth.client_cert, 1 << 20);
  if (!pem) return who + "unreadable";
  BIO* bio = BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size()));
  std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
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

std::vector<std::string> host_warnings(const config::Config& config, const Clock& clock) {
  std::vector<std::string> out;
  if (auto w = clock_sync_warning()) out.push_back(std::move(*w));
  for (auto& w : certificate_warnings(config.destinations, clock.now()))
    out.push_back(std::move(w));
  return out;
}

}  // namespace dirgw::daemon
