#include "senders/dicomweb/curl_tls.h"

namespace dirgw::senders::dicomweb {

CURLcode apply_curl_tls(CURL* c, const CurlTls& tls) {
  CURLcode rc = CURLE_OK;
  auto set = [&rc, c](CURLoption option, auto value) {
    if (rc == CURLE_OK) rc = curl_easy_setopt(c, option, value);
  };
  set(CURLOPT_PROTOCOLS_STR, "http,https");
  set(CURLOPT_FOLLOWLOCATION, 0L);
  set(CURLOPT_NOSIGNAL, 1L);
  set(CURLOPT_TCP_NODELAY, 1L);
  set(CURLOPT_USERAGENT, "dirgw");
  set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(tls.connect_timeout.count()));
  set(CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
  set(CURLOPT_SSL_VERIFYPEER, tls.verify_peer ? 1L : 0L);
  set(CURLOPT_SSL_VERIFYHOST, tls.verify_peer ? 2L : 0L);
  if (!tls.ca_file.empty()) set(CURLOPT_CAINFO, tls.ca_file.c_str());
  if (!tls.client_cert.empty()) set(CURLOPT_SSLCERT, tls.client_cert.c_str());
  if (!tls.client_key.empty()) set(CURLOPT_SSLKEY, tls.client_key.c_str());
  return rc;
}

}  // namespace dirgw::senders::dicomweb
