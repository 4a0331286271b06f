// DICOM TLS for the SCP: DCMTK's dcmtls transport layer (OpenSSL) with the BCP 195
// non-downgrading profile (TLS 1.2 and later, the four BCP 195 AES-GCM suites; TLS 1.0/1.1 and
// SSL refused), our certificate and key, and the CA that client certificates must chain to.
// Owns the layer; the DCMTK network only borrows it, so it must outlive the network.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "common/result.h"
#include "config/config.h"

namespace dirgw::ingest {

class ScpTls {
 public:
  // Loads and checks the files: the key must not be group- or world-readable and must match the
  // certificate; the CA must load when given.
  static Result<std::unique_ptr<ScpTls>> make(const config::DicomTls& cfg);
  ~ScpTls();
  ScpTls(const ScpTls&) = delete;
  ScpTls& operator=(const ScpTls&) = delete;

  // The layer (DcmTransportLayer*). The SCP's own layer wraps it (watched_layer.h); associations
  // received with useSecureLayer then handshake TLS first.
  void* layer();

 private:
  ScpTls();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The subject of the certificate the peer presented on this association (T_ASC_Association*),
// in RFC 2253 form ("CN=pacs1,O=Lakeside"); nullopt without TLS or without a certificate.
std::optional<std::string> peer_certificate_subject(void* association);

}  // namespace dirgw::ingest
