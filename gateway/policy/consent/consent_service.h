// Consent's home: one service that records a consent change, audits it and wakes the
// forwarders, used by the CLI (grant, withdraw, CSV import) and HL7 alike, so that every path
// behaves the same. The registry itself is the catalog's ConsentRegistry.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "audit/audit.h"
#include "catalog/consent_registry.h"
#include "common/result.h"
#include "config/config.h"

namespace dirgw::policy {

// "hn:1234567897", "hn:ON:1234567897", "mrn:LGH-MRN:MRN0001234": a patient identifier typed by
// an operator or read from a CSV row. An Ontario health number must pass its check digit.
Result<catalog::PatientKey> parse_patient(const std::string& text,
                                          const std::string& health_number_issuer);

class ConsentService {
 public:
  using AuditSink = std::function<void(audit::Event)>;
  ConsentService(const config::Config& config, catalog::ConsentRegistry& registry, AuditSink audit,
                 std::function<void()> work_available)
      : config_(config),
        registry_(registry),
        audit_(std::move(audit)),
        work_available_(std::move(work_available)) {}

  struct Change {
    std::vector<catalog::PatientKey> identifiers;
    bool grant = true;
    std::string scope = "*";    // a destination name or "*"
    std::string source;         // cli | csv | hl7
    std::string operator_name;  // shown in the consent history
    std::string actor;          // the audit trail's actor
    std::string reference;      // HL7 control ID, CSV file:line
    std::string origin;         // HL7: which segment said it (PD1, CON)
  };
  // Records the change (a withdrawal waits for requests past their last check, see
  // docs/policy.md), audits it with the patient as a keyed HMAC tag, logs it without patient
  // values, and wakes the forwarders when studies were released or notifications queued.
  Result<catalog::ConsentEffect> record(const Change& change);

 private:
  const config::Config& config_;
  catalog::ConsentRegistry& registry_;
  AuditSink audit_;
  std::function<void()> work_available_;
};

}  // namespace dirgw::policy
