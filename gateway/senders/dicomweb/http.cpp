#include "senders/dicomweb/http.h"
#include <cctype>

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <mutex>
#include <optional>

#include "common/files.h"
#include "common/text.h"
#include "log/log.h"
#include "scheduler/bandwidth.h"
#include "senders/dicomweb/curl_tls.h"
#include "senders/dicomweb/stow.h"

namespace dirgw::senders::dicomweb {

namespace {

void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

bool istarts_with(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i])))
      return false;
  }
  return true;
}

// State of one request, shared with libcurl's callbacks.
struct Transfer {
  MultipartBody* body = nullptr;
  scheduler::Throttle* throttle = nullptr;    // null: no shared bandwidth cap
  const scheduler::Sleeper* sleep = nullptr;  // how the pacing waits; always set
  std::string answer;
  bool answer_too_large = false;
  RetryAfterHeader retry_after;
  // Told once every byte of the body has gone to the socket (SendContext::request_sent).
  const std::function<void()>* request_sent = nullptr;
  std::uint64_t body_size = 0;
  bool sent_told = false;
  void tell_sent() {
    if (sent_told) return;
    sent_told = true;
    if (request_sent != nullptr && *request_sent) (*request_sent)();
  }
};

int on_progress(void* userdata, curl_off_t, curl_off_t, curl_off_t, curl_off_t ulnow) {
  auto* t = static_cast<Transfer*>(userdata);
  if (ulnow > 0 && static_cast<std::uint64_t>(ulnow) >= t->body_size) t->tell_sent();
  return 0;
}

std::size_t on_read(char* buf, std::size_t size, std::size_t nitems, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  std::size_t max = static_cast<std::size_t>(
      std::min<std::uint64_t>(size * nitems, t->body->total_size() - t->body->position()));
  std::uint64_t granted = max;
  if (t->throttle != nullptr && max > 0) {
    // Paced here, by sleeping in short steps until the shared buckets grant some bytes: this
    // thread is a worker blocked in curl_easy_perform anyway, and CURL_READFUNC_PAUSE would need
    // someone to unpause the easy handle from a callback that libcurl calls only about once a
    // second while paused (docs/scheduling.md). Never 0 here: that would end the body.
    granted = scheduler::acquire_blocking(*t->throttle, max, *t->sleep);
  }
  std::size_t n = t->body->read(buf, static_cast<std::size_t>(granted));
  if (t->throttle != nullptr && n < granted) t->throttle->give_back(granted - n);
  if (t->body->failed()) return CURL_READFUNC_ABORT;
  return n;
}

int on_seek(void* userdata, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(userdata);
  if (origin != SEEK_SET || offset < 0) return CURL_SEEKFUNC_CANTSEEK;
  return t->body->seek(static_cast<std::uint64_t>(offset)).ok() ? CURL_SEEKFUNC_OK
                                                                : CURL_SEEKFUNC_FAIL;
}

std::size_t on_write(char* data, std::size_t size, std::size_t nmemb, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  std::size_t n = size * nmemb;
  if (t->answer.size() + n > kMaxAnswerBytes) {
    t->answer_too_large = true;
    return 0;  // anything but n fails the transfer with CURLE_WRITE_ERROR
  }
  t->answer.append(data, n);
  return n;
}

std::size_t on_header(char* data, std::size_t size, std::size_t nitems, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  std::string_view line(data, size * nitems);
  if (istarts_with(line, "HTTP/")) {  // a new response (after 100 Continue, say) starts afresh
    t->answer.clear();
    t->answer_too_large = false;
  }
  t->retry_after.on_line(line);
  return size * nitems;
}

// Token characters only (RFC 6750 b64token is a subset of visible ASCII): a token file with a
// line break in the middle must not become a second header.
bool usable_token(std::string_view token) {
  return !token.empty() &&
         std::all_of(token.begin(), token.end(), [](char c) { return c > 0x20 && c < 0x7F; });
}

}  // namespace

