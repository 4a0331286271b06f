// The catalog's policy part: studies waiting for a decision (STABLE), the decision with its
// findings and derived objects, and the findings shown for quarantine.
#pragma once

#include <map>
#include <string>

#include "catalog/database.h"
#include "catalog/types.h"

namespace dirgw::catalog {

class PolicyLedger {
 public:
  explicit PolicyLedger(Database& db) : db_(db) {}

  // Studies with a destination row in STABLE, with their instances.
  Result<std::vector<PolicyWork>> policy_work(int limit);
  // Records the decision in one transaction; READY proposals are resolved against consent read
  // in that same transaction. Returns the decisions as committed.
  Result<std::vector<PolicyDecision>> record_policy(std::int64_t study_id,
                                                    const std::vector<PatientKey>& identifiers,
                                                    const std::vector<Finding>& findings,
                                                    const std::vector<PolicyDecision>& decisions,
                                                    const std::vector<DerivedObject>& derived);
  Result<std::vector<Finding>> findings(const std::string& study_uid);
  // send_while_receiving (issue 16): RECEIVING studies with instances not yet checked on their
  // own for any of `destinations` (those that send while receiving), oldest study first.
  Result<std::vector<EarlyWork>> early_work(const std::vector<std::string>& destinations,
                                            int limit);
  // Records an early round in one transaction: the patient's identifiers (so that a withdrawal
  // finds the study from now on), the derived copies, and per destination still RECEIVING the
  // instances cleared to go now, with consent read in this same transaction; held back instead
  // when consent does not allow it, any instance of the round failed, or the study was already
  // held back for that destination.
  Result<EarlyOutcome> record_early(std::int64_t study_id,
                                    const std::vector<PatientKey>& identifiers,
                                    const std::vector<EarlyDecision>& decisions,
                                    const std::vector<DerivedObject>& derived);
  // require_report: HELD 'waiting-report' rows whose study now has its final report, or whose
  // wait (per destination, from the study's first instance) has ended, go back to STABLE.
  Result<ReportHoldRelease> release_report_holds(
      const std::map<std::string, std::int64_t>& max_wait_ms);
  // Of `shas` (derived copies found in spool/derived), those no derived_objects row names: a
  // copy replaced by a later stage's copy, a decision made again, a study deleted. Their objects
  // rows go; they are returned for the caller to remove their files.
  Result<std::vector<std::string>> forget_unreferenced_derived(
      const std::vector<std::string>& shas);

 private:
  Database& db_;
};

}  // namespace dirgw::catalog
