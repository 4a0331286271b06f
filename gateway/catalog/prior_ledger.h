// The catalog's priors part (issue 18, docs/priors.md): the durable queue of prior requests
// (from HL7 triggers and `dirgw priors fetch`) and the record of every prior study fetched into
// the local PACS, which is what keeps a prior from being fetched twice.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "catalog/database.h"

namespace dirgw::catalog {

struct PriorRequest {
  std::int64_t id = 0;
  std::string patient_ref;  // keyed HMAC tag
  std::string mrn, mrn_issuer, health_number, health_number_issuer;
  std::string trigger_kind;  // hl7 | operator
  std::string trigger_ref;   // "ORM^O01 MSG00001", "alice"
  std::string actor;         // the audit trail's actor (audit::hl7_actor, audit::user_actor)
  int since_days = 0;
  // The ordered exam, for the body part / procedure rule: procedure codes as SCHEME:CODE (or
  // CODE), the body part an operator named. Neither: the rule does not apply.
  std::vector<std::string> procedures;
  std::string body_part;
  std::string state = "pending";
  int attempts = 0;
  std::int64_t next_try_at = 0;
  std::string last_error;
  int found = 0, fetched = 0;
  std::int64_t created_at = 0, done_at = 0;
};

struct PriorStudy {
  std::string study_uid;
  std::int64_t request_id = 0;
  std::string patient_ref, mrn, mrn_issuer, study_date, modalities;
  std::int64_t instances = 0;
  std::string state;  // stored | in-pacs | skipped
  std::string reason, trigger_ref;
  std::int64_t fetched_at = 0;
};

class PriorLedger {
 public:
  explicit PriorLedger(Database& db) : db_(db) {}

  Result<std::int64_t> add_request(const PriorRequest& request);
  Result<std::optional<PriorRequest>> request(std::int64_t id);
  // Pending requests due at `now`, oldest first.
  Result<std::vector<PriorRequest>> due(std::int64_t now, int limit = 16);
  // The earliest next_try_at of a pending request (nullopt: none pending).
  Result<std::optional<std::int64_t>> next_due();
  Result<void> retry_later(std::int64_t id, std::int64_t next_try_at, const std::string& error);
  Result<void> finish(std::int64_t id, const std::string& state, int found, int fetched,
                      const std::string& error);
  Result<std::optional<PriorStudy>> study(const std::string& study_uid);
  Result<void> record_study(const PriorStudy& study);
  // Recent requests and studies, newest first; mrn empty: every patient.
  Result<std::vector<PriorRequest>> requests(const std::string& mrn, int limit);
  Result<std::vector<PriorStudy>> studies(const std::string& mrn, int limit);

 private:
  Database& db_;
};

}  // namespace dirgw::catalog
