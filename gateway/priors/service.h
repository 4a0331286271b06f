// The priors worker (issue 18, docs/priors.md): one thread that takes prior requests from the
// catalog's durable queue (catalog::PriorLedger), and for each: checks consent, searches the
// repository (QIDO-RS) with the rules, retrieves each chosen study not fetched before (WADO-RS,
// streamed into spool/tmp, pre-scanned like any input), coerces it to the local MRN and stores it
// into the local PACS (C-STORE through the dimse sender). Every search and every fetch is an audit
// event naming the trigger. Failures that may pass are retried with backoff, durably.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "audit/audit.h"
#include "catalog/prior_ledger.h"
#include "common/clock.h"
#include "common/result.h"
#include "config/config.h"
#include "ingest/prescan/prescan.h"
#include "ingest/spool/spool.h"
#include "priors/repository.h"
#include "senders/sender.h"

namespace dirgw::priors {

struct ServiceOptions {
  config::PriorsConfig config;
  std::string facility;    // Source of Previous Values in Original Attributes Sequence
  std::string pacs_label;  // the audit events' destination, e.g. "local-pacs:PACS1"
  ingest::PrescanLimits limits;
};

// What a request found and did, for the CLI and tests.
struct RequestOutcome {
  std::string state;  // done | refused | failed | pending (to be retried)
  int found = 0, fetched = 0, already = 0, skipped = 0;
  std::string error;
};

class Service {
 public:
  using AuditSink = std::function<void(audit::Event)>;
  // Whether the patient's consent is withdrawn (an error: the check could not be made).
  using ConsentCheck = std::function<Result<bool>(const catalog::PriorRequest&)>;

  Service(ServiceOptions options, catalog::PriorLedger& ledger, Repository& repository,
          senders::Sender& pacs, const ingest::Spool& spool, const Clock& clock,
          ConsentCheck consent_withdrawn, AuditSink audit);
  ~Service();

  void start();
  void stop();
  void wake();

  // Records a request durably (then the worker takes it up); returns its id.
  Result<std::int64_t> request(catalog::PriorRequest request);
  // The due requests, one after the other, on the caller's thread; the worker's loop body.
  int step();
  // One request now, on the caller's thread (tests; the worker calls it from step()).
  RequestOutcome run(const catalog::PriorRequest& request);

 private:
  struct Chosen {
    FoundStudy study;
    std::string because;  // the rule that chose it (relevance.h), for the audit trail
  };
  std::optional<std::vector<Chosen>> choose(const catalog::PriorRequest& request,
                                            RequestOutcome& out);
  struct Fetched {
    std::int64_t instances = 0;
    std::string skipped;  // why the study was not stored ("" : stored)
  };
  Result<Fetched> fetch_study(const catalog::PriorRequest& request, const FoundStudy& study);
  Result<std::vector<std::filesystem::path>> retrieve(const std::string& study_uid);
  Result<Fetched> store(const catalog::PriorRequest& request, const FoundStudy& study,
                        const std::vector<std::filesystem::path>& files,
                        std::vector<std::filesystem::path>& temps);
  void audit_event(const catalog::PriorRequest& request, audit::EventType type,
                   const std::string& outcome, const std::string& study_uid, nlohmann::json detail);
  void settle(const catalog::PriorRequest& request, RequestOutcome& out, bool retryable);
  std::string since_date(const catalog::PriorRequest& request) const;
  void loop();

  ServiceOptions o_;
  catalog::PriorLedger& ledger_;
  Repository& repository_;
  senders::Sender& pacs_;
  const ingest::Spool& spool_;
  const Clock& clock_;
  ConsentCheck consent_withdrawn_;
  AuditSink audit_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool woken_ = false;
  std::thread thread_;
};

}  // namespace dirgw::priors
