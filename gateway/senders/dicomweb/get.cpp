#include "senders/dicomweb/get.h"

#include <memory>

#include "common/text.h"
#include "senders/dicomweb/curl_tls.h"
#include "senders/dicomweb/http.h"
#include "senders/dicomweb/stow_answer.h"

namespace dirgw::senders::dicomweb {

namespace {

struct GetSlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

struct GetTransfer {
  CURL* handle = nullptr;
  const BodySink* sink = nullptr;
  GetAnswer answer;
  RetryAfterHeader retry_after;
  bool stopped = false;
};

std::size_t on_get_header(char* data, std::size_t size, std::size_t n, void* userdata) {
  auto* t = static_cast<GetTransfer*>(userdata);
  const std::string_view line(data, size * n);
  t->retry_after.on_line(line);
  constexpr std::string_view kName = "Content-Type:";
  if (detail::iequals(line.substr(0, 5), "HTTP/")) t->answer.content_type.clear();
  if (detail::iequals(line.substr(0, kName.size()), kName))
    t->answer.content_type = std::string(trim_whitespace(line.substr(kName.size())));
  return size * n;
}

std::size_t on_get_write(char* data, std::size_t size, std::size_t n, void* userdata) {
  auto* t = static_cast<GetTransfer*>(userdata);
  if (t->answer.status == 0)
    curl_easy_getinfo(t->handle, CURLINFO_RESPONSE_CODE, &t->answer.status);
  if (!(*t->sink)(std::string_view(data, size * n), t->answer)) {
    t->stopped = true;
    return 0;
  }
  return size * n;
}

}  // namespace

GetAnswer http_get(CURL* c, const StowRsOptions& http, const GetRequest& request,
                   const BodySink& sink) {
  GetTransfer t;
  if (c == nullptr) {
    t.answer.transfer = make_error(ErrorCode::kInternal, "libcurl could not create a handle");
    return std::move(t.answer);
  }
  const std::string accept = "Accept: " + request.accept;
  std::unique_ptr<curl_slist, GetSlistDeleter> headers(curl_slist_append(nullptr, accept.c_str()));
  std::string token;
  auto auth = authorization_header(http);
  if (!auth) {
    if (http.token_provider) t.answer.retry_after = http.token_provider->retry_after();
    t.answer.transfer = auth.error();
    return std::move(t.answer);
  }
  if (!auth->empty()) {
    headers.reset(curl_slist_append(headers.release(), auth->c_str()));
    if (http.token_provider) token = auth->substr(kBearerPrefix.size());
  }
  curl_easy_reset(c);
  CURLcode rc = apply_curl_tls(
      c, {http.ca_file, http.client_cert, http.client_key, http.verify_peer, http.connect_timeout});
  auto set = [&rc, c](CURLoption option, auto value) {
    if (rc == CURLE_OK) rc = curl_easy_setopt(c, option, value);
  };
  set(CURLOPT_URL, request.url.c_str());
  set(CURLOPT_HTTPGET, 1L);
  set(CURLOPT_HTTPHEADER, headers.get());
  set(CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
  set(CURLOPT_HEADERFUNCTION, &on_get_header);
  set(CURLOPT_HEADERDATA, static_cast<void*>(&t));
  set(CURLOPT_WRITEFUNCTION, &on_get_write);
  set(CURLOPT_WRITEDATA, static_cast<void*>(&t));
  if (rc != CURLE_OK) {
    t.answer.transfer = make_error(
        ErrorCode::kConfig, std::string("libcurl refused an option: ") + curl_easy_strerror(rc));
    return std::move(t.answer);
  }
  t.handle = c;
  t.sink = &sink;
  rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &t.answer.status);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(nullptr));
  if (rc != CURLE_OK) {
    if (t.stopped) {
      t.answer.transfer = make_error(ErrorCode::kProtocol, "the answer was not read to its end");
    } else {
      const auto v = classify_curl_error(rc);
      t.answer.transfer = make_error(
          rc == CURLE_OPERATION_TIMEDOUT ? ErrorCode::kTimeout : ErrorCode::kNetwork, v.message);
    }
    return std::move(t.answer);
  }
  if (t.answer.status == 429 || t.answer.status == 503)
    t.answer.retry_after = t.retry_after.delay(std::chrono::system_clock::now());
  if (t.answer.status == 401 && http.token_provider) http.token_provider->invalidate(token);
  return std::move(t.answer);
}

}  // namespace dirgw::senders::dicomweb
