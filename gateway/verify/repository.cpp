#include "verify/repository.h"

#include <curl/curl.h>

#include <functional>

#include "common/uid.h"
#include "senders/dicomweb/curl_tls.h"
#include "senders/dicomweb/http.h"

namespace dirgw::verify {

namespace {

// An answer longer than this is not read (a page of 500 instances is well under 1 MiB).
constexpr std::size_t kMaxAnswer = std::size_t{16} * 1024 * 1024;
// A repository that keeps returning full pages is not believed past this many.
constexpr int kMaxPages = 10000;

struct Answer {
  std::string body;
  bool too_large = false;
};

std::size_t on_write(char* data, std::size_t size, std::size_t n, void* userdata) {
  auto* a = static_cast<Answer*>(userdata);
  if (a->body.size() + size * n > kMaxAnswer) {
    a->too_large = true;
    return 0;
  }
  a->body.append(data, size * n);
  return size * n;
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

class QidoRepository final : public Repository {
 public:
  explicit QidoRepository(QidoOptions o) : o_(std::move(o)) {
    curl_global_init(CURL_GLOBAL_DEFAULT);  // reference-counted; the senders did it already
    curl_.reset(curl_easy_init());
  }

  Result<std::vector<Listed>> study_instances(const std::string& study_uid) override {
    if (!uid_syntax_ok(study_uid))
      return make_error(ErrorCode::kInvalidArgument, "not a UID: cannot ask for this study");
    auto series = pages([&](int limit, int offset) {
      return series_url(o_.http.base_url, study_uid, limit, offset);
    });
    if (!series && series.error().code == ErrorCode::kNotFound) {
      // Some repositories answer 404 for a study they do not hold: ask the study search, which
      // tells "not held" (200/204, nothing) from "no QIDO-RS here" (an error).
      auto probe = get(base() + "/studies?StudyInstanceUID=" + study_uid);
      if (!probe) return probe.error();
      if (probe->empty()) return std::vector<Listed>();
      return make_error(ErrorCode::kProtocol,
                        "QIDO-RS lists the study but answers 404 for its series");
    }
    if (!series) return series.error();
    std::vector<Listed> out;
    for (const auto& s : *series) {
      if (!uid_syntax_ok(s.series_uid)) continue;
      auto inst = pages([&](int limit, int offset) {
        return instances_url(o_.http.base_url, study_uid, s.series_uid, limit, offset);
      });
      if (!inst) return inst.error();
      for (auto& l : *inst) {
        if (l.series_uid.empty()) l.series_uid = s.series_uid;
        out.push_back(std::move(l));
      }
    }
    return out;
  }

  std::optional<std::chrono::milliseconds> retry_after() const override { return retry_after_; }

  Result<std::vector<Listed>> find_instance(const std::string& sop_instance_uid) override {
    if (!uid_syntax_ok(sop_instance_uid))
      return make_error(ErrorCode::kInvalidArgument, "not a UID: cannot ask for this instance");
    return get(instance_search_url(o_.http.base_url, sop_instance_uid));
  }

 private:
  std::string base() const {
    std::string b = o_.http.base_url;
    while (!b.empty() && b.back() == '/') b.pop_back();
    return b;
  }
  // One GET; 404 comes back as kNotFound so that study_instances can tell what it means.
  Result<std::vector<Listed>> get(const std::string& url);
  Result<std::vector<Listed>> pages(const std::function<std::string(int, int)>& url_for) {
    std::vector<Listed> out;
    for (int page = 0; page < kMaxPages; ++page) {
      auto got = get(url_for(o_.page_size, static_cast<int>(out.size())));
      if (!got) return got.error();
      const std::size_t n = got->size();
      for (auto& l : *got) out.push_back(std::move(l));
      if (n < static_cast<std::size_t>(o_.page_size)) return out;
    }
    return make_error(ErrorCode::kProtocol, "QIDO-RS keeps returning full pages: not believed");
  }

  QidoOptions o_;
  std::unique_ptr<CURL, CurlDeleter> curl_;
  std::optional<std::chrono::milliseconds> retry_after_;  // the last failed request's
};

Result<std::vector<Listed>> QidoRepository::get(const std::string& url) {
  if (!curl_) return make_error(ErrorCode::kInternal, "libcurl could not create a handle");
  std::unique_ptr<curl_slist, SlistDeleter> headers(
      curl_slist_append(nullptr, "Accept: application/dicom+json"));
  std::string token;
  retry_after_.reset();
  auto auth = senders::dicomweb::authorization_header(o_.http);
  if (!auth) {
    if (o_.http.token_provider) retry_after_ = o_.http.token_provider->retry_after();
    return make_error(auth.error().code, auth.error().detail);
  }
  if (!auth->empty()) {
    headers.reset(curl_slist_append(headers.release(), auth->c_str()));
    if (o_.http.token_provider) token = auth->substr(senders::dicomweb::kBearerPrefix.size());
  }
  CURL* c = curl_.get();
  curl_easy_reset(c);
  Answer answer;
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
  set(CURLOPT_WRITEFUNCTION, &on_write);
  set(CURLOPT_WRITEDATA, static_cast<void*>(&answer));
  senders::dicomweb::RetryAfterHeader retry_after;
  set(CURLOPT_HEADERFUNCTION, &senders::dicomweb::collect_retry_after);
  set(CURLOPT_HEADERDATA, static_cast<void*>(&retry_after));
  if (rc != CURLE_OK)
    return make_error(ErrorCode::kConfig,
                      std::string("libcurl refused an option: ") + curl_easy_strerror(rc));
  rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(nullptr));
  if (rc != CURLE_OK) {
    if (answer.too_large) return make_error(ErrorCode::kProtocol, "QIDO-RS answer too long");
    const auto v = senders::dicomweb::classify_curl_error(rc);
    return make_error(rc == CURLE_OPERATION_TIMEDOUT ? ErrorCode::kTimeout : ErrorCode::kNetwork,
                      "QIDO-RS: " + v.message);
  }
  if (status == 429 || status == 503)
    retry_after_ = retry_after.delay(std::chrono::system_clock::now());
  if (status == 401 && o_.http.token_provider) o_.http.token_provider->invalidate(token);
  if (status == 404) return make_error(ErrorCode::kNotFound, "QIDO-RS answered HTTP 404");
  auto page = parse_qido(static_cast<int>(status), answer.body);
  if (!page) return page.error();
  return std::move(page->entries);
}

}  // namespace

std::unique_ptr<Repository> make_qido_repository(QidoOptions options) {
  return std::make_unique<QidoRepository>(std::move(options));
}

}  // namespace dirgw::verify
