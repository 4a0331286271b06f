// dirgw studies and dirgw study: the catalog's read side, as the CLI shows it.
#include <algorithm>
#include <optional>

#include "control/commands/commands.h"
#include "control/commands/json_helpers.h"

namespace dirgw::control::commands {

namespace {

// SCHEDULED is derived, not stored (docs/scheduling.md): a study READY or RETRY_WAIT for a
// destination whose upload windows are closed now waits for the next window, unless it is STAT
// and the destination lets STAT through. Returns when that window opens ("" if none is known).
std::optional<std::string> scheduled(const std::vector<scheduler::ForwarderStatus>& forwarders,
                                     const std::string& destination, const std::string& state,
                                     int priority) {
  if (state != catalog::kReady && state != catalog::kRetryWait) return std::nullopt;
  for (const auto& f : forwarders) {
    if (f.name != destination) continue;
    if (!f.scheduled || f.window_open || (priority > 0 && f.stat_bypass)) return std::nullopt;
    return f.next_open ? format_utc(*f.next_open) : std::string();
  }
  return std::nullopt;
}

std::vector<scheduler::ForwarderStatus> forwarders_of(const Context& ctx) {
  return ctx.live ? ctx.live().forwarders : std::vector<scheduler::ForwarderStatus>();
}

json study_destinations(const catalog::StudyDetail& d,
                        const std::vector<scheduler::ForwarderStatus>& forwarders) {
  json dests = json::array();
  for (const auto& x : d.destinations) {
    json one = {{"destination", x.destination},
                {"state", x.state},
                {"reason", x.reason},
                {"round", x.round},
                {"updated_at", format_utc_ms(x.updated_at)},
                {"sent_at", time_or_null(x.sent_at)},
                {"verified_at", time_or_null(x.verified_at)},
                {"verify_error", x.verify_error},
                {"report", x.report_note}};
    if (auto opens = scheduled(forwarders, x.destination, x.state, d.summary.priority)) {
      one["state"] = "SCHEDULED";
      one["catalog_state"] = x.state;
      one["window_opens_at"] = opens->empty() ? json(nullptr) : json(*opens);
      one["reason"] = "waiting for the upload window" +
                      (opens->empty() ? std::string() : ", which opens " + *opens);
    }
    dests.push_back(std::move(one));
  }
  return dests;
}

json study_rounds(const catalog::StudyDetail& d) {
  json rounds = json::array();
  for (const auto& r : d.rounds)
    rounds.push_back({{"destination", r.destination},
                      {"round", r.round},
                      {"kind", r.round == 1 ? "initial" : "delta"},
                      {"instances", r.instances},
                      {"sent", r.sent},
                      {"failed", r.failed},
                      {"pending", r.pending},
                      {"first_sent_at", time_or_null(r.first_sent_at)},
                      {"last_sent_at", time_or_null(r.last_sent_at)}});
  return rounds;
}

json study_instances(const catalog::StudyDetail& d) {
  json instances = json::array();
  for (const auto& i : d.instances) {
    json del = json::array();
    for (const auto& x : i.deliveries)
      del.push_back({{"destination", x.destination},
                     {"state", x.state},
                     {"attempts", x.attempts},
                     {"round", x.round},
                     {"last_error", x.last_error},
                     {"next_attempt_at", time_or_null(x.next_attempt_at)},
                     {"sent_at", time_or_null(x.sent_at)},
                     {"verified_at", time_or_null(x.verified_at)},
                     {"resends", x.resends}});
    instances.push_back({{"sop_instance_uid", i.sop_instance_uid},
                         {"sop_class_uid", i.sop_class_uid},
                         {"series_uid", i.series_uid},
                         {"modality", i.modality},
                         {"transfer_syntax", i.transfer_syntax},
                         {"size", i.size},
                         {"received_at", format_utc_ms(i.received_at)},
                         {"calling_ae", i.calling_ae},
                         {"source", i.source},
                         {"flags", i.flags},
                         {"object", i.sha256},
                         {"purged", i.purged},
                         {"deliveries", del}});
  }
  return instances;
}

}  // namespace

json studies(const Context& ctx, const json& request) {
  std::string state = request.value("state", "");
  std::string destination = request.value("destination", "");
  int limit = request.value("limit", 100);
  auto list = ctx.queries.studies(state, std::clamp(limit, 1, 10000), destination);
  if (!list) return error_reply(list.error().to_string());
  json arr = json::array();
  const auto forwarders = forwarders_of(ctx);
  for (const auto& s : *list) {
    json dests = json::object();
    json opens_at = json::object();
    for (const auto& [name, st] : s.destination_states) {
      dests[name] = st;
      if (auto opens = scheduled(forwarders, name, st, s.priority)) {
        dests[name] = "SCHEDULED";
        opens_at[name] = opens->empty() ? json(nullptr) : json(*opens);
      }
    }
    json one = {{"study_uid", s.study_uid},
                {"state", s.state},
                {"instances", s.instances},
                {"bytes", s.bytes},
                {"first_received_at", format_utc_ms(s.first_received_at)},
                {"last_received_at", format_utc_ms(s.last_received_at)},
                {"stat", s.priority > 0},
                {"destinations", dests}};
    if (!opens_at.empty()) one["window_opens_at"] = opens_at;
    arr.push_back(std::move(one));
  }
  return {{"ok", true}, {"studies", arr}};
}

json study(const Context& ctx, const json& request) {
  const std::string uid = request.value("study_uid", "");
  auto found = ctx.queries.study(uid);
  if (!found) return error_reply(found.error().to_string());
  if (!found->has_value()) return error_reply("no study with that UID");
  const auto& d = **found;
  return {{"ok", true},
          {"study_uid", d.summary.study_uid},
          {"state", d.summary.state},
          {"instances", d.summary.instances},
          {"bytes", d.summary.bytes},
          {"first_received_at", format_utc_ms(d.summary.first_received_at)},
          {"last_received_at", format_utc_ms(d.summary.last_received_at)},
          {"stat", d.summary.priority > 0},
          {"destinations", study_destinations(d, forwarders_of(ctx))},
          {"rounds", study_rounds(d)},
          {"instance_list", study_instances(d)}};
}

}  // namespace dirgw::control::commands
