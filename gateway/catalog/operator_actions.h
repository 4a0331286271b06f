// The catalog's operator part: dirgw retry / hold / release and quarantine release / delete,
// each checked against the life cycle.
#pragma once

#include "catalog/database.h"
#include "catalog/types.h"

namespace dirgw::catalog {

class OperatorActions {
 public:
  explicit OperatorActions(Database& db) : db_(db) {}

  // destination empty: every destination.
  Result<ActionResult> retry(const std::string& study_uid, const std::string& destination);
  Result<ActionResult> retry_all_failed(const std::string& destination);
  Result<ActionResult> hold(const std::string& study_uid, const std::string& destination,
                            const std::string& reason);
  Result<ActionResult> release(const std::string& study_uid, const std::string& destination);
  // Marks a study STAT (priority 2, an operator's): it goes before older work and bypasses the
  // upload windows of destinations with stat_bypass. changed: 1, or 0 when it already was.
  Result<ActionResult> prioritize(const std::string& study_uid);
  // Priority 1 for the studies a rule found STAT (policy stage); never lowers a priority.
  Result<void> mark_stat(std::int64_t study_id);
  // Quarantine: release (re-run policy from STABLE), delete (drop the study's rows; the
  // objects no other study uses are returned for the spool to remove).
  Result<ActionResult> release_quarantine(const std::string& study_uid);
  // Release for one de-identifying destination after an operator reviewed the pixel data for
  // burned-in text (schema 29): the burned-in screen is waived for that destination and the
  // instances the study holds now, then policy runs again. Refused (nothing changed) unless the
  // study is QUARANTINED for that destination with reason deid-refused.
  Result<ActionResult> release_reviewed_burned_in(const std::string& study_uid,
                                                  const std::string& destination,
                                                  const std::string& reviewer);
  // The study's rows; `objects_to_remove` gets the files no other study uses (the caller's).
  Result<ActionResult> delete_quarantined(const std::string& study_uid,
                                          DeletedObjects* objects_to_remove);

 private:
  Result<ActionResult> operator_action(const std::string& study_uid, const std::string& destination,
                                       StudyState to, const std::string& reason);
  Database& db_;
};

}  // namespace dirgw::catalog
