// The catalog's consent part: the registry (every change kept), what a change does to the
// patient's studies, and the MRN -> health number table used by coercion.
#pragma once

#include "catalog/database.h"
#include "catalog/types.h"

namespace dirgw::catalog {

class ConsentRegistry {
 public:
  explicit ConsentRegistry(Database& db) : db_(db) {}

  // Records a change. A withdrawal first waits at the send gate for requests already past
  // their last check, then stops the patient's unsent studies and queues notifications, so that
  // when it returns no request carrying the patient's instances can start (docs/policy.md).
  Result<ConsentEffect> record_consent(const ConsentChange& change);
  Result<ConsentState> consent_for(const std::vector<PatientKey>& identifiers,
                                   const std::string& destination);
  Result<std::optional<PatientConsent>> patient_consent(const PatientKey& key);

  Result<void> put_mrn_health_number(const std::string& mrn_issuer, const std::string& mrn,
                                     const std::string& health_number, const std::string& source);
  Result<std::optional<std::string>> health_number_for(const std::string& mrn_issuer,
                                                       const std::string& mrn);

 private:
  Database& db_;
};

}  // namespace dirgw::catalog
