#include "priors/hl7_trigger.h"

#include <algorithm>
#include <cstdlib>

#include "common/text.h"
#include "log/log.h"

namespace dirgw::priors {

bool is_trigger(const config::PriorsConfig& c, const std::string& type, const std::string& event) {
  if (c.on_orders && ((type == "ORM" && event == "O01") || (type == "OMI" && event == "O23")))
    return true;
  if (c.on_scheduling && type == "SIU" && event == "S12") return true;
  return c.on_arrivals && type == "ADT" && (event == "A01" || event == "A04");
}

std::vector<std::string> ordered_procedures(const hl7::Message& msg) {
  // The Universal Service ID of each OBR (orders), the Universal Service Identifier of each AIS
  // (scheduling): CE/CWE, identifier in component 1 and coding system in 3, an alternate code in
  // 4 and 6.
  std::vector<std::string> out;
  const std::string seg = msg.message_type() == "SIU" ? "AIS" : "OBR";
  const std::string field = seg == "AIS" ? "-3." : "-4.";
  for (std::size_t i = 1; i <= msg.count(seg) && out.size() < 32; ++i) {
    const std::string at = seg + "(" + std::to_string(i) + ")" + field;
    for (const auto& [code, scheme] : {std::pair{"1", "3"}, std::pair{"4", "6"}}) {
      const std::string c(trim_whitespace(msg.get(at + code).value_or("")));
      const std::string s(trim_whitespace(msg.get(at + scheme).value_or("")));
      const std::string entry = s.empty() ? c : s + ":" + c;
      if (!c.empty() && c.size() <= 64 && std::find(out.begin(), out.end(), entry) == out.end())
        out.push_back(entry);
    }
  }
  return out;
}

PriorsHl7Sink::PriorsHl7Sink(const config::PriorsConfig& config, Service& service,
                             catalog::ConsentRegistry& links, ingest::Hl7Sink& next)
    : config_(config), service_(service), links_(links), next_(next) {}

ingest::Hl7Verdict PriorsHl7Sink::on_message(const hl7::Message& msg, const std::string& peer) {
  const std::string type = msg.message_type(), event = msg.trigger_event();
  if (!config_.enabled || !is_trigger(config_, type, event)) return next_.on_message(msg, peer);
  catalog::PriorRequest r;
  for (const auto& id : hl7::patient_identifiers(msg)) {
    const bool mrn = config_.mrn_issuer.empty() ? id.identifier_type == config_.mrn_type
                                                : id.assigning_authority == config_.mrn_issuer;
    const bool hn = id.assigning_authority == config_.health_number_issuer ||
                    (id.assigning_authority.empty() && id.identifier_type == "JHN");
    if (mrn && r.mrn.empty()) {
      r.mrn = id.id.reveal();
      r.mrn_issuer = config_.mrn_issuer.empty() ? id.assigning_authority : config_.mrn_issuer;
    } else if (hn && r.health_number.empty()) {
      r.health_number = id.id.reveal();
      r.health_number_issuer = config_.health_number_issuer;
    }
  }
  if (!r.mrn.empty() && r.health_number.empty()) {
    auto linked = links_.health_number_for(r.mrn_issuer, r.mrn);
    if (linked && *linked) {
      r.health_number = **linked;
      r.health_number_issuer = config_.health_number_issuer;
    }
  }
  if (r.mrn.empty() || r.health_number.empty()) {
    log::warn("priors: no search for this message: no local MRN or no health number",
              {{"control_id", msg.control_id()}, {"type", type + "^" + event}});
    return next_.on_message(msg, peer);
  }
  r.patient_ref = log::phi_tag(r.health_number);
  r.procedures = ordered_procedures(msg);
  r.trigger_kind = "hl7";
  r.trigger_ref = type + "^" + event + " " + msg.control_id();
  const auto colon = peer.rfind(':');
  const std::string host = colon == std::string::npos ? peer : peer.substr(0, colon);
  const int port = colon == std::string::npos ? 0 : std::atoi(peer.c_str() + colon + 1);
  r.actor = audit::hl7_actor(msg.sending_application(), host, port);
  auto id = service_.request(r);
  if (!id) {
    log::warn("priors: request could not be recorded",
              {{"control_id", msg.control_id()}, {"error", id.error().to_string()}});
    return {hl7::AckCode::kAE, "prior request could not be recorded",
            hl7::AckError::kApplicationInternalError};
  }
  log::info("priors: request recorded", {{"control_id", msg.control_id()},
                                         {"request", std::to_string(*id)},
                                         {"patient", r.patient_ref}});
  return next_.on_message(msg, peer);
}

}  // namespace dirgw::priors
