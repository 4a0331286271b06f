// dirgw status's forecasts (issue 15, docs/report.md#forecasts): per destination, when its
// backlog will have drained at the rate of the last kWindow (inside its upload windows), and
// when the spool would reach its floor at the last kWindow's ingest rate if nothing left.
#include "report/forecast.h"
#include "control/commands/commands.h"
#include "control/commands/json_helpers.h"
#include "scheduler/windows.h"

namespace dirgw::control::commands {

namespace {

constexpr std::chrono::minutes kWindow{15};

json instant_or_na(const std::optional<TimePoint>& t) {
  return t ? json(format_utc(*t)) : json("n/a");
}

}  // namespace

void add_forecasts(const Context& ctx, const Result<std::uint64_t>& free, json& status) {
  if (ctx.day_report == nullptr) return;
  const TimePoint now = ctx.day_report->now();
  auto flow = ctx.day_report->recent_flow(to_epoch_ms(now - kWindow));
  if (!flow) return;
  const double seconds = std::chrono::duration<double>(kWindow).count();
  for (std::size_t i = 0; i < ctx.config.destinations.size(); ++i) {
    const auto& d = ctx.config.destinations[i];
    json& row = status["destinations"][i];
    // A HELD study's instances wait for consent, a person or a report, not for the
    // repository: they are shown beside the backlog, not drained with it.
    const std::int64_t held = row.value("held_instances", std::int64_t{0});
    const std::int64_t backlog = row.value("pending_instances", std::int64_t{0}) - held;
    const double rate = static_cast<double>(flow->sent[d.name]) / seconds;
    report::OpenTimes open;
    std::optional<scheduler::WindowSet> windows;
    if (!d.schedule.windows.empty()) {
      if (auto w = scheduler::parse_windows(d.schedule.windows, ctx.config.timezone); w)
        windows = std::move(*w);
    }
    if (windows) {
      open.next_open = [&](TimePoint t) { return windows->next_open(t); };
      open.next_close = [&](TimePoint t) { return windows->next_close(t); };
    }
    row["forecast"] = {{"backlog_instances", backlog},
                       {"held_instances", held},
                       {"rate_per_s", rate},
                       {"drained_at", instant_or_na(report::drained_at(now, backlog, rate, open))}};
  }
  const double ingest = static_cast<double>(flow->ingest_bytes) / seconds;
  status["spool"]["ingest_bytes_per_s"] = ingest;
  status["spool"]["floor_reached_at"] =
      free ? instant_or_na(
                 report::floor_reached_at(now, *free, ctx.config.retention.spool_floor, ingest))
           : json("n/a");
}

}  // namespace dirgw::control::commands
