#include "verify/service.h"

#include "log/log.h"
#include "scheduler/scheduler.h"

namespace dirgw::verify {

namespace {
constexpr std::chrono::milliseconds kCommitLinger{5000};
}  // namespace

Service::Service(const config::Config& config, catalog::Catalog& catalog,
                 const ingest::Spool& spool, const Clock& clock, metrics::Registry* registry,
                 const std::vector<std::shared_ptr<senders::TokenProvider>>& tokens,
                 std::function<void()> on_requeued)
    : config_(config) {
  std::vector<std::string> names;
  for (const auto& d : config.destinations) names.push_back(d.name);
  if (registry != nullptr) metrics_ = std::make_unique<VerifyMetrics>(*registry, names);
  inbox_ = std::make_unique<CommitmentInbox>(config, catalog.verify, metrics_.get(), on_requeued);
  for (std::size_t i = 0; i < config.destinations.size(); ++i) {
    const auto& d = config.destinations[i];
    if (!d.verify.enabled()) continue;
    if (d.verify.mode == "storage-commitment") {
      // The association waits this long for a report on it; one the destination sends later,
      // on an association of its own, reaches the inbox through the SCP.
      const auto linger = std::min<std::chrono::milliseconds>(d.verify.timeout, kCommitLinger);
      committers_.push_back(make_dimse_committer(scheduler::dimse_options(d), *inbox_, linger));
      verifiers_.push_back(
          std::make_unique<Verifier>(d, catalog.verify, *committers_.back(), *inbox_, clock,
                                     metrics_ ? metrics_->destination(d.name) : nullptr));
      continue;
    }
    QidoOptions o;
    o.http = scheduler::stow_options(d);
    if (i < tokens.size()) o.http.token_provider = tokens[i];
    o.page_size = d.verify.page_size;
    o.timeout = d.verify.timeout;
    repositories_.push_back(make_qido_repository(std::move(o)));
    verifiers_.push_back(std::make_unique<Verifier>(
        d, catalog.verify, *repositories_.back(), clock,
        metrics_ ? metrics_->destination(d.name) : nullptr, on_requeued));
  }
  retention_ = std::make_unique<Retention>(config.retention, catalog.verify, spool, clock,
                                           metrics_ ? &metrics_->retention() : nullptr);
}

Service::~Service() { stop(); }

void Service::start() { thread_ = std::thread(&Service::loop, this); }

void Service::stop() {
  wakeup_.stop();
  if (thread_.joinable()) thread_.join();
}

std::vector<VerificationStatus> Service::status() const {
  std::vector<VerificationStatus> out;
  for (const auto& d : config_.destinations) {
    VerificationStatus s{d.name, d.verify.mode, {}};
    for (const auto& v : verifiers_)
      if (v->name() == d.name) s.health = v->health();
    out.push_back(std::move(s));
  }
  return out;
}

void Service::loop() {
  do {
    std::optional<TimePoint> next;
    auto sooner = [&next](const std::optional<TimePoint>& t) {
      if (t && (!next || *t < *next)) next = t;
    };
    for (auto& v : verifiers_) sooner(v->step().next);
    sooner(retention_->step().next);
    if (!wakeup_.wait(next)) return;
  } while (true);
}

}  // namespace dirgw::verify