Result<std::string> authorization_header(const StowRsOptions& opts) {
  if (opts.token_provider) {
    auto t = opts.token_provider->token();
    if (!t)
      return make_error(t.error().retryable() ? ErrorCode::kNetwork : ErrorCode::kRefused,
                        "no access token: " + t.error().to_string());
    return std::string(kBearerPrefix) + *t;
  }
  if (opts.bearer_token_file.empty()) return std::string();
  auto token = read_small_file(opts.bearer_token_file, std::size_t{64} * 1024);
  if (!token)
    return make_error(ErrorCode::kIo, "bearer token file unreadable: " + token.error().to_string());
  std::string_view t = trim_whitespace(*token);
  if (!usable_token(t))
    return make_error(ErrorCode::kIo, "bearer token file is empty or holds more than one token");
  return std::string(kBearerPrefix) + std::string(t);
}

namespace {

class StowRsSender final : public Sender {
 public:
  explicit StowRsSender(const StowRsOptions& options) : opts_(options) {
    init_curl_once();
    std::string base = opts_.base_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    url_ = base + "/studies";
    curl_.reset(curl_easy_init());
    if (!opts_.bandwidth_buckets.empty()) throttle_.emplace(opts_.bandwidth_buckets);
    if (!opts_.pacing_sleep) opts_.pacing_sleep = &scheduler::sleep_real;
  }

  Outcome send(const std::vector<Item>& batch, const SendContext& context) override;
  using Sender::send;

 private:
  static Outcome whole(const std::vector<Item>& batch, InstanceStatus status,
                       const std::string& message) {
    Outcome out{};
    for (const auto& item : batch)
      out.instances.push_back({item.sop_instance_uid, status, message});
    out.kind = aggregate_kind(out.instances);
    out.message = message;
    return out;
  }
  CURLcode configure(Transfer& transfer, const MultipartBody& body, curl_slist* headers);
  // What one request's transport result and answer say for each instance of the batch (before
  // the 401/403 handling, which needs the token provider).
  static Outcome answer_outcome(CURLcode rc, long status, const std::string& content_type,
                                const Transfer& transfer, const MultipartBody& body,
                                std::string detail, const std::vector<Item>& batch);

  StowRsOptions opts_;
  std::string url_;
  std::unique_ptr<CURL, CurlDeleter> curl_;
  std::optional<scheduler::Throttle> throttle_;
  char errbuf_[CURL_ERROR_SIZE] = {};
};

CURLcode StowRsSender::configure(Transfer& transfer, const MultipartBody& body,
                                 curl_slist* headers) {
  CURL* c = curl_.get();
  CURLcode rc = CURLE_OK;
  auto set = [&rc, c](CURLoption option, auto value) {
    if (rc == CURLE_OK) rc = curl_easy_setopt(c, option, value);
  };
  errbuf_[0] = '\0';
  set(CURLOPT_ERRORBUFFER, errbuf_);
  set(CURLOPT_URL, url_.c_str());
  if (rc == CURLE_OK)
    rc = apply_curl_tls(c, {opts_.ca_file, opts_.client_cert, opts_.client_key, opts_.verify_peer,
                            opts_.connect_timeout});
  set(CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  set(CURLOPT_TCP_KEEPALIVE, 1L);
  set(CURLOPT_HTTPHEADER, headers);

  set(CURLOPT_POST, 1L);
  set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.total_size()));
  set(CURLOPT_READFUNCTION, &on_read);
  set(CURLOPT_READDATA, static_cast<void*>(&transfer));
  set(CURLOPT_SEEKFUNCTION, &on_seek);
  set(CURLOPT_SEEKDATA, static_cast<void*>(&transfer));
  set(CURLOPT_WRITEFUNCTION, &on_write);
  set(CURLOPT_WRITEDATA, static_cast<void*>(&transfer));
  set(CURLOPT_HEADERFUNCTION, &on_header);
  set(CURLOPT_HEADERDATA, static_cast<void*>(&transfer));
  // Uncapped, libcurl's largest upload buffer (2 MiB): each read callback fills it from the
  // spool files, so the body goes out in fewer, larger sends (to the null sink 0.85x curl instead
  // of 0.75x with 256 KiB; docs/performance.md). The schedule's caps (the token buckets) grant
  // bytes per read whatever the buffer's size; under libcurl's own cap (max_bandwidth) libcurl
  // sends a buffer at a time, so the smaller one keeps its bursts short.
  set(CURLOPT_UPLOAD_BUFFERSIZE, opts_.max_bandwidth > 0 ? 256L * 1024 : 2L * 1024 * 1024);
  set(CURLOPT_NOPROGRESS, 0L);
  set(CURLOPT_XFERINFOFUNCTION, &on_progress);
  set(CURLOPT_XFERINFODATA, static_cast<void*>(&transfer));

