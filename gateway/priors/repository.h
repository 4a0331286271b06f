// What the priors worker asks the regional repository, behind an interface so that the worker's
// decisions can be tested with a fake. The DICOMweb implementation carries bytes with libcurl
// through the GET that verification shares (senders/dicomweb/get.h: the repository's TLS set-up
// and credentials, static bearer token or OAuth2); search.h and multipart.h read them.
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
  // QIDO-RS: the Body Part Examined values of the study's series (for the body part rule).
  virtual Result<std::vector<std::string>> series_body_parts(const std::string& study_uid) = 0;
  // WADO-RS: the study's instances as a multipart/related stream, part by part to `handler`.
  // kNotFound when the repository does not hold the study (any more).
  virtual Result<void> retrieve_study(const std::string& study_uid,
                                      MultipartParser::Handler handler) = 0;
};

struct RepositoryOptions {
  senders::StowRsOptions http;  // base_url, TLS, token
  std::chrono::milliseconds timeout{300000};
  int search_limit = 1000;
  bool relevance_fields = false;  // the search asks for what the body part / procedure rule reads
};

std::unique_ptr<Repository> make_dicomweb_repository(RepositoryOptions options);

}  // namespace dirgw::priors
