#include "senders/dicomweb/oauth2.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "log/log.h"
#include "senders/dicomweb/curl_tls.h"
#include "senders/dicomweb/http.h"

namespace dirgw::senders::dicomweb {

void init_curl_once_public();  // http.cpp

namespace {

constexpr std::size_t kMaxTokenAnswer = 64 * 1024;

// Wipes a string that held a secret before its memory goes back to the allocator.
struct Wiped {
  std::string s;
  ~Wiped() {
    if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  }
};

std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string form_escape(CURL* c, const std::string& s) {
  char* e = curl_easy_escape(c, s.data(), static_cast<int>(s.size()));
  if (e == nullptr) return {};
  std::string out(e);
  curl_free(e);
  return out;
}

bool visible_ascii(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7F; });
}

bool ascii_iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// The "error" of an RFC 6749 section 5.2 answer when it is a plain code (invalid_client...):
// safe to show. Anything else in the answer (error_description) is not copied.
std::string error_code_of(const std::string& answer) {
  auto j = nlohmann::json::parse(answer, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("error") || !j["error"].is_string())
    return {};
  std::string e = j["error"].get<std::string>();
  if (e.size() > 40 ||
      !std::all_of(e.begin(), e.end(), [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; }))
    return {};
  return e;
}

std::size_t on_token_write(char* data, std::size_t size, std::size_t nmemb, void* userdata) {
  auto* answer = static_cast<std::string*>(userdata);
  std::size_t n = size * nmemb;
  if (answer->size() + n > kMaxTokenAnswer) return 0;
  answer->append(data, n);
  return n;
}

Error config_error(std::string detail) { return make_error(ErrorCode::kConfig, std::move(detail)); }

bool usable_token_url(std::string_view url) {
  if (url.rfind("https://", 0) == 0) return url.size() > 8;
  for (std::string_view host : {"http://127.0.0.1", "http://[::1]", "http://localhost"}) {
    if (url.rfind(host, 0) == 0) {
      std::string_view rest = url.substr(host.size());
      if (rest.empty() || rest.front() == ':' || rest.front() == '/') return true;
    }
  }
  return false;
}

}  // namespace

struct OAuth2ClientCredentials::Curl {
  struct Deleter {
    void operator()(CURL* c) const { curl_easy_cleanup(c); }
  };
  std::unique_ptr<CURL, Deleter> handle;
};

Result<void> check_secret_file(const std::filesystem::path& path) {
  return check_private_file(path, "client secret file");
}

Result<std::unique_ptr<OAuth2ClientCredentials>> OAuth2ClientCredentials::create(
    OAuth2Options options, const Clock& clock) {
  if (!usable_token_url(options.token_url))
    return config_error(
        "token_url must be an https:// URL (http:// only to 127.0.0.1, [::1] or "
        "localhost)");
  if (options.client_id.empty()) return config_error("client_id is empty");
  if (auto ok = check_secret_file(options.client_secret_file); !ok) return ok.error();
  if (options.refresh_margin.count() < 0) return config_error("refresh margin is negative");
  if (options.lifetime_if_unknown.count() <= 0)
    return config_error("assumed token lifetime must be positive");
  return std::unique_ptr<OAuth2ClientCredentials>(
      new OAuth2ClientCredentials(std::move(options), clock));
}

OAuth2ClientCredentials::OAuth2ClientCredentials(OAuth2Options options, const Clock& clock)
    : opts_(std::move(options)), clock_(clock), curl_(std::make_unique<Curl>()) {
  init_curl_once_public();
}

OAuth2ClientCredentials::~OAuth2ClientCredentials() {
  if (cached_) OPENSSL_cleanse(cached_->token.data(), cached_->token.size());
}

Result<std::string> OAuth2ClientCredentials::token() {
  std::lock_guard lock(mutex_);
  TimePoint now = clock_.now();
  if (cached_ && now < cached_->refresh_at) return cached_->token;
  auto fresh =
      now < not_before_
          ? Result<Cached>(make_error(ErrorCode::kUnavailable,
                                      "token endpoint " + opts_.token_url +
                                          " asked to wait (Retry-After): not asked again yet"))
          : fetch();
  if (!fresh) {
    // Refreshing early failed but the old token has not expired: use it while it lasts.
    if (cached_ && now < cached_->expires_at) {
      log::warn("oauth2 token refresh failed, using the current token until it expires",
                {{"token_url", opts_.token_url}, {"error", fresh.error().to_string()}});
      return cached_->token;
    }
    log::warn("oauth2 token fetch failed",
              {{"token_url", opts_.token_url}, {"error", fresh.error().to_string()}});
    return fresh.error();
  }
  if (cached_) OPENSSL_cleanse(cached_->token.data(), cached_->token.size());
  cached_ = std::move(*fresh);
  return cached_->token;
}