  set(CURLOPT_TIMEOUT_MS, static_cast<long>(opts_.request_timeout.count()));
  set(CURLOPT_LOW_SPEED_LIMIT, opts_.stall_timeout.count() > 0 ? 1L : 0L);
  set(CURLOPT_LOW_SPEED_TIME, static_cast<long>(opts_.stall_timeout.count()));
  set(CURLOPT_MAX_SEND_SPEED_LARGE, static_cast<curl_off_t>(opts_.max_bandwidth));

  return rc;
}

Outcome StowRsSender::answer_outcome(CURLcode rc, long status, const std::string& content_type,
                                     const Transfer& transfer, const MultipartBody& body,
                                     std::string detail, const std::vector<Item>& batch) {
  Outcome out{};
  if (rc == CURLE_OK) {
    out = parse_stow_response(static_cast<int>(status), content_type, transfer.answer, batch);
  } else if (rc == CURLE_WRITE_ERROR && transfer.answer_too_large) {
    out =
        whole(batch, InstanceStatus::kRetry,
              "HTTP " + std::to_string(status) + ": answer longer than " +
                  std::to_string(kMaxAnswerBytes / (std::size_t{1024} * 1024)) + " MiB, not read");
    out.http_status = static_cast<int>(status);
  } else if (body.failed()) {
    out = whole(batch, InstanceStatus::kRetry, "upload stopped: " + body.error()->to_string());
  } else {
    TransportVerdict v = classify_curl_error(rc);
    if (!detail.empty() && detail.back() == '\n') detail.pop_back();
    out = whole(batch, v.status, detail.empty() ? v.message : v.message + " (" + detail + ")");
    out.http_status = static_cast<int>(status);
  }
  return out;
}

