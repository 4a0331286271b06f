// dirgw priors fetch PATIENT [--since 5y] [--procedure CODE | --body-part PART] and dirgw priors
// list [PATIENT] (issue 18, docs/priors.md). A fetch records a request in the priors queue, as an
// HL7 order does, and waits (bounded) for the priors worker to finish it. The patient is a keyed
// HMAC tag in logs and in the audit trail; the answers carry study UIDs, dates and modalities,
// never a patient value.
#include <chrono>
#include <thread>

#include "control/commands/commands.h"
#include "control/commands/json_helpers.h"
#include "log/log.h"

namespace dirgw::control::commands {

namespace {

constexpr auto kFetchWait = std::chrono::seconds(120);

// "5y", "18m" (months), "90d" -> days; 0 when not given; -1 when not understood.
int since_days(const std::string& text) {
  if (text.empty()) return 0;
  const char unit = text.back();
  const std::string digits = text.substr(0, text.size() - 1);
  if (digits.empty() || digits.size() > 4 ||
      digits.find_first_not_of("0123456789") != std::string::npos)
    return -1;
  const int n = std::stoi(digits);
  if (n <= 0) return -1;
  if (unit == 'y') return n * 365;
  if (unit == 'm') return n * 30;
  if (unit == 'd') return n;
  return -1;
}

// "mrn:ISSUER:MRN", or a bare MRN under priors.mrn_issuer.
Result<catalog::PatientKey> local_patient(const Context& ctx, const std::string& text) {
  if (text.find(':') == std::string::npos && !text.empty())
    return catalog::PatientKey{"mrn", ctx.config.priors.mrn_issuer, text};
  auto key = policy::parse_patient(text, ctx.config.priors.health_number_issuer);
  if (!key) return key.error();
  if (key->kind != "mrn")
    return make_error(ErrorCode::kInvalidArgument,
                      "priors are stored under the local MRN: give mrn:ISSUER:MRN");
  return key;
}

json request_json(const catalog::PriorRequest& q) {
  return {{"id", q.id},
          {"created", format_utc_ms(q.created_at)},
          {"state", q.state},
          {"trigger", q.trigger_ref},
          {"attempts", q.attempts},
          {"found", q.found},
          {"fetched", q.fetched},
          {"error", q.last_error}};
}

json priors_fetch(const Context& ctx, const json& request, const Peer& peer) {
  auto key = local_patient(ctx, request.value("patient", ""));
  if (!key) return error_reply(key.error().detail);
  const int days = since_days(request.value("since", ""));
  if (days < 0)
    return error_reply("--since must be a number of years, months or days: 5y, 18m, 90d");
  catalog::PriorRequest r;
  const std::string procedure = request.value("procedure", "");
  const std::string body_part = request.value("body_part", "");
  if ((!procedure.empty() || !body_part.empty()) && ctx.config.priors.relevance.empty())
    return error_reply(
        "--procedure and --body-part need a body part / procedure table: "
        "priors.rules.relevance in the configuration");
  if (!procedure.empty() && !config::procedure_code(procedure))
    return error_reply(
        "--procedure must be a procedure code, SCHEME:CODE or CODE (printable, 1-64 characters)");
  if (!body_part.empty() && !config::body_part_value(body_part))
    return error_reply("--body-part must be a Body Part Examined value such as CHEST");
  if (!procedure.empty()) r.procedures.push_back(procedure);
  r.body_part = body_part;
  r.mrn = key->value;
  r.mrn_issuer = key->issuer;
  r.health_number = request.value("health_number", "");
  if (r.health_number.empty()) {
    auto linked = ctx.consent.health_number_for(r.mrn_issuer, r.mrn);
    if (!linked) return error_reply(linked.error().to_string());
    if (!*linked)
      return error_reply(
          "no health number known for this MRN: give --health-number, or load the MRN table");
    r.health_number = **linked;
  }
  r.health_number_issuer = ctx.config.priors.health_number_issuer;
  r.patient_ref = log::phi_tag(r.health_number);
  r.trigger_kind = "operator";
  r.trigger_ref = "operator " + who(peer);
  r.actor = actor_of(peer);
  r.since_days = days;
  auto id = ctx.priors->request(r);
  if (!id) return error_reply(id.error().to_string());
  log::info(
      "priors: fetch asked by an operator",
      {{"request", std::to_string(*id)}, {"patient", r.patient_ref}, {"operator", who(peer)}});
  const auto deadline = std::chrono::steady_clock::now() + kFetchWait;
  for (;;) {
    auto q = ctx.prior_ledger->request(*id);
    if (!q) return error_reply(q.error().to_string());
    if (!*q) return error_reply("the request vanished");
    const bool settled = (*q)->state != "pending" || (*q)->attempts > 0;
    if (settled || std::chrono::steady_clock::now() > deadline) {
      json out = {{"ok", true},           {"request", *id},           {"state", (*q)->state},
                  {"found", (*q)->found}, {"fetched", (*q)->fetched}, {"error", (*q)->last_error}};
      return out;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

json priors_list(const Context& ctx, const json& request, const Peer& peer) {
  std::string mrn;
  const std::string patient = request.value("patient", "");
  if (!patient.empty()) {
    auto key = local_patient(ctx, patient);
    if (!key) return error_reply(key.error().detail);
    mrn = key->value;
    record_audit(ctx, audit::EventType::kPatientDataViewed, actor_of(peer),
                 std::string(audit::kSuccess), "", {{"command", "priors list"}}, log::phi_tag(mrn));
  }
  auto requests = ctx.prior_ledger->requests(mrn, 50);
  if (!requests) return error_reply(requests.error().to_string());
  auto studies = ctx.prior_ledger->studies(mrn, 200);
  if (!studies) return error_reply(studies.error().to_string());
  json rq = json::array(), st = json::array();
  for (const auto& q : *requests) rq.push_back(request_json(q));
  for (const auto& s : *studies)
    st.push_back({{"study_uid", s.study_uid},
                  {"request", s.request_id},
                  {"study_date", s.study_date},
                  {"modalities", s.modalities},
                  {"instances", s.instances},
                  {"state", s.state},
                  {"reason", s.reason},
                  {"trigger", s.trigger_ref},
                  {"fetched", format_utc_ms(s.fetched_at)}});
  return {{"ok", true}, {"requests", rq}, {"studies", st}};
}

}  // namespace

json priors(const Context& ctx, const json& request, const Peer& peer) {
  if (ctx.priors == nullptr || ctx.prior_ledger == nullptr)
    return error_reply("priors are off: set priors.enabled in the configuration");
  const std::string action = request.value("action", "");
  if (action == "fetch") return priors_fetch(ctx, request, peer);
  if (action == "list") return priors_list(ctx, request, peer);
  return error_reply("priors: unknown action '" + action.substr(0, 16) + "'");
}

}  // namespace dirgw::control::commands
