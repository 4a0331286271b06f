// dirgw purge [--dry-run]: retention now (spool files verified by every destination and past
// retention.keep_after_verified, and below the floor the oldest verified ones), or, with
// dry_run, what would go and why. Never an unverified object (docs/verification.md).
#include "control/commands/commands.h"
#include "control/commands/json_helpers.h"

namespace dirgw::control::commands {

namespace {

// At most this many objects are listed one by one; the totals cover them all.
constexpr std::size_t kListed = 1000;

void add_objects(const std::vector<catalog::PurgeCandidate>& objects, const char* reason,
                 json& list, std::int64_t& count, std::int64_t& bytes) {
  for (const auto& c : objects) {
    ++count;
    bytes += static_cast<std::int64_t>(c.size);
    if (list.size() < kListed)
      list.push_back({{"object", c.sha256},
                      {"size", c.size},
                      {"verified_at", format_utc_ms(c.verified_at)},
                      {"derived_copies", c.derived.size()},
                      {"reason", reason}});
  }
}

// retention.report_days: the finished studies whose catalog rows go (catalog/row_pruner.h).
std::int64_t rows_before(const Context& ctx) {
  return to_epoch_ms(ctx.day_report->now()) -
         static_cast<std::int64_t>(ctx.config.retention.report_days) * 86'400'000;
}

json rows_plan(const Context& ctx) {
  if (ctx.pruner == nullptr || ctx.day_report == nullptr || ctx.config.retention.report_days == 0)
    return nullptr;
  auto studies = ctx.pruner->prunable(rows_before(ctx), static_cast<int>(kListed) + 1);
  if (!studies) return {{"error", studies.error().to_string()}};
  json list = json::array();
  std::int64_t instances = 0;
  for (std::size_t i = 0; i < studies->size() && i < kListed; ++i) {
    const auto& s = (*studies)[i];
    instances += s.instances;
    list.push_back({{"study_uid", s.study_uid},
                    {"instances", s.instances},
                    {"last_received_at", format_utc_ms(s.last_received_at)}});
  }
  return {{"report_days", ctx.config.retention.report_days},
          {"before", format_utc_ms(rows_before(ctx))},
          {"studies", list.size()},
          {"instances", instances},
          {"more", studies->size() > kListed},
          {"list", list}};
}

}  // namespace

json purge(const Context& ctx, const json& request, const Peer& peer) {
  if (ctx.retention == nullptr) return error_reply("retention is not running in this daemon");
  const bool dry_run = request.value("dry_run", false);
  if (dry_run) {
    auto plan = ctx.retention->plan();
    if (!plan) return error_reply(plan.error().to_string());
    json list = json::array();
    std::int64_t count = 0, bytes = 0;
    add_objects(plan->by_age, "age", list, count, bytes);
    add_objects(plan->by_pressure, "disk-pressure", list, count, bytes);
    return {{"ok", true},
            {"dry_run", true},
            {"objects", count},
            {"bytes", bytes},
            {"keep_after_verified_s", ctx.config.retention.keep_after_verified.count() / 1000},
            {"free_bytes", plan->free ? json(*plan->free) : json(nullptr)},
            {"floor_bytes", plan->floor},
            {"list", list},
            {"rows", rows_plan(ctx)}};
  }
  const auto r = ctx.retention->step();
  json rows = nullptr;
  if (ctx.pruner != nullptr && ctx.day_report != nullptr && ctx.config.retention.report_days > 0) {
    auto pruned = ctx.pruner->prune(rows_before(ctx));
    rows = pruned ? json{{"studies", pruned->studies},
                         {"instances", pruned->instances},
                         {"refusals", pruned->refusals}}
                  : json{{"error", pruned.error().to_string()}};
  }
  record_audit(ctx, audit::EventType::kOperatorAction, actor_of(peer), std::string(audit::kSuccess),
               "",
               {{"command", "purge"}, {"objects", r.objects}, {"bytes", r.bytes}, {"rows", rows}});
  return {
      {"ok", true}, {"dry_run", false}, {"objects", r.objects}, {"bytes", r.bytes}, {"rows", rows}};
}

}  // namespace dirgw::control::commands
