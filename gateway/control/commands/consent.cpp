// dirgw consent grant / withdraw / show / import and dirgw mrn import. Patient values never
// reach a log line: the patient is a keyed HMAC tag (log::phi_tag) in logs and the audit trail.
#include "control/commands/commands.h"
#include "control/commands/json_helpers.h"
#include "log/log.h"

namespace dirgw::control::commands {

namespace {

Result<catalog::PatientKey> parse_patient(const Context& ctx, const std::string& text) {
  return policy::parse_patient(text, ctx.config.policy.health_number_issuer);
}

// Records one change through the consent service (which audits it and wakes the forwarders).
Result<catalog::ConsentEffect> apply(const Context& ctx, const Peer& peer, const std::string& scope,
                                     const std::vector<catalog::PatientKey>& keys, bool grant,
                                     const std::string& source, const std::string& reference) {
  policy::ConsentService::Change c;
  c.identifiers = keys;
  c.grant = grant;
  c.scope = scope;
  c.source = source;
  c.operator_name = who(peer);
  c.actor = actor_of(peer);
  c.reference = reference;
  return ctx.consent_service.record(c);
}

json consent_show(const Context& ctx, const json& request, const Peer& peer) {
  auto key = parse_patient(ctx, request.value("patient", ""));
  if (!key) return error_reply(key.error().detail);
  auto pc = ctx.consent.patient_consent(*key);
  if (!pc) return error_reply(pc.error().to_string());
  log::info("consent shown", {{"patient", log::phi_tag(key->value)}, {"operator", who(peer)}});
  record_audit(ctx, audit::EventType::kPatientDataViewed, actor_of(peer),
               std::string(audit::kSuccess), "", {{"command", "consent show"}},
               log::phi_tag(key->value));
  if (!pc->has_value()) return {{"ok", true}, {"known", false}};
  json ids = json::array(), history = json::array();
  for (const auto& k : (*pc)->identifiers)
    ids.push_back({{"kind", k.kind}, {"issuer", k.issuer}, {"value", k.value}});
  for (const auto& e : (*pc)->history)
    history.push_back({{"at", format_utc_ms(e.at)},
                       {"decision", e.decision},
                       {"scope", e.scope},
                       {"source", e.source},
                       {"operator", e.operator_name},
                       {"reference", e.reference}});
  json state = json::object();
  for (const auto& d : ctx.config.destinations) {
    auto st = ctx.consent.consent_for((*pc)->identifiers, d.name);
    state[d.name] = !st                                        ? "unreadable"
                    : *st == catalog::ConsentState::kGranted   ? "granted"
                    : *st == catalog::ConsentState::kWithdrawn ? "withdrawn"
                    : d.consent_mode == "opt-in"               ? "none (opt-in: held)"
                                                               : "none (opt-out: sent)";
  }
  return {{"ok", true},         {"known", true},  {"identifiers", ids},
          {"history", history}, {"state", state}, {"studies", (*pc)->study_uids}};
}

// One CSV row (line, health_number, mrn_issuer, mrn, decision): its identifiers, or why the row
// is rejected.
Result<std::vector<catalog::PatientKey>> import_row_keys(const Context& ctx, const json& row) {
  const std::string hn = row.value("health_number", ""), mrn = row.value("mrn", ""),
                    mrn_issuer = row.value("mrn_issuer", ""), decision = row.value("decision", "");
  auto reject = [](const std::string& why) { return make_error(ErrorCode::kInvalidArgument, why); };
  if (decision != "grant" && decision != "withdraw")
    return reject("decision must be grant or withdraw");
  if (hn.empty() && mrn.empty()) return reject("neither health_number nor mrn given");
  std::vector<catalog::PatientKey> keys;
  if (!hn.empty()) {
    auto k = parse_patient(ctx, "hn:" + hn);
    if (!k) return reject("health_number: " + k.error().detail);
    keys.push_back(*k);
  }
  if (!mrn.empty()) {
    if (mrn_issuer.empty()) return reject("mrn given without mrn_issuer");
    auto k = parse_patient(ctx, "mrn:" + mrn_issuer + ":" + mrn);
    if (!k) return reject("mrn: " + k.error().detail);
    keys.push_back(*k);
  }
  return keys;
}

json consent_import(const Context& ctx, const json& request, const Peer& peer,
                    const std::string& scope) {
  // The CLI read the CSV; each row: line, health_number, mrn_issuer, mrn, decision.
  json rejected = json::array();
  int accepted = 0, withdrawn = 0, released = 0;
  for (const auto& row : request.value("rows", json::array())) {
    const int line = row.value("line", 0);
    auto keys = import_row_keys(ctx, row);
    if (!keys) {
      rejected.push_back({{"line", line}, {"reason", keys.error().detail}});
      continue;
    }
    auto r = apply(ctx, peer, scope, *keys, row.value("decision", "") == "grant", "csv",
                   request.value("file", "") + ":" + std::to_string(line));
    if (!r) {
      rejected.push_back({{"line", line}, {"reason", r.error().to_string()}});
      continue;
    }
    ++accepted;
    withdrawn += r->studies_withdrawn;
    released += r->studies_released;
  }
  log::info("consent import", {{"accepted", std::to_string(accepted)},
                               {"rejected", std::to_string(rejected.size())},
                               {"operator", who(peer)}});
  record_audit(ctx, audit::EventType::kConsentChanged, actor_of(peer), std::string(audit::kSuccess),
               "",
               {{"source", "csv"},
                {"file", request.value("file", "")},
                {"accepted", accepted},
                {"rejected", rejected.size()}});
  return {{"ok", true},
          {"accepted", accepted},
          {"rejected", rejected},
          {"studies_withdrawn", withdrawn},
          {"studies_released", released}};
}

}  // namespace

json consent(const Context& ctx, const json& request, const Peer& peer) {
  const std::string action = request.value("action", "");
  const std::string scope = request.value("scope", "*");
  if (scope != "*") {
    bool known = false;
    for (const auto& d : ctx.config.destinations) known = known || d.name == scope;
    if (!known) return error_reply("no destination with that name");
  }
  if (action == "grant" || action == "withdraw") {
    auto key = parse_patient(ctx, request.value("patient", ""));
    if (!key) return error_reply(key.error().detail);
    auto r = apply(ctx, peer, scope, {*key}, action == "grant", "cli", "");
    if (!r) return error_reply(r.error().to_string());
    return {{"ok", true},
            {"studies_withdrawn", r->studies_withdrawn},
            {"studies_released", r->studies_released}};
  }
  if (action == "show") return consent_show(ctx, request, peer);
  if (action == "import") return consent_import(ctx, request, peer, scope);
  return error_reply("consent actions: grant, withdraw, show, import");
}

json mrn_import(const Context& ctx, const json& request, const Peer& peer) {
  json rejected = json::array();
  int accepted = 0;
  for (const auto& row : request.value("rows", json::array())) {
    const int line = row.value("line", 0);
    const std::string issuer = row.value("mrn_issuer", ""), mrn = row.value("mrn", ""),
                      hn = row.value("health_number", "");
    auto m = parse_patient(ctx, "mrn:" + issuer + ":" + mrn);
    if (issuer.empty() || !m) {
      rejected.push_back(
          {{"line", line},
           {"reason", issuer.empty() ? "mrn_issuer is empty" : "mrn: " + m.error().detail}});
      continue;
    }
    auto h = parse_patient(ctx, "hn:" + hn);
    if (!h) {
      rejected.push_back({{"line", line}, {"reason", "health_number: " + h.error().detail}});
      continue;
    }
    if (auto r = ctx.consent.put_mrn_health_number(issuer, mrn, hn, "csv"); !r) {
      rejected.push_back({{"line", line}, {"reason", r.error().to_string()}});
      continue;
    }
    ++accepted;
  }
  log::info("MRN to health number table import", {{"accepted", std::to_string(accepted)},
                                                  {"rejected", std::to_string(rejected.size())},
                                                  {"operator", who(peer)}});
  record_audit(ctx, audit::EventType::kOperatorAction, actor_of(peer), std::string(audit::kSuccess),
               "",
               {{"action", "mrn import"}, {"accepted", accepted}, {"rejected", rejected.size()}});
  return {{"ok", true}, {"accepted", accepted}, {"rejected", rejected}};
}

}  // namespace dirgw::control::commands
