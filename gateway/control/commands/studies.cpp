// dirgw studies and dirgw study: the catalog's read side, as the CLI shows it.
#include <algorithm>

#include "control/commands/commands.h"
#include "control/commands/json_helpers.h"

namespace dirgw::control::commands {

namespace {

json study_destinations(const catalog::StudyDetail& d) {
  json dests = json::array();
  for (const auto& x : d.destinations)
    dests.push_back({{"destination", x.destination},
                     {"state", x.state},
                     {"reason", x.reason},
                     {"round", x.round},
                     {"updated_at", format_utc_ms(x.updated_at)},
                     {"sent_at", time_or_null(x.sent_at)},
                     {"verified_at", time_or_null(x.verified_at)},
                     {"verify_error", x.verify_error}});
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
  for (const auto& s : *list) {
    json dests = json::object();
    for (const auto& [name, st] : s.destination_states) dests[name] = st;
    arr.push_back({{"study_uid", s.study_uid},
                   {"state", s.state},
                   {"instances", s.instances},
                   {"bytes", s.bytes},
                   {"first_received_at", format_utc_ms(s.first_received_at)},
                   {"last_received_at", format_utc_ms(s.last_received_at)},
                   {"destinations", dests}});
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
          {"destinations", study_destinations(d)},
          {"rounds", study_rounds(d)},
          {"instance_list", study_instances(d)}};
}

}  // namespace dirgw::control::commands
