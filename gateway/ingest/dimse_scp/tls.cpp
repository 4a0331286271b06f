#include "ingest/dimse_scp/tls.h"

#include <openssl/bio.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <vector>

// clang-format off
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmnet/assoc.h"
#include "dcmtk/dcmtls/tlslayer.h"
// clang-format on

namespace dirgw::ingest {

struct ScpTls::Impl {
  DcmTLSTransportLayer layer{NET_ACCEPTOR, nullptr, OFTrue};
};

ScpTls::ScpTls() : impl_(std::make_unique<Impl>()) {}
ScpTls::~ScpTls() = default;

namespace {
Error tls_error(const std::string& what, const OFCondition& cond) {
  return Error{ErrorCode::kConfig, "DICOM TLS: " + what + ": " + cond.text()};
}
}  // namespace

Result<std::unique_ptr<ScpTls>> ScpTls::make(const config::DicomTls& cfg) {
  struct stat st {};
  if (::stat(cfg.private_key.c_str(), &st) != 0)
    return make_error(ErrorCode::kConfig,
                      "DICOM TLS: cannot read the private key " + cfg.private_key.string());
  if ((st.st_mode & 077) != 0)
    return make_error(ErrorCode::kConfig,
                      "DICOM TLS: the private key " + cfg.private_key.string() +
                          " must not be group- or world-accessible (chmod 600)");
  std::unique_ptr<ScpTls> tls(new ScpTls());
  auto& layer = tls->impl_->layer;
  if (!layer) return make_error(ErrorCode::kConfig, "DICOM TLS: OpenSSL cannot be initialised");
  // BCP 195 non-downgrading: TLS 1.2+, ECDHE/DHE with AES-GCM only.
  if (auto c = layer.setTLSProfile(TSP_Profile_BCP195_ND); c.bad())
    return tls_error("profile BCP195-ND", c);
  if (auto c = layer.activateCipherSuites(); c.bad()) return tls_error("cipher suites", c);
  if (!layer.setBuiltInDHParameters())
    return make_error(ErrorCode::kConfig, "DICOM TLS: cannot set the DH parameters");
  if (auto c = layer.setPrivateKeyFile(cfg.private_key.c_str(), DCF_Filetype_PEM); c.bad())
    return tls_error("private key " + cfg.private_key.string(), c);
  if (auto c = layer.setCertificateFile(cfg.certificate.c_str(), DCF_Filetype_PEM); c.bad())
    return tls_error("certificate " + cfg.certificate.string(), c);
  if (!layer.checkPrivateKeyMatchesCertificate())
    return make_error(ErrorCode::kConfig,
                      "DICOM TLS: the private key does not match the certificate");
  if (!cfg.ca.empty())
    if (auto c = layer.addTrustedCertificateFile(cfg.ca.c_str(), DCF_Filetype_PEM); c.bad())
      return tls_error("CA " + cfg.ca.string(), c);
  // A presented certificate is always checked against the CA; requiring one is the config's.
  layer.setCertificateVerification(cfg.require_client_certificate ? DCV_requireCertificate
                                   : cfg.ca.empty()               ? DCV_ignoreCertificate
                                                                  : DCV_checkCertificate);
  return tls;
}

void* ScpTls::layer() { return &impl_->layer; }

std::optional<std::string> peer_certificate_subject(void* association) {
  auto* assoc = static_cast<T_ASC_Association*>(association);
  const unsigned long length = ASC_getPeerCertificateLength(assoc);
  if (length == 0 || length > (1u << 20)) return std::nullopt;
  std::vector<unsigned char> der(length);
  if (ASC_getPeerCertificate(assoc, der.data(), length) != length) return std::nullopt;
  const unsigned char* p = der.data();
  X509* cert = d2i_X509(nullptr, &p, static_cast<long>(length));
  if (cert == nullptr) return std::nullopt;
  BIO* bio = BIO_new(BIO_s_mem());
  std::optional<std::string> out;
  if (bio != nullptr &&
      X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    if (n >= 0) out = std::string(data, static_cast<std::size_t>(n));
  }
  BIO_free(bio);
  X509_free(cert);
  return out;
}

}  // namespace dirgw::ingest
