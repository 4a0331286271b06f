// dirgw sources: every input that is not a listener, with when it last looked, what it took and
// what it refused (issue 12: watched folders and HL7 reports; pull sources join the list later).
#include "control/commands/commands.h"
#include "control/commands/json_helpers.h"

namespace dirgw::control::commands {

json folders_json(const std::vector<ingest::folder::FolderStatus>& folders) {
  json out = json::array();
  for (const auto& f : folders)
    out.push_back({{"kind", "folder"},
                   {"name", f.name},
                   {"path", f.path},
                   {"last_scan_at", time_or_null(f.last_scan_at)},
                   {"next_scan_at", time_or_null(f.next_scan_at)},
                   {"taken", f.units_taken},
                   {"objects_stored", f.objects_stored},
                   {"objects_duplicate", f.objects_duplicate},
                   {"rejected", f.rejected},
                   {"last_error", f.last_error}});
  return out;
}

// HL7 reports by state: waiting (for their images), held (preliminary), refused, done,
// superseded; with the oldest of each.
json reports_json(const std::optional<std::vector<catalog::ReportCounts>>& counts) {
  if (!counts) return nullptr;
  json out = json::object();
  for (const char* state : {"waiting", "held", "refused", "done", "superseded"})
    out[state] = {{"count", 0}, {"oldest_at", nullptr}};
  for (const auto& c : *counts)
    out[c.state] = {{"count", c.count}, {"oldest_at", time_or_null(c.oldest_at)}};
  return out;
}

json sources(const Context& ctx) {
  const LiveFacts live = ctx.live();
  return {{"ok", true},
          {"folders", folders_json(live.folders)},
          {"hl7_reports", reports_json(live.hl7_reports)}};
}

}  // namespace dirgw::control::commands
