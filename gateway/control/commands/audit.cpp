// dirgw audit verify / export.
#include "audit/export.h"
#include "control/commands/commands.h"
#include "control/commands/json_helpers.h"
#include "log/log.h"

namespace dirgw::control::commands {

namespace {

json audit_verify(const Context& ctx, const Peer& peer) {
  auto anchor = audit::read_anchor(ctx.config.state_dir / "audit.anchor");
  if (!anchor) return error_reply(anchor.error().to_string());
  auto r = ctx.audit_log.verify_audit(*anchor);
  if (!r) return error_reply(r.error().to_string());
  log::info("audit trail verified", {{"ok", r->ok ? "true" : "false"},
                                     {"entries", std::to_string(r->checked)},
                                     {"operator", who(peer)}});
  json out = {{"ok", true},
              {"intact", r->ok},
              {"checked", r->checked},
              {"anchor", *anchor ? json{{"seq", (*anchor)->seq}} : json(nullptr)},
              {"beyond_anchor", r->beyond_anchor},
              {"reason", r->reason}};
  if (r->first_bad_seq) out["first_bad_seq"] = *r->first_bad_seq;
  if (r->ok && ctx.audit_verified) ctx.audit_verified();
  return out;
}

json audit_export(const Context& ctx, const json& request, const Peer& peer) {
  const std::int64_t since = request.value("since_ms", static_cast<std::int64_t>(0));
  auto events = ctx.audit_log.audit_since(since, 200000);
  if (!events) return error_reply(events.error().to_string());
  std::string xml = audit::export_since(*events, since, ctx.export_context);
  record_audit(ctx, audit::EventType::kAuditExported, actor_of(peer), std::string(audit::kSuccess),
               "", {{"since_ms", since}, {"entries", events->size()}});
  return {{"ok", true}, {"entries", events->size()}, {"xml", xml}};
}

}  // namespace

json audit(const Context& ctx, const json& request, const Peer& peer) {
  const std::string action = request.value("action", "");
  if (action == "verify") return audit_verify(ctx, peer);
  if (action == "export") return audit_export(ctx, request, peer);
  return error_reply("audit actions: verify, export");
}

}  // namespace dirgw::control::commands
