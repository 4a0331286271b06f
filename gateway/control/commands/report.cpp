// dirgw report --day YYYY-MM-DD [--destination NAME]: the daily reconciliation report for one
// facility day (facility.timezone), computed from the catalog on the read connection
// (docs/report.md). The reply carries the JSON report and its CSV form, so that the CLI prints
// either without a second request. Counts and UIDs only: no patient value, so no
// patient_data_viewed event. With write: the day's files into report.folder instead.
#include "control/commands/commands.h"
#include "control/commands/json_helpers.h"
#include "report/day_report.h"
#include "report/from_audit.h"

namespace dirgw::control::commands {

namespace {

// The trail from the day's start on, page by page.
Result<std::vector<audit::Event>> trail_since(const Context& ctx, std::int64_t from_ms) {
  constexpr int kPage = 10000;
  auto page = ctx.audit_log.audit_since(from_ms, kPage);
  if (!page) return page.error();
  std::vector<audit::Event> events = std::move(*page);
  while (!events.empty() && events.size() % kPage == 0) {
    auto more = ctx.audit_log.audit_after(events.back().seq, kPage);
    if (!more) return more.error();
    if (more->empty()) break;
    events.insert(events.end(), more->begin(), more->end());
  }
  return events;
}

}  // namespace

json report(const Context& ctx, const json& request, const Peer& peer) {
  if (ctx.day_report == nullptr) return error_reply("the daily report is not available here");
  const std::string day_text = request.value("day", "");
  const TimePoint now = ctx.day_report->now();
  auto day = day_text.empty() ? report::day_before(now, ctx.config.timezone)
                              : report::make_day(day_text, ctx.config.timezone);
  if (!day) return error_reply(day.error().detail);
  if (request.value("write", false)) {
    // The day's two files into report.folder now, as the nightly writer would (a day it wrote
    // is written again: the counts of a day change while its instances are still pending).
    if (ctx.nightly == nullptr) return error_reply("no report.folder is configured");
    if (auto w = ctx.nightly->write(*day); !w) return error_reply(w.error().to_string());
    record_audit(ctx, audit::EventType::kOperatorAction, actor_of(peer),
                 std::string(audit::kSuccess), "", {{"command", "report"}, {"day", day->day}});
    return {{"ok", true},
            {"written",
             {report::report_path(ctx.config.report.folder, day->day, "json").string(),
              report::report_path(ctx.config.report.folder, day->day, "csv").string()}}};
  }
  const std::string only = request.value("destination", "");
  if (!only.empty()) {
    bool known = false;
    for (const auto& d : ctx.config.destinations) known = known || d.name == only;
    if (!known) return error_reply("no destination named '" + only.substr(0, 64) + "'");
  }
  Result<catalog::DayCounts> counts = catalog::DayCounts{};
  const bool from_audit = request.value("from_audit", false);
  if (from_audit) {
    auto events = trail_since(ctx, day->from_ms);
    if (!events) return error_reply(events.error().to_string());
    std::vector<std::string> names;
    for (const auto& d : ctx.config.destinations) names.push_back(d.name);
    counts = report::counts_from_audit(*events, day->from_ms, day->to_ms, names);
  } else {
    counts = ctx.day_report->counts(day->from_ms, day->to_ms);
  }
  if (!counts) return error_reply(counts.error().to_string());
  report::Report r{*day, to_epoch_ms(now), std::move(*counts)};
  // The PACS's own count of the day (C-FIND by Study Date; report.pacs), asked now.
  if (ctx.pacs_counts) r.pacs = ctx.pacs_counts(day->day);
  if (!only.empty())
    std::erase_if(r.counts.destinations,
                  [&](const catalog::DestinationDay& d) { return d.destination != only; });
  json rep = report::to_json(r);
  rep["basis"] = from_audit ? "audit" : "catalog";
  return {{"ok", true}, {"report", rep}, {"csv", report::to_csv(r)}};
}

}  // namespace dirgw::control::commands
