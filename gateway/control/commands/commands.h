// The control socket's commands: one handler per `cmd`, each a function from the request (and
// the caller's credentials) to the reply, and a dispatcher that checks who is asking and picks
// the handler. Reply fields and error texts are the CLI's protocol (tools/dirgw): keep them.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "control/authorize.h"
#include "control/commands/context.h"
#include "control/protocol.h"

namespace dirgw::control::commands {

using nlohmann::json;

json status(const Context& ctx);
// dirgw sources: each watched folder (sources.cpp); status carries the same list.
json sources(const Context& ctx);
json reports(const Context& ctx, const json& request);
json folders_json(const std::vector<ingest::folder::FolderStatus>& folders);
json reports_json(const std::optional<std::vector<catalog::ReportCounts>>& counts);
json pulls_json(const std::vector<ingest::pull::PullStatus>& pulls);
json studies(const Context& ctx, const json& request);
json study(const Context& ctx, const json& request);
// cmd: retry | hold | release | prioritize (STAT: first, and through closed upload windows)
json study_action(const Context& ctx, const std::string& cmd, const json& request,
                  const Peer& peer);
json consent(const Context& ctx, const json& request, const Peer& peer);
json mrn_import(const Context& ctx, const json& request, const Peer& peer);
json audit(const Context& ctx, const json& request, const Peer& peer);
json quarantine(const Context& ctx, const json& request, const Peer& peer);
// dirgw purge [--dry-run]: retention now, or what it would remove (purge.cpp).
json purge(const Context& ctx, const json& request, const Peer& peer);
// dirgw priors fetch PATIENT [--since 5y] | list [PATIENT] (priors.cpp, issue 18).
json priors(const Context& ctx, const json& request, const Peer& peer);
// dirgw report --day D [--destination D]: the daily reconciliation report (report.cpp).
json report(const Context& ctx, const json& request, const Peer& peer);
// status's forecasts: backlog drained, spool at its floor (forecast.cpp).
void add_forecasts(const Context& ctx, const Result<std::uint64_t>& free, json& status);
// status's verification and retention parts and their warnings (verification.cpp).
void add_verification(const Context& ctx, const LiveFacts& live, json& status, json& warnings);

// Maps request["cmd"] to its handler; an unknown command is an error reply.
json dispatch(const Context& ctx, const json& request, const Peer& peer);
// What the control server calls: refuses callers the accounts do not authorize, then
// dispatches.
json handle(const Context& ctx, const json& request, const Peer& peer,
            const Accounts& accounts = system_accounts());

}  // namespace dirgw::control::commands
