// OAuth2 client credentials (RFC 6749 section 4.4) for DICOMweb destinations: fetches an access
// token from the token endpoint, caches it until shortly before it expires and fetches a new
// one when asked after that or after a 401. The client secret is read from its file for every
// fetch (a rotated secret is used at once); neither the secret nor a token is ever logged or put
// into an error. Thread-safe: one fetch at a time, the other callers wait for it and share it.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/result.h"
#include "senders/sender.h"

namespace dirgw::senders::dicomweb {

struct OAuth2Options {
  // https://idp.example.org/oauth2/token; http:// only to a loopback address (a local sidecar,
  // tests): the secret must not cross a network in clear.
  std::string token_url;
  std::string client_id;
  // One line, the secret; mode 0600 or 0400 (a group- or world-accessible file is refused).
  std::filesystem::path client_secret_file;
  std::string scope;  // space-separated; empty: not sent
  // RFC 6749 2.3.1: HTTP Basic is what every server must accept; some want the credentials in
  // the form body instead ("client_secret_post").
  enum class ClientAuth { kBasic, kPost };
  ClientAuth client_auth = ClientAuth::kBasic;
  // A cached token is replaced this long before it expires (at most half its lifetime), so a
  // request never leaves with a token about to lapse.
  std::chrono::seconds refresh_margin{60};
  // When the answer has no expires_in (it is only RECOMMENDED).
  std::chrono::seconds lifetime_if_unknown{300};
  std::chrono::milliseconds timeout{15000};
  // A 429/503 answer's Retry-After is honoured up to this long: no fetch before then.
  std::chrono::milliseconds retry_after_max{std::chrono::minutes(15)};
  std::filesystem::path ca_file, client_cert, client_key;  // TLS to the token endpoint
  bool verify_peer = true;
};

// Refuses a secret file that is missing, not a regular file, empty, or group/world accessible.
Result<void> check_secret_file(const std::filesystem::path& path);

class OAuth2ClientCredentials final : public TokenProvider {
 public:
  // Checks the options and the secret file; does no network I/O (dirgw config check can call
  // it). Errors are kConfig.
  static Result<std::unique_ptr<OAuth2ClientCredentials>> create(OAuth2Options options,
                                                                 const Clock& clock);
  ~OAuth2ClientCredentials() override;
  OAuth2ClientCredentials(const OAuth2ClientCredentials&) = delete;
  OAuth2ClientCredentials& operator=(const OAuth2ClientCredentials&) = delete;

  // Errors: kNetwork/kTimeout/kTls/kUnavailable (retryable: endpoint down or busy), kRefused
  // (the endpoint refused the client: bad id, secret or scope), kProtocol (the answer is not a
  // bearer token), kConfig (secret file unusable).
  Result<std::string> token() override;
  void invalidate(const std::string& rejected) override;
  // Forgets whatever token is cached.
  void invalidate_all();
  // The endpoint answered 429/503 with Retry-After: the time left until it may be asked again.
  std::optional<std::chrono::milliseconds> retry_after() override;

 private:
  struct Cached {
    std::string token;
    TimePoint refresh_at;  // expiry minus the margin
    TimePoint expires_at;
  };
  struct Curl;
  OAuth2ClientCredentials(OAuth2Options options, const Clock& clock);
  Result<Cached> fetch();

  OAuth2Options opts_;
  const Clock& clock_;
  std::mutex mutex_;  // held across a fetch: callers wait for it instead of fetching again
  std::optional<Cached> cached_;
  TimePoint not_before_{};      // the endpoint's Retry-After: no fetch before then
  std::unique_ptr<Curl> curl_;  // one handle, so the connection to the endpoint is reused
};

}  // namespace dirgw::senders::dicomweb
