#include "policy/consent/hl7_consent.h"

#include "log/log.h"
#include "policy/validate/rules.h"

namespace dirgw::policy {

ConsentHl7Sink::ConsentHl7Sink(const config::Config& config, ConsentService& consent,
                               catalog::ConsentRegistry& registry)
    : config_(config), consent_service_(consent), registry_(registry) {
  consent_.flag_path = config.ingest.hl7.consent_field;
  consent_.grant_values = {config.ingest.hl7.consent_grant_value};
  consent_.withdraw_values = {config.ingest.hl7.consent_withdraw_value};
  links_.health_number_authority = config.policy.health_number_issuer;
}

ingest::Hl7Verdict ConsentHl7Sink::on_message(const hl7::Message& msg, const std::string& peer) {
  using hl7::AckCode;
  using hl7::AckError;
  if (auto h = hl7::check_header(msg); !h)
    return {AckCode::kAR, "message header not acceptable", AckError::kRequiredFieldMissing};
  const std::string actor =
      "hl7:" + msg.sending_application() + "/" + msg.sending_facility() + "@" + peer;
  // MRN -> health number pairs (ADT), for coercion.
  int links = 0;
  for (const auto& l : hl7::extract_health_number_links(msg, links_)) {
    if (l.health_number_authority == "ON" && !valid_ontario_health_number(l.health_number.reveal()))
      continue;
    if (registry_.put_mrn_health_number(l.mrn_authority, l.mrn.reveal(), l.health_number.reveal(),
                                        "hl7"))
      ++links;
  }
  auto events = hl7::extract_consent(msg, consent_);
  if (!events)
    return {AckCode::kAE, "no patient identifier in PID-3", AckError::kRequiredFieldMissing};
  int applied = 0;
  for (const auto& ev : *events) {
    if (ev.action == hl7::ConsentAction::kUnknown) continue;
    std::vector<catalog::PatientKey> keys;
    for (const auto& id : ev.patient_ids) {
      const bool hn = id.assigning_authority == config_.policy.health_number_issuer ||
                      (id.assigning_authority.empty() && id.identifier_type == "JHN");
      if (hn) {
        if (config_.policy.health_number_issuer == "ON" &&
            !valid_ontario_health_number(id.id.reveal()))
          return {AckCode::kAE, "invalid health number in PID-3", AckError::kDataType};
        keys.push_back({"hn", config_.policy.health_number_issuer, id.id.reveal()});
      } else if (!id.assigning_authority.empty()) {
        keys.push_back({"mrn", id.assigning_authority, id.id.reveal()});
      }
    }
    if (keys.empty())
      return {AckCode::kAE, "no usable patient identifier (an issuer is required)",
              AckError::kRequiredFieldMissing};
    ConsentService::Change c;
    c.identifiers = keys;
    c.grant = ev.action == hl7::ConsentAction::kGrant;
    c.source = "hl7";
    c.operator_name = actor;
    c.actor = actor;
    c.reference = ev.control_id + " " + ev.origin;
    c.origin = ev.origin;
    auto r = consent_service_.record(c);
    if (!r)
      return {AckCode::kAE, "consent could not be recorded", AckError::kApplicationInternalError};
    ++applied;
  }
  if (applied == 0 && links == 0 && msg.message_type() != "ADT")
    return {AckCode::kAR, "message type not handled by this gateway",
            AckError::kUnsupportedMessageType};
  return {AckCode::kAA, "", AckError::kApplicationInternalError};
}

}  // namespace dirgw::policy
