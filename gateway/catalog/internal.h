// Inside the catalog only: the rules and record-keeping that several parts share, each run inside
// a transaction that the calling part opened (Database::write). Not for use outside catalog/.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/audit.h"
#include "catalog/database.h"
#include "catalog/lifecycle.h"
#include "catalog/types.h"

namespace dirgw::catalog {

// The audit entry for an object received (or adopted at start, or received again).
audit::Event received_event(const NewInstance& in, nlohmann::json detail);

// The patient (id) any of `ids` belongs to, 0 if none.
std::int64_t find_patient(Connection& db, const std::vector<PatientKey>& ids);
// Latest decision for the patient that applies to `destination` ('*' or the destination).
ConsentState consent_of(Connection& db, std::int64_t patient_id, const std::string& destination);

inline constexpr const char* kAuditColumns =
    "SELECT seq, at, type, actor, outcome, study_uid, sop_instance_uid, destination, patient_ref, "
    "detail, prev_hash, hash FROM audit_events ";
// Reads a row back; a row that cannot be read as an event yields an error with its reason.
Result<audit::Event> audit_row(const sqlite::Statement& st);

// Moves one study/destination row if the life cycle allows it; false when it does not. `reason`
// is for people, `code` (reason::k*) for decisions.
bool transition(Connection& db, const Clock& clock, std::int64_t study_id,
                const std::string& destination, StudyState to, Cause cause,
                const std::string& reason, std::string_view code = "");
// The audit event of a policy decision (issue 15): study_held, study_withdrawn, a
// quarantine_action "quarantine", or study_released when a HELD or QUARANTINED study moves on.
// transition() records it; a change made by other SQL calls it itself.
void audit_decision(Connection& db, const Clock& clock, std::int64_t study_id,
                    const std::string& destination, StudyState from, StudyState to, Cause cause,
                    std::string_view code);
// WITHDRAWN, and its pending deliveries never sent.
bool withdraw(Connection& db, const Clock& clock, std::int64_t study_id,
              const std::string& destination, const std::string& reason);
// The state a sending study moves to from its deliveries' counts, if it moves. SENDING means
// something of the study is on the wire, or its last batch made progress and more is due now;
// a study none of whose instances are in flight after a batch that failed as a whole (the
// circuit may open: nothing may go for minutes) waits in RETRY_WAIT (issue 17, item 8).
std::optional<StudyState> refresh_study_state(Connection& db, const Clock& clock,
                                              std::int64_t study_id, const std::string& destination,
                                              bool progressed = true);
// refresh_study_state, then the audit event of a study that became SENT (study_sent) or
// FAILED (study_failed, or QUARANTINED as repository-unconfirmed: quarantine_if_unconfirmed).
std::optional<StudyState> settle_study(Connection& db, const Clock& clock, std::int64_t study_id,
                                       const std::string& destination, bool progressed);
// A study just become FAILED that has deliveries the repository took but never confirmed
// (deliveries.unconfirmed, schema 19) is QUARANTINED instead, reason::kUnconfirmed, with a
// quarantine_action audit event. True when it was.
bool quarantine_if_unconfirmed(Connection& db, const Clock& clock, std::int64_t study_id,
                               const std::string& destination, Cause cause);
// Seals `e` onto the audit chain and inserts it.
// Removes every catalog row of a study (deliveries, derived objects, findings, identifiers,
// accession, destinations, instances, the study) and the objects no other study uses; returns
// those objects' hashes, received and derived (their files are the caller's). The audit trail
// is not touched.
DeletedObjects delete_study_rows(Connection& db, std::int64_t study_id);
void append_audit(Connection& db, const Clock& clock, audit::Event e);
// A study's delivery event by the daemon itself (sent, failed, verified, re-queued, purged).
void audit_study_event(Connection& db, const Clock& clock, std::int64_t study_id,
                       const std::string& destination, audit::EventType type, std::string outcome,
                       nlohmann::json detail = nlohmann::json::object());

// Withdrawal notifications (docs/policy.md): the body for a patient's studies; waiting ones
// whose answers are all known made due; a follow-up for an instance found held late.
std::string notification_body(Connection& db, std::int64_t patient_id,
                              const std::string& destination, std::int64_t at);
void finish_waiting_notifications(Connection& db, const Clock& clock,
                                  const std::string& destination);
void queue_late_notification(Connection& db, std::int64_t study_id, const std::string& destination,
                             std::int64_t now);

}  // namespace dirgw::catalog
