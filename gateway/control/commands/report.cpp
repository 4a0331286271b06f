// dirgw report --day YYYY-MM-DD [--destination NAME]: the daily reconciliation report for one
// facility day (facility.timezone), computed from the catalog on the read connection
// (docs/report.md). The reply carries the JSON report and its CSV form, so that the CLI prints
// either without a second request. Counts and UIDs only: no patient value, so no
// patient_data_viewed event.
#include "control/commands/commands.h"
#include "control/commands/json_helpers.h"
#include "report/day_report.h"

namespace dirgw::control::commands {

json report(const Context& ctx, const json& request, const Peer& /*peer*/) {
  if (ctx.day_report == nullptr) return error_reply("the daily report is not available here");
  const std::string day_text = request.value("day", "");
  const TimePoint now = ctx.day_report->now();
  auto day = day_text.empty() ? report::day_before(now, ctx.config.timezone)
                              : report::make_day(day_text, ctx.config.timezone);
  if (!day) return error_reply(day.error().detail);
  const std::string only = request.value("destination", "");
  if (!only.empty()) {
    bool known = false;
    for (const auto& d : ctx.config.destinations) known = known || d.name == only;
    if (!known) return error_reply("no destination named '" + only.substr(0, 64) + "'");
  }
  auto counts = ctx.day_report->counts(day->from_ms, day->to_ms);
  if (!counts) return error_reply(counts.error().to_string());
  report::Report r{*day, to_epoch_ms(now), std::move(*counts)};
  if (!only.empty())
    std::erase_if(r.counts.destinations,
                  [&](const catalog::DestinationDay& d) { return d.destination != only; });
  return {{"ok", true}, {"report", report::to_json(r)}, {"csv", report::to_csv(r)}};
}

}  // namespace dirgw::control::commands
