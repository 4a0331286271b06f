// status's verification and retention parts (issue 15): per destination, what was verified,
// what waits, what was sent again or lost, and whether checks can run; the spool's purged and
// verified-but-kept totals. A check that cannot run is a warning, never a silent "verified".
#include "control/commands/commands.h"
#include "control/commands/json_helpers.h"

namespace dirgw::control::commands {

void add_verification(const Context& ctx, const LiveFacts& live, json& status, json& warnings) {
  auto counts = ctx.queries.verification();
  if (!counts) {
    warnings.push_back("verification counts unavailable: " + counts.error().to_string());
    return;
  }
  auto& dests = status["destinations"];
  for (std::size_t i = 0; i < counts->destinations.size() && i < dests.size(); ++i) {
    const auto& c = counts->destinations[i];
    const auto& cfg = ctx.config.destinations[i];
    json v = {{"mode", cfg.verify.mode},
              {"verified_instances", c.verified},
              {"awaiting_instances", c.awaiting},
              {"resent_instances", c.resent},
              {"lost_instances", c.lost},
              {"studies_check_failing", c.failing_studies},
              {"last_check_error", c.last_check_error}};
    if (i < live.verification.size()) {
      const auto& h = live.verification[i].health;
      v["consecutive_check_errors"] = h.consecutive_errors;
      v["last_check_at"] = time_or_null(h.last_check_at);
      if (h.consecutive_errors > 0)
        warnings.push_back("destination " + c.name + ": verification cannot run (" + h.last_error +
                           "): retried every " + std::to_string(cfg.verify.retry.count() / 1000) +
                           "s; studies stay SENT, nothing is assumed verified");
    }
    if (c.lost > 0)
      warnings.push_back("destination " + c.name + ": " + std::to_string(c.lost) +
                         " instance(s) lost by the repository or listed as another SOP Class "
                         "(FAILED; see dirgw studies --state FAILED)");
    dests[i]["verification"] = v;
  }
  status["retention"] = {
      {"keep_after_verified_s", ctx.config.retention.keep_after_verified.count() / 1000},
      {"purged_objects", counts->purged_objects},
      {"purged_bytes", counts->purged_bytes},
      {"verified_kept_objects", counts->verified_kept_objects},
      {"verified_kept_bytes", counts->verified_kept_bytes}};
}

}  // namespace dirgw::control::commands