// Over 80 lines: one request's life in order (spool files opened, headers with the current
// token, the transfer, its answer, a refused token invalidated); the libcurl handle points into
// this frame's state between the steps, which is why they stay in one frame.
Outcome StowRsSender::send(const std::vector<Item>& batch, const SendContext& context) {
  if (batch.empty()) {
    Outcome out{};
    out.kind = OutcomeKind::kOk;
    out.message = "empty batch, nothing sent";
    return out;
  }
  if (!curl_) return whole(batch, InstanceStatus::kRetry, "libcurl could not create a handle");

  std::vector<SpoolProblem> problems;
  auto opened = MultipartBody::open(batch, make_boundary(), &problems);
  if (!opened) {
    if (problems.empty()) return whole(batch, InstanceStatus::kRetry, opened.error().to_string());
    // Attribute the problem to the items that have it; the others were simply not sent.
    Outcome out = whole(batch, InstanceStatus::kRetry,
                        "not sent: another item of the batch has no usable spool file");
    for (const auto& p : problems) {
      out.instances[p.index].status =
          p.error.retryable() ? InstanceStatus::kRetry : InstanceStatus::kPermanent;
      out.instances[p.index].reason = p.error.to_string();
    }
    out.kind = aggregate_kind(out.instances);
    out.message = "not sent: " + std::to_string(problems.size()) + " of " +
                  std::to_string(batch.size()) + " spool files missing or changed";
    return out;
  }
  MultipartBody body = std::move(opened).value();

  SlistPtr headers;
  auto add_header = [&headers](const std::string& h) {
    curl_slist* l = curl_slist_append(headers.get(), h.c_str());
    if (l == nullptr) return false;
    (void)headers.release();
    headers.reset(l);
    return true;
  };
  // "Expect:" switches off libcurl's 100-continue handshake for bodies over 1 MiB: a server
  // that never sends "100 Continue" (Orthanc does not) would cost a 1 s wait on every batch.
  bool ok = add_header("Content-Type: " + body.content_type()) &&
            add_header("Accept: application/dicom+json") && add_header("Expect:");
  std::string provided_token;  // from the token provider, to invalidate on a 401
  if (ok) {
    auto auth = authorization_header(opts_);
    if (!auth) {
      Outcome out = whole(batch, InstanceStatus::kRetry, auth.error().detail);
      out.auth_failed = auth.error().code == ErrorCode::kRefused;
      // A busy token endpoint's Retry-After holds the destination as a busy repository's would.
      if (opts_.token_provider) out.retry_after = opts_.token_provider->retry_after();
      return out;
    }
    if (!auth->empty()) ok = add_header(*auth);
    if (opts_.token_provider) provided_token = auth->substr(kBearerPrefix.size());
  }
  if (!ok) return whole(batch, InstanceStatus::kRetry, "out of memory building headers");

  Transfer transfer;
  transfer.body = &body;
  transfer.request_sent = &context.request_sent;
  transfer.body_size = body.total_size();
  transfer.throttle = throttle_ ? &*throttle_ : nullptr;
  transfer.sleep = &opts_.pacing_sleep;
  CURLcode rc = configure(transfer, body, headers.get());
  if (rc != CURLE_OK) {
    // An option this libcurl refuses (a TLS file type, say) will not work on a second try.
    return whole(batch, InstanceStatus::kPermanent,
                 std::string("libcurl refused an option: ") + curl_easy_strerror(rc));
  }

  auto started = std::chrono::steady_clock::now();
  rc = curl_easy_perform(curl_.get());
  transfer.tell_sent();
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);

  long status = 0;
  curl_easy_getinfo(curl_.get(), CURLINFO_RESPONSE_CODE, &status);
  curl_off_t uploaded = 0;
  curl_easy_getinfo(curl_.get(), CURLINFO_SIZE_UPLOAD_T, &uploaded);
  // The handle keeps pointers to this call's state; leave none dangling.
  curl_easy_setopt(curl_.get(), CURLOPT_HTTPHEADER, static_cast<curl_slist*>(nullptr));

  char* content_type = nullptr;
  if (rc == CURLE_OK) curl_easy_getinfo(curl_.get(), CURLINFO_CONTENT_TYPE, &content_type);
  Outcome out =
      answer_outcome(rc, status, content_type ? content_type : "", transfer, body, errbuf_, batch);
  if (out.http_status == 401 || out.http_status == 403) {
    out.auth_failed = true;
    if (opts_.token_provider) {
      // The token may have been revoked or expired early: the next request gets a fresh one. The
      // instances are not at fault, so nothing is marked permanent.
      opts_.token_provider->invalidate(provided_token);
      std::string why = "HTTP " + std::to_string(out.http_status) + ": credentials refused";
      out = whole(batch, InstanceStatus::kRetry, why);
      out.http_status = static_cast<int>(status);
      out.auth_failed = true;
    }
  }
  out.retry_after = transfer.retry_after.delay(std::chrono::system_clock::now());
  out.bytes_sent = uploaded > 0 ? static_cast<std::uint64_t>(uploaded) : 0;

  log::debug("stow-rs request done", {{"instances", std::to_string(batch.size())},
                                      {"http_status", std::to_string(out.http_status)},
                                      {"bytes_sent", std::to_string(out.bytes_sent)},
                                      {"ms", std::to_string(elapsed.count())},
                                      {"outcome", out.message}});
  return out;
}

}  // namespace

TransportVerdict classify_curl_error(int curl_code) {
  const auto code = static_cast<CURLcode>(curl_code);
  const InstanceStatus retry = InstanceStatus::kRetry;
  switch (code) {
    case CURLE_OK:
      return {retry, "no error"};
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
      return {InstanceStatus::kPermanent, "destination URL unusable"};
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return {retry, "cannot resolve host"};
    case CURLE_COULDNT_CONNECT:
      return {retry, "cannot connect"};
    case CURLE_OPERATION_TIMEDOUT:
      return {retry, "timed out or stalled"};
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
      return {retry, "connection lost"};
    case CURLE_SEND_FAIL_REWIND:
      return {retry, "connection lost and the body could not be rewound"};
    case CURLE_SSL_CONNECT_ERROR:
      return {retry, "TLS handshake failed"};
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_CRL_BADFILE:
      return {retry,
              "TLS peer verification failed (server certificate or CA file; a certificate "
              "rotation can fix this)"};
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
      return {retry, "local client certificate or key unusable"};
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return {retry, "malformed HTTP answer"};
    case CURLE_ABORTED_BY_CALLBACK:
    case CURLE_READ_ERROR:
      return {retry, "upload stopped"};
    case CURLE_OUT_OF_MEMORY:
      return {retry, "out of memory"};
    default:
      return {retry, std::string("transfer failed: ") + curl_easy_strerror(code)};
  }
}

}  // namespace dirgw::senders::dicomweb

