// The HL7 hook of priors (issue 18, docs/priors.md): an order (ORM^O01, OMI^O23), and when
// configured a scheduling message (SIU^S12) or an arrival (ADT^A01, ADT^A04), records a prior
// request for its patient before the message goes on, unchanged, to the next sink (orders, reports,
// consent). The patient is the PID-3 repetition of the local MRN; the health number comes from
// PID-3 or, when absent there, from the MRN -> health number table.
#pragma once

#include <string>
#include <vector>

#include "catalog/consent_registry.h"
#include "config/config.h"
#include "ingest/hl7_mllp/listener.h"
#include "priors/service.h"

namespace dirgw::priors {

// Whether the message type triggers a search under this configuration.
bool is_trigger(const config::PriorsConfig& config, const std::string& type,
                const std::string& event);

// The ordered exam's procedure codes, as SCHEME:CODE (CODE without a coding system): OBR-4 of
// each order (ORM^O01, OMI^O23), AIS-3 of each appointment resource (SIU); the alternate code
// (components 4 and 6) too. For the body part / procedure rule (relevance.h).
std::vector<std::string> ordered_procedures(const hl7::Message& msg);

class PriorsHl7Sink final : public ingest::Hl7Sink {
 public:
  PriorsHl7Sink(const config::PriorsConfig& config, Service& service,
                catalog::ConsentRegistry& links, ingest::Hl7Sink& next);
  ingest::Hl7Verdict on_message(const hl7::Message& msg, const std::string& peer) override;

 private:
  const config::PriorsConfig& config_;
  Service& service_;
  catalog::ConsentRegistry& links_;
  ingest::Hl7Sink& next_;
};

}  // namespace dirgw::priors
