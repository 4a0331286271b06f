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
  // Quarantine: release (re-run policy from STABLE), delete (drop the study's rows; the
  // objects no other study uses are returned for the spool to remove).
  Result<ActionResult> release_quarantine(const std::string& study_uid);
  Result<ActionResult> delete_quarantined(const std::string& study_uid,
                                          std::vector<std::string>* objects_to_remove);

 private:
  Result<ActionResult> operator_action(const std::string& study_uid, const std::string& destination,
                                       StudyState to, const std::string& reason);
  Database& db_;
};

}  // namespace dirgw::catalog
