#include "control/commands/commands.h"
#include "control/commands/json_helpers.h"

namespace dirgw::control::commands {

json dispatch(const Context& ctx, const json& request, const Peer& peer) {
  const std::string cmd = request.value("cmd", "");
  if (cmd == "status") return status(ctx);
  if (cmd == "sources") return sources(ctx);
  if (cmd == "reports") return reports(ctx, request);
  if (cmd == "studies") return studies(ctx, request);
  if (cmd == "study") return study(ctx, request);
  if (cmd == "retry" || cmd == "hold" || cmd == "release" || cmd == "prioritize")
    return study_action(ctx, cmd, request, peer);
  if (cmd == "consent") return consent(ctx, request, peer);
  if (cmd == "audit") return audit(ctx, request, peer);
  if (cmd == "quarantine") return quarantine(ctx, request, peer);
  if (cmd == "mrn_import") return mrn_import(ctx, request, peer);
  if (cmd == "purge") return purge(ctx, request, peer);
  if (cmd == "priors") return priors(ctx, request, peer);
  if (cmd == "report") return report(ctx, request, peer);
  if (cmd == "ping") return {{"ok", true}};
  return error_reply("unknown command '" + cmd.substr(0, 32) + "'");
}

json handle(const Context& ctx, const json& request, const Peer& peer, const Accounts& accounts) {
  if (!authorized(peer, accounts))
    return error_reply("permission denied: run as root or as a member of the dirgw group");
  return dispatch(ctx, request, peer);
}

}  // namespace dirgw::control::commands
