#include "priors/repository.h"

#include <curl/curl.h>

#include <optional>

#include "common/uid.h"
#include "senders/dicomweb/get.h"

namespace dirgw::priors {

namespace {

constexpr std::size_t kMaxSearchAnswer = std::size_t{16} * 1024 * 1024;

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};

using senders::dicomweb::GetAnswer;

class DicomwebRepository final : public Repository {
 public:
  explicit DicomwebRepository(RepositoryOptions o) : o_(std::move(o)) {
    curl_global_init(CURL_GLOBAL_DEFAULT);  // reference-counted
    curl_.reset(curl_easy_init());
  }

  Result<std::vector<FoundStudy>> search(const std::string& health_number,
                                         const std::string& since_date) override {
    long status = 0;
    auto body = read(study_search_url(o_.http.base_url, health_number, since_date, o_.search_limit,
                                      o_.relevance_fields),
                     status);
    if (!body) return body.error();
    return parse_study_search(static_cast<int>(status), *body);
  }

  Result<std::vector<std::string>> series_body_parts(const std::string& study_uid) override {
    if (!uid_syntax_ok(study_uid))
      return make_error(ErrorCode::kInvalidArgument, "not a UID: cannot ask for this study");
    long status = 0;
    auto body = read(series_body_part_url(o_.http.base_url, study_uid), status);
    if (!body) return body.error();
    return parse_series_body_parts(static_cast<int>(status), *body);
  }

  Result<void> retrieve_study(const std::string& study_uid,
                              MultipartParser::Handler handler) override;

 private:
  // One GET whose answer is read whole, bounded (a search); the HTTP status into `status`.
  Result<std::string> read(const std::string& url, long& status);
  Result<void> get(const std::string& url, const char* accept,
                   const senders::dicomweb::BodySink& sink, long& status);

  RepositoryOptions o_;
  std::unique_ptr<CURL, CurlDeleter> curl_;
};

Result<void> DicomwebRepository::get(const std::string& url, const char* accept,
                                     const senders::dicomweb::BodySink& sink, long& status) {
  auto got = senders::dicomweb::http_get(curl_.get(), o_.http, {url, accept, o_.timeout}, sink);
  status = got.status;
  if (!got.transfer) {
    const Error& e = got.transfer.error();
    const bool transport = e.code == ErrorCode::kNetwork || e.code == ErrorCode::kTimeout;
    return make_error(e.code, transport ? "DICOMweb: " + e.detail : e.detail);
  }
  return {};
}

Result<std::string> DicomwebRepository::read(const std::string& url, long& status) {
  std::string body;
  bool too_long = false;
  auto r = get(
      url, "application/dicom+json",
      [&](std::string_view bytes, const GetAnswer&) {
        if (body.size() + bytes.size() > kMaxSearchAnswer) {
          too_long = true;
          return false;
        }
        body.append(bytes);
        return true;
      },
      status);
  if (too_long) return make_error(ErrorCode::kProtocol, "answer too long");
  if (!r) return r.error();
  return body;
}

Result<void> DicomwebRepository::retrieve_study(const std::string& study_uid,
                                                MultipartParser::Handler handler) {
  if (!uid_syntax_ok(study_uid))
    return make_error(ErrorCode::kInvalidArgument, "not a UID: cannot retrieve this study");
  std::string base = o_.http.base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  std::optional<MultipartParser> parser;
  std::optional<Error> stopped;  // why the body sink stopped the transfer
  std::size_t dropped = 0;
  long status = 0;
  auto r = get(
      base + "/studies/" + study_uid,
      "multipart/related; type=\"application/dicom\"; transfer-syntax=*",
      [&](std::string_view bytes, const GetAnswer& head) {
        if (head.status != 200) {
          // Only a 200 answer is streamed; anything else is read (bounded) and dropped.
          dropped += bytes.size();
          if (dropped <= kMaxSearchAnswer) return true;
          stopped = Error{ErrorCode::kProtocol, "answer too long"};
          return false;
        }
        if (!parser) {
          const std::string boundary = multipart_boundary(head.content_type);
          if (boundary.empty() ||
              head.content_type.find("multipart/related") == std::string::npos) {
            stopped = Error{ErrorCode::kProtocol, "WADO-RS answer is not multipart/related"};
            return false;
          }
          parser.emplace(boundary, std::move(handler));
        }
        if (auto fed = parser->feed(bytes); !fed) {
          stopped = fed.error();
          return false;
        }
        return true;
      },
      status);
  if (stopped) return *stopped;
  if (!r) return r.error();
  if (status == 404) return make_error(ErrorCode::kNotFound, "the repository lacks the study");
  if (status != 200)
    return make_error(
        status >= 500 || status == 408 || status == 429 ? ErrorCode::kNetwork : ErrorCode::kRefused,
        "WADO-RS answered HTTP " + std::to_string(status));
  if (!parser) return make_error(ErrorCode::kProtocol, "WADO-RS answer has no body");
  return parser->finish();
}

}  // namespace

std::unique_ptr<Repository> make_dicomweb_repository(RepositoryOptions options) {
  return std::make_unique<DicomwebRepository>(std::move(options));
}

}  // namespace dirgw::priors
