// HL7 v2 messages that speak about consent and patient identity: ADT (consent flag, e.g. PD1-12;
// MRN -> health number links from PID-3) and CON segments. Maps them to consent changes
// (through the ConsentService, like the CLI) with Ontario health-number rules, and says how to
// acknowledge each message (AA / AE / AR), in our words only.
#pragma once

#include <string>

#include "catalog/consent_registry.h"
#include "config/config.h"
#include "ingest/hl7_mllp/hl7.h"
#include "ingest/hl7_mllp/listener.h"
#include "policy/consent/consent_service.h"

namespace dirgw::policy {

class ConsentHl7Sink final : public ingest::Hl7Sink {
 public:
  ConsentHl7Sink(const config::Config& config, ConsentService& consent,
                 catalog::ConsentRegistry& registry);
  ingest::Hl7Verdict on_message(const hl7::Message& msg, const std::string& peer) override;

 private:
  const config::Config& config_;
  ConsentService& consent_service_;
  catalog::ConsentRegistry& registry_;
  hl7::ConsentConfig consent_;
  hl7::LinkConfig links_;
};

}  // namespace dirgw::policy