std::optional<std::chrono::milliseconds> OAuth2ClientCredentials::retry_after() {
  std::lock_guard lock(mutex_);
  const TimePoint now = clock_.now();
  if (now >= not_before_) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::milliseconds>(not_before_ - now);
}

void OAuth2ClientCredentials::invalidate(const std::string& rejected) {
  std::lock_guard lock(mutex_);
  if (cached_ && cached_->token == rejected) {
    OPENSSL_cleanse(cached_->token.data(), cached_->token.size());
    cached_.reset();
  }
}

void OAuth2ClientCredentials::invalidate_all() {
  std::lock_guard lock(mutex_);
  if (cached_) OPENSSL_cleanse(cached_->token.data(), cached_->token.size());
  cached_.reset();
}

namespace {

// The error for a request libcurl could not complete.
Error transport_error(CURLcode rc, const std::string& where) {
  TransportVerdict v = classify_curl_error(rc);
  ErrorCode code = ErrorCode::kNetwork;
  if (rc == CURLE_OPERATION_TIMEDOUT) code = ErrorCode::kTimeout;
  if (rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_PEER_FAILED_VERIFICATION) code = ErrorCode::kTls;
  if (v.status == InstanceStatus::kPermanent) code = ErrorCode::kConfig;
  if (rc == CURLE_WRITE_ERROR) code = ErrorCode::kProtocol;  // answer over 64 KiB
  return make_error(code, where + ": " + v.message);
}

// The client secret: the file's mode checked, trailing whitespace dropped, never empty.
Result<std::string> read_secret(const std::filesystem::path& file) {
  if (auto ok = check_secret_file(file); !ok) return ok.error();
  auto read = read_small_file(file, 64 * 1024);
  if (!read) return config_error("client secret file unreadable: " + read.error().to_string());
  std::string secret = std::move(*read);
  while (!secret.empty() && std::isspace(static_cast<unsigned char>(secret.back())))
    secret.pop_back();
  if (secret.empty()) return config_error("client secret file is empty");
  return secret;
}

// The token endpoint's 2xx answer (RFC 6749 5.1): the access token and its lifetime.
struct TokenAnswer {
  std::string token;
  std::chrono::seconds lifetime{0};
};

constexpr std::chrono::seconds kMaxTokenLifetime{86400};

Result<TokenAnswer> read_token_answer(const std::string& answer, const std::string& where,
                                      std::chrono::seconds lifetime_if_unknown) {
  auto j = nlohmann::json::parse(answer, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return make_error(ErrorCode::kProtocol, where + ": answer is not a JSON object");
  if (!j.contains("access_token") || !j["access_token"].is_string())
    return make_error(ErrorCode::kProtocol, where + ": answer has no access_token");
  TokenAnswer out;
  out.token = j["access_token"].get<std::string>();
  if (!visible_ascii(out.token))
    return make_error(ErrorCode::kProtocol, where + ": access_token is empty or not printable");
  if (j.contains("token_type")) {
    // Required by RFC 6749 5.1, but some servers leave it out; anything other than Bearer is a
    // token this sender cannot present.
    if (!j["token_type"].is_string() ||
        !ascii_iequals(j["token_type"].get<std::string>(), "bearer"))
      return make_error(ErrorCode::kProtocol, where + ": token_type is not Bearer");
  }
  out.lifetime = lifetime_if_unknown;
  if (j.contains("expires_in")) {
    const auto& e = j["expires_in"];
    std::int64_t secs = 0;
    if (e.is_number_integer() || e.is_number_unsigned()) {
      secs = e.get<std::int64_t>();
    } else if (e.is_number_float()) {
      const double d = e.get<double>();  // 1e300 is valid JSON: no cast before the range check
      secs = d > 0 && d < double(kMaxTokenLifetime.count()) ? static_cast<std::int64_t>(d)
                                                            : kMaxTokenLifetime.count();
    } else if (e.is_string()) {  // some servers send "3599"
      const std::string s = e.get<std::string>();
      if (!s.empty() && s.size() < 12 && std::all_of(s.begin(), s.end(), [](char ch) {
            return std::isdigit(static_cast<unsigned char>(ch)) != 0;
          }))
        secs = std::stoll(s);
    }
    // The server's number: capped, so that no clock arithmetic overflows and a token is asked
    // for again at least daily.
    if (secs > 0) out.lifetime = std::chrono::seconds(std::min(secs, kMaxTokenLifetime.count()));
  }
  return out;
}

}  // namespace

Result<OAuth2ClientCredentials::Cached> OAuth2ClientCredentials::fetch() {
  auto read = read_secret(opts_.client_secret_file);
  if (!read) return read.error();
  Wiped secret{std::move(*read)};

  if (!curl_->handle) curl_->handle.reset(curl_easy_init());
  CURL* c = curl_->handle.get();
  if (c == nullptr) return make_error(ErrorCode::kInternal, "libcurl could not create a handle");
  curl_easy_reset(c);

  Wiped body{"grant_type=client_credentials"};
  if (!opts_.scope.empty()) body.s += "&scope=" + form_escape(c, opts_.scope);
  curl_slist* headers =
      curl_slist_append(nullptr, "Content-Type: application/x-www-form-urlencoded");
  headers = curl_slist_append(headers, "Accept: application/json");
  headers = curl_slist_append(headers, "Expect:");
  Wiped basic;
  if (opts_.client_auth == OAuth2Options::ClientAuth::kBasic) {
    // RFC 6749 2.3.1: id and secret are form-encoded before they are joined and base64-encoded.
    Wiped joined{form_escape(c, opts_.client_id) + ":" + form_escape(c, secret.s)};
    basic.s = "Authorization: Basic " + base64(joined.s);
    headers = curl_slist_append(headers, basic.s.c_str());
  } else {
    body.s += "&client_id=" + form_escape(c, opts_.client_id) +
              "&client_secret=" + form_escape(c, secret.s);
  }
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> header_list(headers, curl_slist_free_all);

  std::string answer;
  char errbuf[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_URL, opts_.token_url.c_str());
  apply_curl_tls(c,
                 {opts_.ca_file, opts_.client_cert, opts_.client_key, opts_.verify_peer,
                  std::chrono::milliseconds(std::min<std::int64_t>(opts_.timeout.count(), 10000))});
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, header_list.get());
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.s.c_str());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.s.size()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &on_token_write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, static_cast<void*>(&answer));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(opts_.timeout.count()));
  RetryAfterHeader retry_after;
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &collect_retry_after);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, static_cast<void*>(&retry_after));

  TimePoint asked_at = clock_.now();
  CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  // The handle outlives this call's buffers and headers: leave nothing pointing at them.
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(nullptr));
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, static_cast<const char*>(nullptr));
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, static_cast<char*>(nullptr));

  const std::string where = "token endpoint " + opts_.token_url;
  if (rc != CURLE_OK) return transport_error(rc, where);
  const std::string status_text = "HTTP " + std::to_string(status);
  if (status == 408 || status == 429 || (status >= 500 && status <= 599)) {
    if (auto wait = retry_after.delay(std::chrono::system_clock::now()))
      not_before_ = asked_at + std::min(*wait, opts_.retry_after_max);
    return make_error(ErrorCode::kUnavailable, where + " answered " + status_text);
  }
  if (status >= 400 && status <= 499) {
    std::string code = error_code_of(answer);
    return make_error(ErrorCode::kRefused, where + " refused the client (" + status_text +
                                               (code.empty() ? "" : ", " + code) +
                                               "): check client_id, secret and scope");
  }
  if (status < 200 || status > 299)
    return make_error(ErrorCode::kProtocol,
                      where + " answered " + status_text + " (redirects are not followed)");

  auto token = read_token_answer(answer, where, opts_.lifetime_if_unknown);
  Wiped wipe_answer{std::move(answer)};
  if (!token) return token.error();
  Cached fresh;
  fresh.token = std::move(token->token);
  const std::chrono::seconds lifetime = token->lifetime;
  auto margin = std::min<std::chrono::seconds>(opts_.refresh_margin, lifetime / 2);
  fresh.expires_at = asked_at + lifetime;
  fresh.refresh_at = fresh.expires_at - margin;
  log::info("oauth2 token fetched",
            {{"token_url", opts_.token_url}, {"expires_in", std::to_string(lifetime.count())}});
  return fresh;
}

}  // namespace dirgw::senders::dicomweb
