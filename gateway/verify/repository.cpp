#include "verify/repository.h"

#include <curl/curl.h>

#include <functional>

#include "common/uid.h"
#include "senders/dicomweb/get.h"

namespace dirgw::verify {

namespace {

// An answer longer than this is not read (a page of 500 instances is well under 1 MiB).
constexpr std::size_t kMaxAnswer = std::size_t{16} * 1024 * 1024;
// A repository that keeps returning full pages is not believed past this many.
constexpr int kMaxPages = 10000;

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
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
  std::string body;
  bool too_large = false;
  auto got =
      senders::dicomweb::http_get(curl_.get(), o_.http, {url, "application/dicom+json", o_.timeout},
                                  [&](std::string_view bytes, const senders::dicomweb::GetAnswer&) {
                                    if (body.size() + bytes.size() > kMaxAnswer) {
                                      too_large = true;
                                      return false;
                                    }
                                    body.append(bytes);
                                    return true;
                                  });
  retry_after_ = got.retry_after;
  if (too_large) return make_error(ErrorCode::kProtocol, "QIDO-RS answer too long");
  if (!got.transfer) {
    const Error& e = got.transfer.error();
    const bool transport = e.code == ErrorCode::kNetwork || e.code == ErrorCode::kTimeout;
    return make_error(e.code, transport ? "QIDO-RS: " + e.detail : e.detail);
  }
  if (got.status == 404) return make_error(ErrorCode::kNotFound, "QIDO-RS answered HTTP 404");
  auto page = parse_qido(static_cast<int>(got.status), body);
  if (!page) return page.error();
  return std::move(page->entries);
}

}  // namespace

std::unique_ptr<Repository> make_qido_repository(QidoOptions options) {
  return std::make_unique<QidoRepository>(std::move(options));
}

}  // namespace dirgw::verify
