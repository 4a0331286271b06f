// What the verifier asks a repository, behind an interface so the verifier's decisions can be
// tested with a fake. The QIDO-RS implementation carries bytes with libcurl, with the
// destination's TLS set-up (senders/dicomweb/curl_tls) and credentials (static bearer token or
// OAuth2, senders/dicomweb/http.h), and reads them with qido.h.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "senders/sender.h"
#include "verify/qido.h"

namespace dirgw::verify {

class Repository {
 public:
  virtual ~Repository() = default;
  // Every instance the repository lists in the study (every series, every page). An unknown
  // study is an empty list; an error means the question could not be answered.
  virtual Result<std::vector<Listed>> study_instances(const std::string& study_uid) = 0;
  // The instance with this SOP Instance UID, wherever the repository keeps it (empty: none).
  virtual Result<std::vector<Listed>> find_instance(const std::string& sop_instance_uid) = 0;
  // After a question that could not be answered: the repository's Retry-After (429/503), or
  // the token endpoint's, if it gave one. The verifier leaves the repository alone that long.
  virtual std::optional<std::chrono::milliseconds> retry_after() const { return std::nullopt; }
};

struct QidoOptions {
  senders::StowRsOptions http;  // base_url, TLS, token: the destination's
  int page_size = 500;
  std::chrono::milliseconds timeout{30000};  // one QIDO-RS request
};

std::unique_ptr<Repository> make_qido_repository(QidoOptions options);

}  // namespace dirgw::verify
