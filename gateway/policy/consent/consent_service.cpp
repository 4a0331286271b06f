#include "policy/consent/consent_service.h"

#include "log/log.h"
#include "policy/validate/rules.h"

namespace dirgw::policy {

Result<catalog::PatientKey> parse_patient(const std::string& text,
                                          const std::string& health_number_issuer) {
  std::vector<std::string> parts;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    auto c = text.find(':', pos);
    if (c == std::string::npos) c = text.size();
    parts.push_back(text.substr(pos, c - pos));
    pos = c + 1;
  }
  catalog::PatientKey k;
  if (parts.size() == 2 && parts[0] == "hn") {
    k = {"hn", health_number_issuer, parts[1]};
  } else if (parts.size() == 3 && (parts[0] == "hn" || parts[0] == "mrn")) {
    k = {parts[0], parts[1], parts[2]};
  } else {
    return make_error(ErrorCode::kInvalidArgument,
                      "a patient is hn:NUMBER, hn:ISSUER:NUMBER or mrn:ISSUER:MRN");
  }
  if (k.value.empty() || k.value.size() > 64 || k.issuer.size() > 64)
    return make_error(ErrorCode::kInvalidArgument, "identifier empty or too long");
  for (char ch : k.value + k.issuer)
    if (static_cast<unsigned char>(ch) < 0x20 || ch == '\\' || ch == '^')
      return make_error(ErrorCode::kInvalidArgument,
                        "identifier has control or DICOM delimiter characters");
  if (k.kind == "hn" && k.issuer == "ON" && !valid_ontario_health_number(k.value))
    return make_error(ErrorCode::kInvalidArgument,
                      "not a valid Ontario health number (10 digits, Luhn check digit, optional "
                      "version code)");
  return k;
}

Result<catalog::ConsentEffect> ConsentService::record(const Change& change) {
  catalog::ConsentChange c;
  c.identifiers = change.identifiers;
  c.grant = change.grant;
  c.scope = change.scope;
  c.source = change.source;
  c.operator_name = change.operator_name;
  c.reference = change.reference;
  for (const auto& d : config_.destinations)
    if (!d.withdrawal_notify_url.empty()) c.notify.push_back(d.name);
  auto r = registry_.record_consent(c);
  if (!r) return r;
  const std::string decision = change.grant ? "grant" : "withdraw";
  const std::string patient =
      change.identifiers.empty() ? "" : log::phi_tag(change.identifiers.front().value);
  log::info("consent recorded", {{"decision", decision},
                                 {"patient", patient},
                                 {"scope", change.scope},
                                 {"source", change.source},
                                 {"operator", change.operator_name},
                                 {"studies_withdrawn", std::to_string(r->studies_withdrawn)},
                                 {"studies_released", std::to_string(r->studies_released)}});
  audit::Event e;
  e.type = audit::EventType::kConsentChanged;
  e.actor = change.actor;
  e.outcome = audit::kSuccess;
  e.patient_ref = patient;
  e.detail = {{"decision", decision},
              {"scope", change.scope},
              {"source", change.source},
              {"studies_withdrawn", r->studies_withdrawn},
              {"studies_released", r->studies_released}};
  if (!change.origin.empty()) e.detail["origin"] = change.origin;
  if (audit_) audit_(std::move(e));
  if ((r->studies_released > 0 || r->notifications > 0) && work_available_) work_available_();
  return r;
}

}  // namespace dirgw::policy
