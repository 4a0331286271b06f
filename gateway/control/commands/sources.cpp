// dirgw sources: every input that is not a listener, with when it last looked, what it took and
// what it refused (issue 12: watched folders, HL7 reports, and PACS polled with C-FIND / C-MOVE).
#include <algorithm>

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
// superseded, expired (waited beyond max_waiting / max_waiting_age); with the oldest of each.
json reports_json(const std::optional<std::vector<catalog::ReportCounts>>& counts) {
  if (!counts) return nullptr;
  json out = json::object();
  for (const char* state : {"waiting", "held", "refused", "done", "superseded", "expired"})
    out[state] = {{"count", 0}, {"oldest_at", nullptr}};
  for (const auto& c : *counts)
    out[c.state] = {{"count", c.count}, {"oldest_at", time_or_null(c.oldest_at)}};
  return out;
}

json pulls_json(const std::vector<ingest::pull::PullStatus>& pulls) {
  json out = json::array();
  for (const auto& p : pulls) {
    json incomplete = json::array();
    for (const auto& i : p.incomplete)
      incomplete.push_back({{"study_uid", i.study_uid},
                            {"held", i.held},
                            {"reported", i.reported >= 0 ? json(i.reported) : json(nullptr)},
                            {"pulls", i.pulls},
                            {"next_try_at", time_or_null(i.next_try_at)},
                            {"last_error", i.last_error}});
    out.push_back({{"kind", "pull"},
                   {"name", p.name},
                   {"pacs", p.pacs},
                   {"last_poll_at", time_or_null(p.last_poll_at)},
                   {"last_ok_at", time_or_null(p.last_ok_at)},
                   {"next_poll_at", time_or_null(p.next_poll_at)},
                   {"studies_complete", p.studies_complete},
                   {"studies_incomplete", p.studies_incomplete},
                   {"studies_gone", p.studies_gone},
                   {"studies_skipped", p.studies_skipped},
                   {"studies_pulled", p.studies_pulled},
                   {"objects_stored", p.objects_stored},
                   {"objects_duplicate", p.objects_duplicate},
                   {"rejected", p.rejected},
                   {"last_error", p.last_error},
                   {"incomplete", incomplete}});
  }
  return out;
}

// dirgw reports: the newest HL7 reports, one row each, so that a report an interface engine
// asks about can be found by its control ID: its state, status, the reason it waits or was not
// taken, and the study it became part of. No patient value (no accession, no text).
json reports(const Context& ctx, const json& request) {
  if (ctx.report_ledger == nullptr)
    return error_reply("HL7 reports are off here (ingest.hl7.reports.enabled)");
  const std::string state = request.value("state", "");
  static const std::vector<std::string> kStates = {"waiting", "held",       "refused",
                                                   "done",    "superseded", "expired"};
  if (!state.empty() && std::find(kStates.begin(), kStates.end(), state) == kStates.end())
    return error_reply("state must be waiting, held, refused, done, superseded or expired, not '" +
                       state.substr(0, 32) + "'");
  const int limit = std::clamp(request.value("limit", 50), 1, 1000);
  auto rows = ctx.report_ledger->recent(state, limit);
  if (!rows) return error_reply("catalog error: " + rows.error().to_string());
  json out = json::array();
  for (const auto& r : *rows) {
    // "MSH-3/MSH-4/MSH-10", then the order of linked exams and a reused control ID's digest.
    std::string key = r.message_key, order = "1";
    if (const auto mark = key.find('\x1f'); mark != std::string::npos) {  // "\x1fobr<n>"
      const auto hash = key.find('#', mark);
      const std::string tail = key.substr(mark, hash == std::string::npos ? hash : hash - mark);
      order = tail.size() > 4 ? tail.substr(4) : "?";
      key.erase(mark, tail.size());
    }
    for (char& c : key)  // shown on a terminal: nothing it would act on
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    out.push_back({{"id", r.id},
                   {"message", key},
                   {"order", order},
                   {"status", r.status},
                   {"state", r.state},
                   {"reason", r.reason},
                   {"received_at", time_or_null(r.received_at)},
                   {"study_uid", r.study_uid},
                   {"sop_instance_uid", r.sop_instance_uid},
                   {"version", r.version}});
  }
  return {{"ok", true}, {"reports", out}};
}

json sources(const Context& ctx) {
  const LiveFacts live = ctx.live();
  return {{"ok", true},
          {"folders", folders_json(live.folders)},
          {"hl7_reports", reports_json(live.hl7_reports)},
          {"hl7_reports_answered",
           live.hl7_reports ? json{{"AE", live.hl7_reports_ae}, {"AR", live.hl7_reports_ar}}
                            : json(nullptr)},
          {"pulls", pulls_json(live.pulls)}};
}

}  // namespace dirgw::control::commands