namespace dirgw::senders {

std::unique_ptr<Sender> make_stow_rs_sender(const StowRsOptions& options) {
  return std::make_unique<dicomweb::StowRsSender>(options);
}

}  // namespace dirgw::senders

namespace dirgw::senders::dicomweb {
void init_curl_once_public() { init_curl_once(); }

void RetryAfterHeader::on_line(std::string_view line) {
  if (istarts_with(line, "HTTP/")) {
    value.clear();
  } else if (istarts_with(line, "Retry-After:")) {
    value = std::string(trim_whitespace(line.substr(12)));
  }
}

std::optional<std::chrono::milliseconds> RetryAfterHeader::delay(
    std::chrono::system_clock::time_point now) const {
  if (value.empty()) return std::nullopt;
  return parse_retry_after(value, now);
}

std::size_t collect_retry_after(char* data, std::size_t size, std::size_t nitems, void* header) {
  static_cast<RetryAfterHeader*>(header)->on_line(std::string_view(data, size * nitems));
  return size * nitems;
}
}  // namespace dirgw::senders::dicomweb

namespace dirgw::senders {

NotifyOutcome post_notification(const StowRsOptions& opts, const std::string& url,
                                const std::string& json_body) {
  dicomweb::init_curl_once_public();
  NotifyOutcome out;
  CURL* c = curl_easy_init();
  if (c == nullptr) {
    out.message = "curl_easy_init failed";
    return out;
  }
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");
  auto auth = dicomweb::authorization_header(opts);
  if (!auth) {
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    out.message = auth.error().detail;
    return out;  // retried later, as every failed notification is
  }
  const std::string token_header = *auth;
  if (!token_header.empty()) headers = curl_slist_append(headers, token_header.c_str());
  const std::string token =
      token_header.empty() ? std::string() : token_header.substr(dicomweb::kBearerPrefix.size());
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, json_body.c_str());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(json_body.size()));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  // Same TLS and handle rules as STOW-RS: TLS 1.2+, no redirects, http/https only.
  dicomweb::apply_curl_tls(
      c, {opts.ca_file, opts.client_cert, opts.client_key, opts.verify_peer, opts.connect_timeout});
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
  dicomweb::RetryAfterHeader retry_after;
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &dicomweb::collect_retry_after);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, static_cast<void*>(&retry_after));
  // The answer body is not read into anything: it may echo patient data.
  curl_easy_setopt(
      c, CURLOPT_WRITEFUNCTION,
      +[](char*, std::size_t size, std::size_t n, void*) { return size * n; });
  CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(c);
  out.http_status = static_cast<int>(status);
  if (opts.token_provider && status == 401) opts.token_provider->invalidate(token);
  if (rc != CURLE_OK) {
    auto v = dicomweb::classify_curl_error(rc);
    out.retry = v.status == InstanceStatus::kRetry;
    out.message = v.message;
  } else if (status >= 200 && status < 300) {
    out.ok = true;
    out.message = "HTTP " + std::to_string(status);
  } else {
    // A notification must not be lost: everything but success is tried again later.
    out.retry = true;
    out.message = "HTTP " + std::to_string(status);
    out.retry_after = retry_after.delay(std::chrono::system_clock::now());
  }
  return out;
}

}  // namespace dirgw::senders

namespace dirgw::senders {

namespace {
class HttpNotifier final : public Notifier {
 public:
  HttpNotifier(StowRsOptions options, std::string url)
      : options_(std::move(options)), url_(std::move(url)) {}
  NotifyOutcome notify(const std::string& json_body) override {
    return post_notification(options_, url_, json_body);
  }

 private:
  StowRsOptions options_;
  std::string url_;
};
}  // namespace

std::unique_ptr<Notifier> make_http_notifier(StowRsOptions options, std::string url) {
  return std::make_unique<HttpNotifier>(std::move(options), std::move(url));
}

}  // namespace dirgw::senders
