// dirgw quarantine list / show / release / delete. A deleted study's objects leave the spool
// through the Spool, which alone removes spool files.
#include "control/commands/commands.h"
#include "control/commands/json_helpers.h"
#include "log/log.h"

namespace dirgw::control::commands {

namespace {

json quarantine_list(const Context& ctx) {
  auto list = ctx.queries.quarantined(1000);
  if (!list) return error_reply(list.error().to_string());
  json arr = json::array();
  for (const auto& s : *list) {
    auto f = ctx.policy.findings(s.study_uid);
    // Without a validation finding (not de-identifiable, an identity conflict, unconfirmed by the
    // repository) the first reason names the destinations: `quarantine show` says why.
    std::string first = f && !f->empty() ? f->front().code : "";
    if (first.empty()) {
      for (const auto& [dest, state] : s.destination_states)
        if (state == "QUARANTINED") first += (first.empty() ? "for " : ", ") + dest;
    }
    arr.push_back({{"study_uid", s.study_uid},
                   {"instances", s.instances},
                   {"last_received_at", format_utc_ms(s.last_received_at)},
                   {"findings", f ? static_cast<int>(f->size()) : -1},
                   {"first_reason", first}});
  }
  return {{"ok", true}, {"studies", arr}};
}

json quarantine_show(const Context& ctx, const std::string& uid) {
  auto f = ctx.policy.findings(uid);
  if (!f) return error_reply(f.error().to_string());
  json arr = json::array();
  for (const auto& x : *f)
    arr.push_back({{"sop_instance_uid", x.sop_instance_uid},
                   {"code", x.code},
                   {"tag", x.tag},
                   {"message", x.message}});
  // Each destination the study is quarantined for, with its reason (our words): what an
  // operator needs to choose between a fix, a release and a --reviewed-burned-in release.
  json dests = json::array();
  auto study = ctx.queries.study(uid);
  if (study && *study)
    for (const auto& d : (*study)->destinations)
      if (d.state == "QUARANTINED")
        dests.push_back({{"destination", d.destination}, {"reason", d.reason}});
  return {{"ok", true}, {"study_uid", uid}, {"findings", arr}, {"destinations", dests}};
}

// With reviewed_burned_in (a destination): the operator looked at the pixel data, and the
// burned-in screen is waived for that destination and the study's instances as they are now.
json quarantine_release(const Context& ctx, const json& request, const std::string& uid,
                        const Peer& peer) {
  const std::string reviewed = request.value("reviewed_burned_in", "");
  auto r = reviewed.empty() ? ctx.operators.release_quarantine(uid)
                            : ctx.operators.release_reviewed_burned_in(uid, reviewed, who(peer));
  if (!r) return error_reply(r.error().detail);
  if (reviewed.empty())
    log::info("quarantine released: policy runs again",
              {{"study_uid", uid}, {"operator", who(peer)}});
  else if (r->changed > 0)
    log::info("quarantine released after a burned-in review: policy runs again",
              {{"study_uid", uid}, {"destination", reviewed}, {"operator", who(peer)}});
  json details = {{"action", "release"}};
  if (!reviewed.empty()) details["reviewed_burned_in"] = reviewed;
  record_audit(ctx, audit::EventType::kQuarantineAction, actor_of(peer),
               r->changed > 0 ? std::string(audit::kSuccess) : audit::failure("not quarantined"),
               uid, details);
  if (ctx.work_available && r->changed > 0) ctx.work_available();
  return {{"ok", r->changed > 0},
          {"changed", r->changed},
          {"refused", r->refused},
          {"error", r->changed == 0 && !r->refused.empty() ? r->refused.front() : ""}};
}

json quarantine_delete(const Context& ctx, const json& request, const std::string& uid,
                       const Peer& peer) {
  if (!request.value("confirmed", false))
    return error_reply("deleting a quarantined study needs confirmation (--yes)");
  catalog::DeletedObjects objects;
  auto r = ctx.operators.delete_quarantined(uid, &objects);
  if (!r) return error_reply(r.error().detail);
  if (r->changed == 0) return error_reply(r->refused.empty() ? "not deleted" : r->refused.front());
  // The rows are gone: an object left behind is only disk space, found again at the next start
  // (a derived copy by the policy stage's sweep).
  for (const auto& sha : objects.received)
    if (auto removed = ctx.spool.remove_object(sha); !removed)
      log::warn("cannot remove a deleted study's object from the spool",
                {{"object", sha}, {"error", removed.error().to_string()}});
  for (const auto& sha : objects.derived)
    if (auto removed = ctx.spool.remove_derived(sha); !removed)
      log::warn("cannot remove a deleted study's derived copy from the spool",
                {{"object", sha}, {"error", removed.error().to_string()}});
  record_audit(ctx, audit::EventType::kQuarantineAction, actor_of(peer),
               std::string(audit::kSuccess), uid,
               {{"action", "delete"},
                {"objects", objects.received.size()},
                {"derived", objects.derived.size()}});
  log::warn("quarantined study deleted", {{"study_uid", uid},
                                          {"operator", who(peer)},
                                          {"objects", std::to_string(objects.received.size())},
                                          {"derived", std::to_string(objects.derived.size())}});
  return {{"ok", true},
          {"changed", 1},
          {"objects_removed", objects.received.size()},
          {"derived_removed", objects.derived.size()}};
}

}  // namespace

json quarantine(const Context& ctx, const json& request, const Peer& peer) {
  const std::string action = request.value("action", "");
  const std::string uid = request.value("study_uid", "");
  if (action == "list") return quarantine_list(ctx);
  if (uid.empty()) return error_reply("give a study UID");
  if (action == "show") return quarantine_show(ctx, uid);
  if (action == "release") return quarantine_release(ctx, request, uid, peer);
  if (action == "delete") return quarantine_delete(ctx, request, uid, peer);
  return error_reply("quarantine actions: list, show, release, delete");
}

}  // namespace dirgw::control::commands
