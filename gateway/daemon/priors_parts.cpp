#include "daemon/priors_parts.h"

#include "scheduler/scheduler.h"
#include "senders/dimse/dimse_sender.h"

namespace dirgw::daemon {

namespace {

// The repository's DICOMweb options: a stow-rs destination's (with its OAuth2 provider), or the
// priors block's own url and auth.
senders::StowRsOptions repository_http(
    const config::Config& config,
    const std::vector<std::shared_ptr<senders::TokenProvider>>& tokens) {
  const auto& p = config.priors;
  for (std::size_t i = 0; i < config.destinations.size(); ++i) {
    if (config.destinations[i].name != p.repository) continue;
    auto o = scheduler::stow_options(config.destinations[i]);
    if (i < tokens.size()) o.token_provider = tokens[i];
    return o;
  }
  config::Destination own;
  own.url = p.url;
  own.auth.ca = p.ca;
  own.auth.client_cert = p.client_cert;
  own.auth.client_key = p.client_key;
  own.auth.bearer_token_file = p.bearer_token_file;
  own.auth.verify_peer = p.verify_peer;
  return scheduler::stow_options(own);
}

}  // namespace

ingest::Hl7Sink& PriorsParts::hook_hl7(const config::Config& config, catalog::Catalog& catalog,
                                       ingest::Hl7Sink& next) {
  hl7 = std::make_unique<priors::PriorsHl7Sink>(config.priors, *service, catalog.consent, next);
  return *hl7;
}

std::unique_ptr<PriorsParts> build_priors(
    const config::Config& config, catalog::Catalog& catalog, const ingest::Spool& spool,
    const Clock& clock, const std::vector<std::shared_ptr<senders::TokenProvider>>& tokens,
    const ingest::PrescanLimits& limits, std::function<void(audit::Event)> audit) {
  const auto& p = config.priors;
  auto parts = std::make_unique<PriorsParts>();
  parts->ledger = std::make_unique<catalog::PriorLedger>(catalog.db());
  priors::RepositoryOptions ro;
  ro.http = repository_http(config, tokens);
  ro.timeout = p.timeout;
  ro.relevance_fields = !p.relevance.empty();  // the body part / procedure rule reads them
  parts->repository = priors::make_dicomweb_repository(std::move(ro));
  senders::DimseOptions d;
  d.host = p.pacs_host;
  d.port = static_cast<std::uint16_t>(p.pacs_port);
  d.called_ae = p.pacs_ae_title;
  d.calling_ae = p.pacs_calling_ae;
  d.codec = senders::transcode::daemon_codec_settings(config.codecs.timeout,
                                                      config.codecs.memory_limit, spool.root());
  d.scratch_dir = spool.root() / "tmp";
  parts->pacs = senders::make_dimse_sender(d);
  priors::ServiceOptions so{p, config.facility_name, "local-pacs:" + p.pacs_ae_title, limits};
  // Never for a patient whose consent is withdrawn: everywhere ("*"), or for the repository.
  const std::string scope = p.repository.empty() ? std::string("priors") : p.repository;
  auto withdrawn = [&catalog, scope](const catalog::PriorRequest& r) -> Result<bool> {
    std::vector<catalog::PatientKey> ids{{"hn", r.health_number_issuer, r.health_number}};
    if (!r.mrn.empty()) ids.push_back({"mrn", r.mrn_issuer, r.mrn});
    auto st = catalog.consent.consent_for(ids, scope);
    if (!st) return st.error();
    return *st == catalog::ConsentState::kWithdrawn;
  };
  parts->service =
      std::make_unique<priors::Service>(so, *parts->ledger, *parts->repository, *parts->pacs, spool,
                                        clock, withdrawn, std::move(audit));
  return parts;
}

}  // namespace dirgw::daemon
