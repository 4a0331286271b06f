// What the priors worker asks the regional repository, behind an interface so that the worker's
// decisions can be tested with a fake. The DICOMweb implementation carries bytes with libcurl, with
// the repository's TLS set-up (senders/dicomweb/curl_tls) and credentials (static bearer token or
// OAuth2, senders/dicomweb/http.h); search.h and multipart.h read them.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "priors/multipart.h"
#include "priors/search.h"
#include "senders/sender.h"

namespace dirgw::priors {

class Repository {
 public:
  virtual ~Repository() = default;
  // QIDO-RS: the patient's studies on or after since_date (YYYYMMDD).
  virtual Result<std::vector<FoundStudy>> search(const std::string& health_number,
                                                 const std::string& since_date) = 0;
  // WADO-RS: the study's instances as a multipart/related stream, part by part to `handler`.
  // kNotFound when the repository does not hold the study (any more).
  virtual Result<void> retrieve_study(const std::string& study_uid,
                                      MultipartParser::Handler handler) = 0;
};

struct RepositoryOptions {
  senders::StowRsOptions http;  // base_url, TLS, token
  std::chrono::milliseconds timeout{300000};
  int search_limit = 1000;
};

std::unique_ptr<Repository> make_dicomweb_repository(RepositoryOptions options);

}  // namespace dirgw::priors
