// The one libcurl handle set-up every HTTP request to a destination or its token endpoint uses
// (STOW-RS, OAuth2 token fetch, withdrawal notifications): http/https only, redirects never
// followed (a redirect would send a study or a secret elsewhere), no signals, TCP_NODELAY,
// TLS 1.2 or newer, peer and host name verified unless turned off, the destination's CA and
// client certificate (mutual TLS). One place, so the three paths cannot drift apart (issue 11).
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <filesystem>

namespace dirgw::senders::dicomweb {

struct CurlTls {
  std::filesystem::path ca_file, client_cert, client_key;
  bool verify_peer = true;
  std::chrono::milliseconds connect_timeout{10000};
};

// Sets the options above on `c`; returns the first libcurl error (CURLE_OK when all took).
CURLcode apply_curl_tls(CURL* c, const CurlTls& tls);

}  // namespace dirgw::senders::dicomweb
