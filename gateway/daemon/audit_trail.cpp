#include "daemon/audit_trail.h"

#include <unistd.h>

#include "common/crypto.h"
#include "common/files.h"
#include "log/log.h"

namespace dirgw::daemon {

audit::ExportContext export_context(const config::Config& config) {
  audit::ExportContext ctx;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  ctx.audit_source_id = std::string("dirgw@") + host;
  ctx.enterprise_site_id = config.facility_id;
  ctx.local_user_id = config.ingest.dicom.ae_title;
  ctx.local_host = host;
  for (const auto& d : config.destinations)
    ctx.destination_hosts[d.name] = audit::host_of_url(d.url);
  return ctx;
}

void AuditTrail::record(audit::Event event) {
  if (auto r = log_.audit(std::move(event)); !r)
    log::error("cannot write the audit trail", {{"error", r.error().to_string()}});
  else if (forwarder_ != nullptr)
    forwarder_->wake();
}

void AuditTrail::record(audit::EventType type, std::string outcome, nlohmann::json detail) {
  audit::Event e;
  e.type = type;
  e.actor = audit::system_actor();
  e.outcome = std::move(outcome);
  e.detail = std::move(detail);
  record(std::move(e));
}

void AuditTrail::write_anchor() {
  // A trail found broken keeps its old anchor: overwriting it would hide what was removed.
  if (!broken_.empty()) return;
  auto head = log_.audit_head();
  if (!head) return;
  if (auto r = audit::write_anchor(config_.state_dir / "audit.anchor", *head); !r)
    log::error("cannot write the audit anchor", {{"error", r.error().to_string()}});
}

void AuditTrail::check_at_start() {
  // Before anything is appended: is the trail as the last anchor left it? From the anchor on
  // only: start-up stays flat however long the trail (docs/audit.md, the anchor).
  auto anchor = audit::read_anchor(config_.state_dir / "audit.anchor");
  if (anchor) {
    // No anchor file yet (a first start): the whole trail, which is then short.
    auto v = *anchor ? log_.verify_audit_from_anchor(**anchor) : log_.verify_audit(std::nullopt);
    if (v && !v->ok) {
      broken_ = v->reason;
      log::error("the audit trail does not verify: its anchor is kept and status warns",
                 {{"first_bad_seq", v->first_bad_seq ? std::to_string(*v->first_bad_seq) : "-"},
                  {"reason", v->reason}});
    }
  }
  auto text = read_small_file(config_.source, 1 << 20);
  const std::string hash = text ? sha256_hex(*text) : "";
  const auto mark = config_.state_dir / "config.sha256";
  auto previous = read_small_file(mark, 256);
  if (previous && *previous != hash) {
    record(audit::EventType::kConfigChanged, std::string(audit::kSuccess),
           {{"file", config_.source.string()}, {"previous_sha256", *previous}, {"sha256", hash}});
  }
  if (!previous || *previous != hash) (void)write_file_durably(mark, hash, 0640);
  record(audit::EventType::kStarted, std::string(audit::kSuccess),
         {{"version", DIRGW_VERSION}, {"config_sha256", hash}});
}

}  // namespace dirgw::daemon
