// The daemon's side of priors (issue 18, docs/priors.md): builds the repository client, the local
// PACS's C-STORE sender, the worker and its HL7 hook from the configuration. Kept out of
// application.cpp, which only calls build_priors() and starts/stops what it returns.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "audit/audit.h"
#include "catalog/catalog.h"
#include "catalog/prior_ledger.h"
#include "common/clock.h"
#include "config/config.h"
#include "ingest/hl7_mllp/listener.h"
#include "ingest/prescan/prescan.h"
#include "ingest/spool/spool.h"
#include "priors/hl7_trigger.h"
#include "priors/repository.h"
#include "priors/service.h"
#include "senders/sender.h"

namespace dirgw::daemon {

struct PriorsParts {
  std::unique_ptr<catalog::PriorLedger> ledger;
  std::unique_ptr<priors::Repository> repository;
  std::unique_ptr<senders::Sender> pacs;
  std::unique_ptr<priors::Service> service;
  std::unique_ptr<priors::PriorsHl7Sink> hl7;  // set by hook_hl7()

  // The HL7 entry: a prior request for trigger messages, then `next` (the rest of the chain).
  ingest::Hl7Sink& hook_hl7(const config::Config& config, catalog::Catalog& catalog,
                            ingest::Hl7Sink& next);
};

// tokens: one per destination, in configuration order (OAuth2 providers shared with the senders).
std::unique_ptr<PriorsParts> build_priors(
    const config::Config& config, catalog::Catalog& catalog, const ingest::Spool& spool,
    const Clock& clock, const std::vector<std::shared_ptr<senders::TokenProvider>>& tokens,
    const ingest::PrescanLimits& limits, std::function<void(audit::Event)> audit);

}  // namespace dirgw::daemon
