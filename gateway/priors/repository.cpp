#include "priors/repository.h"

#include <curl/curl.h>

#include <cctype>
#include <optional>

#include "common/uid.h"
#include "senders/dicomweb/curl_tls.h"
#include "senders/dicomweb/http.h"

namespace dirgw::priors {

namespace {

constexpr std::size_t kMaxSearchAnswer = std::size_t{16} * 1024 * 1024;

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

// What one GET gathers: the Content-Type header and either the body (a search) or a multipart
// stream fed to the parser as it arrives (a retrieval).
struct Transfer {
  std::string content_type;
  std::string body;
  bool streaming = false;
  MultipartParser::Handler handler;
  std::optional<MultipartParser> parser;
  std::optional<Error> stopped;  // why the write callback stopped the transfer
  long status = 0;
  CURL* handle = nullptr;
};

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  std::string_view line(data, size * n);
  constexpr std::string_view kName = "content-type:";
  if (line.size() > kName.size()) {
    std::string head(line.substr(0, kName.size()));
    for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (head == kName) {
      line.remove_prefix(kName.size());
      while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
      while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
      t->content_type = std::string(line);
    }
  }
  return size * n;
}

std::size_t on_write(char* data, std::size_t size, std::size_t n, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  const std::string_view bytes(data, size * n);
  if (t->streaming && t->status == 0)
    curl_easy_getinfo(t->handle, CURLINFO_RESPONSE_CODE, &t->status);
  if (!t->streaming || t->status != 200) {
    // Only a 200 answer is streamed; anything else is read (bounded) and dropped.
    if (t->body.size() + bytes.size() > kMaxSearchAnswer) {
      t->stopped = Error{ErrorCode::kProtocol, "answer too long"};
      return 0;
    }
    t->body.append(bytes);
    return bytes.size();
  }
  if (!t->parser) {
    const std::string boundary = multipart_boundary(t->content_type);
    if (boundary.empty() || t->content_type.find("multipart/related") == std::string::npos) {
      t->stopped = Error{ErrorCode::kProtocol, "WADO-RS answer is not multipart/related"};
      return 0;
    }
    t->parser.emplace(boundary, t->handler);
  }
  if (auto r = t->parser->feed(bytes); !r) {
    t->stopped = r.error();
    return 0;
  }
  return bytes.size();
}

class DicomwebRepository final : public Repository {
 public:
  explicit DicomwebRepository(RepositoryOptions o) : o_(std::move(o)) {
    curl_global_init(CURL_GLOBAL_DEFAULT);  // reference-counted
    curl_.reset(curl_easy_init());
  }

  Result<std::vector<FoundStudy>> search(const std::string& health_number,
                                         const std::string& since_date) override {
    Transfer t;
    auto r = get(study_search_url(o_.http.base_url, health_number, since_date, o_.search_limit),
                 "Accept: application/dicom+json", t);
    if (!r) return r.error();
    return parse_study_search(static_cast<int>(t.status), t.body);
  }

  Result<void> retrieve_study(const std::string& study_uid,
                              MultipartParser::Handler handler) override {
    if (!uid_syntax_ok(study_uid))
      return make_error(ErrorCode::kInvalidArgument, "not a UID: cannot retrieve this study");
    std::string base = o_.http.base_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    Transfer t;
    t.streaming = true;
    t.handler = std::move(handler);
    auto r = get(base + "/studies/" + study_uid,
                 "Accept: multipart/related; type=\"application/dicom\"; transfer-syntax=*", t);
    if (!r) return r.error();
    if (t.status == 404) return make_error(ErrorCode::kNotFound, "the repository lacks the study");
    if (t.status != 200)
      return make_error(t.status >= 500 || t.status == 408 || t.status == 429 ? ErrorCode::kNetwork
                                                                              : ErrorCode::kRefused,
                        "WADO-RS answered HTTP " + std::to_string(t.status));
    if (!t.parser) return make_error(ErrorCode::kProtocol, "WADO-RS answer has no body");
    return t.parser->finish();
  }

 private:
  Result<void> get(const std::string& url, const char* accept, Transfer& t);

  RepositoryOptions o_;
  std::unique_ptr<CURL, CurlDeleter> curl_;
};

Result<void> DicomwebRepository::get(const std::string& url, const char* accept, Transfer& t) {
  if (!curl_) return make_error(ErrorCode::kInternal, "libcurl could not create a handle");
  std::unique_ptr<curl_slist, SlistDeleter> headers(curl_slist_append(nullptr, accept));
  std::string token;
  auto auth = senders::dicomweb::authorization_header(o_.http);
  if (!auth) return auth.error();
  if (!auth->empty()) {
    headers.reset(curl_slist_append(headers.release(), auth->c_str()));
    if (o_.http.token_provider) token = auth->substr(senders::dicomweb::kBearerPrefix.size());
  }
  CURL* c = curl_.get();
  curl_easy_reset(c);
  CURLcode rc = senders::dicomweb::apply_curl_tls(
      c, {o_.http.ca_file, o_.http.client_cert, o_.http.client_key, o_.http.verify_peer,
          o_.http.connect_timeout});
  auto set = [&rc, c](CURLoption option, auto value) {
    if (rc == CURLE_OK) rc = curl_easy_setopt(c, option, value);
  };
  set(CURLOPT_URL, url.c_str());
  set(CURLOPT_HTTPGET, 1L);
  set(CURLOPT_HTTPHEADER, headers.get());
  set(CURLOPT_TIMEOUT_MS, static_cast<long>(o_.timeout.count()));
  set(CURLOPT_HEADERFUNCTION, &on_header);
  set(CURLOPT_HEADERDATA, static_cast<void*>(&t));
  set(CURLOPT_WRITEFUNCTION, &on_write);
  set(CURLOPT_WRITEDATA, static_cast<void*>(&t));
  if (rc != CURLE_OK)
    return make_error(ErrorCode::kConfig,
                      std::string("libcurl refused an option: ") + curl_easy_strerror(rc));
  t.handle = c;
  rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &t.status);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(nullptr));
  if (rc != CURLE_OK) {
    if (t.stopped) return *t.stopped;
    const auto v = senders::dicomweb::classify_curl_error(rc);
    return make_error(rc == CURLE_OPERATION_TIMEDOUT ? ErrorCode::kTimeout : ErrorCode::kNetwork,
                      "DICOMweb: " + v.message);
  }
  if (t.status == 401 && o_.http.token_provider) o_.http.token_provider->invalidate(token);
  return {};
}

}  // namespace

std::unique_ptr<Repository> make_dicomweb_repository(RepositoryOptions options) {
  return std::make_unique<DicomwebRepository>(std::move(options));
}

}  // namespace dirgw::priors
