// dirgw retry / hold / release / prioritize: operator actions on a study's deliveries, checked
// against the life cycle by the catalog, logged and audited.
#include "control/commands/commands.h"
#include "control/commands/json_helpers.h"
#include "log/log.h"

namespace dirgw::control::commands {

namespace {

bool known_destination(const config::Config& config, const std::string& name) {
  for (const auto& d : config.destinations)
    if (d.name == name) return true;
  return false;
}

}  // namespace

json study_action(const Context& ctx, const std::string& cmd, const json& request,
                  const Peer& peer) {
  const std::string uid = request.value("study_uid", "");
  const std::string destination = request.value("destination", "");
  if (!destination.empty() && !known_destination(ctx.config, destination))
    return error_reply("no destination named '" + destination.substr(0, 32) + "'");
  Result<catalog::ActionResult> r = make_error(ErrorCode::kInvalidArgument, "no study given");
  if (cmd == "retry" && request.value("all_failed", false)) {
    r = ctx.operators.retry_all_failed(destination);
  } else if (uid.empty()) {
    return error_reply("give a study UID" + std::string(cmd == "retry" ? " or --failed" : ""));
  } else if (cmd == "retry") {
    r = ctx.operators.retry(uid, destination);
  } else if (cmd == "prioritize") {
    if (!destination.empty()) return error_reply("prioritize is for every destination");
    r = ctx.operators.prioritize(uid);
  } else if (cmd == "hold") {
    r = ctx.operators.hold(uid, destination, request.value("reason", ""));
  } else {
    r = ctx.operators.release(uid, destination);
  }
  if (!r) return error_reply(r.error().detail);
  log::info("operator action", {{"action", cmd},
                                {"study_uid", uid.empty() ? "(all failed)" : uid},
                                {"destination", destination.empty() ? "(all)" : destination},
                                {"changed", std::to_string(r->changed)}});
  if (r->changed > 0 && ctx.work_available) ctx.work_available();
  record_audit(ctx, audit::EventType::kOperatorAction, actor_of(peer),
               r->changed > 0 || cmd == "prioritize" ? std::string(audit::kSuccess)
                                                     : audit::failure("refused by the life cycle"),
               uid, {{"action", cmd}, {"destination", destination}, {"changed", r->changed}});
  return {{"ok", r->refused.empty() || r->changed > 0},
          {"changed", r->changed},
          {"refused", r->refused},
          {"error", r->changed == 0 && !r->refused.empty() ? r->refused.front() : ""}};
}

}  // namespace dirgw::control::commands
