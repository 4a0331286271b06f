// Runs verification and retention (issue 15) on one thread of their own, apart from the
// forwarders: a verifier per destination with `verify: qido`, then a retention round; the thread
// sleeps until the next check or object comes due, or until woken (dirgw purge, start).
// The daemon wires it with three small hooks: the forwarders are woken when instances are
// queued again, the receivers call make_room() before refusing for want of space, and the
// control socket asks for a plan (dirgw purge --dry-run) or a round (dirgw purge).
#pragma once

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "common/clock.h"
#include "config/config.h"
#include "ingest/spool/spool.h"
#include "metrics/metrics.h"
#include "scheduler/wakeup.h"
#include "senders/sender.h"
#include "verify/commitment.h"
#include "verify/metrics.h"
#include "verify/repository.h"
#include "verify/retention.h"
#include "verify/verifier.h"

namespace dirgw::verify {

// One destination's verification, as dirgw status shows it.
struct VerificationStatus {
  std::string destination;
  std::string mode;  // qido | storage-commitment | none
  VerifierHealth health;
};

class Service {
 public:
  // tokens: each destination's OAuth2 token provider (null: none), in configuration order, so
  // that QIDO-RS shares the forwarder's tokens. registry may be null (no metrics).
  Service(const config::Config& config, catalog::Catalog& catalog, const ingest::Spool& spool,
          const Clock& clock, metrics::Registry* registry,
          const std::vector<std::shared_ptr<senders::TokenProvider>>& tokens,
          std::function<void()> on_requeued);
  ~Service();
  void start();
  void stop();
  void wake() { wakeup_.notify(); }
  bool make_room() { return retention_->make_room(); }
  Retention& retention() { return *retention_; }
  // Where storage commitment reports go (the SCP's N-EVENT-REPORT handler; docs/verification.md).
  ingest::CommitmentReceiver& commitment_receiver() { return *inbox_; }
  std::vector<VerificationStatus> status() const;

 private:
  void loop();

  const config::Config& config_;
  std::unique_ptr<VerifyMetrics> metrics_;
  std::vector<std::unique_ptr<Repository>> repositories_;
  std::unique_ptr<CommitmentInbox> inbox_;
  std::vector<std::unique_ptr<Committer>> committers_;
  std::vector<std::unique_ptr<Verifier>> verifiers_;
  std::unique_ptr<Retention> retention_;
  scheduler::Wakeup wakeup_;
  std::thread thread_;
};

}  // namespace dirgw::verify
