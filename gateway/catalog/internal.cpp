#include "catalog/internal.h"

#include <map>
#include <set>

namespace dirgw::catalog {

// The audit entry for an object received (or adopted at start, or received again).
audit::Event received_event(const NewInstance& in, nlohmann::json detail) {
  audit::Event e;
  e.type = audit::EventType::kObjectReceived;
  if (in.calling_ae.empty() && in.peer == "reconciliation")
    e.actor = audit::system_actor();
  else if (in.source.rfind("folder:", 0) == 0)
    e.actor = in.source;
  else
    e.actor = "dicom:" + in.calling_ae + "@" + in.peer;
  e.outcome = audit::kSuccess;
  e.study_uid = in.study_uid;
  e.sop_instance_uid = in.sop_instance_uid;
  e.detail = std::move(detail);
  // Where it came from, as the daily report counts it (dicom:AE, folder:, pull:, hl7:).
  if (!in.source.empty() && e.detail.is_object()) e.detail["source"] = in.source;
  return e;
}

std::int64_t find_patient(sqlite::Connection& db, const std::vector<PatientKey>& ids) {
  for (const auto& k : ids) {
    auto st = db.prepare(
        "SELECT patient_id FROM patient_identifiers WHERE kind = ?1 AND issuer = ?2 AND value = "
        "?3");
    st.bind(1, k.kind).bind(2, k.issuer).bind(3, k.value);
    if (st.step()) return st.int64(0);
  }
  return 0;
}

// Latest decision for the patient that applies to `destination` ('*' or the destination).
ConsentState consent_of(sqlite::Connection& db, std::int64_t patient_id,
                        const std::string& destination) {
  if (patient_id == 0) return ConsentState::kUnknown;
  auto st = db.prepare(
      "SELECT decision FROM consent_events WHERE patient_id = ?1 AND (scope = '*' OR scope = ?2) "
      "ORDER BY at DESC, id DESC LIMIT 1");
  st.bind(1, patient_id).bind(2, destination);
  if (!st.step()) return ConsentState::kUnknown;
  return st.text(0) == "grant" ? ConsentState::kGranted : ConsentState::kWithdrawn;
}

// Reads a row back; a row that cannot be read as an event yields an error with its reason.
Result<audit::Event> audit_row(const sqlite::Statement& st) {
  audit::Event e;
  e.seq = st.int64(0);
  e.at_ms = st.int64(1);
  auto type = audit::parse_event_type(st.text(2));
  if (!type) return make_error(ErrorCode::kCatalog, "unknown event type");
  e.type = *type;
  e.actor = st.text(3);
  e.outcome = st.text(4);
  e.study_uid = st.text(5);
  e.sop_instance_uid = st.text(6);
  e.destination = st.text(7);
  e.patient_ref = st.text(8);
  auto detail = nlohmann::json::parse(st.text(9), nullptr, false);
  if (detail.is_discarded()) return make_error(ErrorCode::kCatalog, "detail is not JSON");
  e.detail = std::move(detail);
  e.prev_hash = st.text(10);
  e.hash = st.text(11);
  return e;
}

bool withdraw(Connection& db, const Clock& clock, std::int64_t study_id,
              const std::string& destination, const std::string& reason) {
  if (!transition(db, clock, study_id, destination, StudyState::kWithdrawn,
                  Cause::kConsentWithdrawn, reason, reason::kConsentWithdrawn))
    return false;
  db.prepare(
        "UPDATE deliveries SET state = 'withdrawn' WHERE destination = ?2 AND state = "
        "'pending' AND instance_id IN (SELECT id FROM instances WHERE study_id = ?1)")
      .bind(1, study_id)
      .bind(2, destination)
      .run();
  return true;
}

std::optional<StudyState> refresh_study_state(Connection& db, const Clock& clock,
                                              std::int64_t study_id, const std::string& destination,
                                              bool progressed) {
  const std::int64_t now = to_epoch_ms(clock.now());
  // The counters are kept by triggers as deliveries change (schema 9): nothing is recounted.
  auto cur = db.prepare(
      "SELECT state, open_count, sending_count, failed_count FROM study_destinations "
      "WHERE study_id = ?1 AND destination = ?2");
  cur.bind(1, study_id).bind(2, destination);
  if (!cur.step()) return std::nullopt;
  const std::string state = cur.text(0);
  // A study that went back to RECEIVING (a late instance) keeps that state.
  if (state != kSending && state != kReady && state != kRetryWait) return std::nullopt;
  const std::int64_t pending = cur.int64(1), failed = cur.int64(3);
  bool due = cur.int64(2) > 0;
  if (!due && pending > 0 && progressed) {
    auto st = db.prepare(
        "SELECT 1 FROM deliveries WHERE study_id = ?1 AND destination = ?2 AND state = 'pending' "
        "AND next_attempt_at <= ?3 LIMIT 1");
    st.bind(1, study_id).bind(2, destination).bind(3, now);
    due = st.step();
  }
  std::string next = state;
  std::string reason;
  if (pending == 0 && failed == 0) {
    next = kSent;
  } else if (pending == 0) {
    next = kFailed;
    reason = std::to_string(failed) + " instance(s) refused by the repository";
  } else if (!due) {
    next = kRetryWait;
  } else {
    next = kSending;
  }
  const auto from = *parse_study_state(state);
  const auto to = *parse_study_state(next);
  if (!transition_allowed(from == StudyState::kReady ? StudyState::kSending : from, to,
                          Cause::kSendOutcome))
    return std::nullopt;
  auto up = db.prepare(
      "UPDATE study_destinations SET state = ?3, reason = ?4, updated_at = ?5, "
      "sent_at = CASE WHEN ?3 = 'SENT' THEN ?5 ELSE sent_at END "
      "WHERE study_id = ?1 AND destination = ?2");
  up.bind(1, study_id).bind(2, destination).bind(3, next).bind(4, reason).bind(5, now).run();
  return to;
}

std::optional<StudyState> settle_study(Connection& db, const Clock& clock, std::int64_t study_id,
                                       const std::string& destination, bool progressed) {
  auto moved = refresh_study_state(db, clock, study_id, destination, progressed);
  if (moved && *moved == StudyState::kSent)
    audit_study_event(db, clock, study_id, destination, audit::EventType::kStudySent,
                      std::string(audit::kSuccess));
  else if (moved && *moved == StudyState::kFailed &&
           !quarantine_if_unconfirmed(db, clock, study_id, destination, Cause::kSendOutcome))
    audit_study_event(db, clock, study_id, destination, audit::EventType::kStudyFailed,
                      audit::failure("refused by the repository"));
  return moved;
}

bool quarantine_if_unconfirmed(Connection& db, const Clock& clock, std::int64_t study_id,
                               const std::string& destination, Cause cause) {
  auto st = db.prepare(
      "SELECT count(*) FROM deliveries WHERE study_id = ?1 AND destination = ?2 AND "
      "state = 'failed' AND unconfirmed = 1");
  st.bind(1, study_id).bind(2, destination);
  const std::int64_t n = st.step() ? st.int64(0) : 0;
  if (n == 0) return false;
  const std::string why = std::to_string(n) +
                          " instance(s) the repository took but never confirmed storing: a person "
                          "must look (dirgw quarantine release sends them again)";
  // transition() records the quarantine_action (audit_decision), with the reason code.
  return transition(db, clock, study_id, destination, StudyState::kQuarantined, cause, why,
                    reason::kUnconfirmed);
}

bool transition(Connection& db, const Clock& clock, std::int64_t study_id,
                const std::string& destination, StudyState to, Cause cause,
                const std::string& reason, std::string_view code) {
  auto cur =
      db.prepare("SELECT state FROM study_destinations WHERE study_id = ?1 AND destination = ?2");
  cur.bind(1, study_id).bind(2, destination);
  if (!cur.step()) return false;
  auto from = parse_study_state(cur.text(0));
  if (!from || !transition_allowed(*from, to, cause)) return false;
  db.prepare(
        "UPDATE study_destinations SET state = ?3, reason = ?4, updated_at = ?5, reason_code = ?6 "
        "WHERE study_id = ?1 AND destination = ?2")
      .bind(1, study_id)
      .bind(2, destination)
      .bind(3, to_string(to))
      .bind(4, reason)
      .bind(5, to_epoch_ms(clock.now()))
      .bind(6, code)
      .run();
  audit_decision(db, clock, study_id, destination, *from, to, cause, code);
  return true;
}

namespace {

std::string_view cause_name(Cause cause) {
  switch (cause) {
    case Cause::kPolicy:
      return "policy";
    case Cause::kOperator:
      return "operator";
    case Cause::kConsentWithdrawn:
      return "consent";
    case Cause::kNewInstance:
      return "new-instance";
    default:
      return "system";
  }
}

}  // namespace

void audit_decision(Connection& db, const Clock& clock, std::int64_t study_id,
                    const std::string& destination, StudyState from, StudyState to, Cause cause,
                    std::string_view code) {
  const bool was_stopped = from == StudyState::kHeld || from == StudyState::kQuarantined;
  std::optional<audit::EventType> type;
  nlohmann::json detail = {{"cause", cause_name(cause)}, {"reason_code", code}};
  if (to == StudyState::kHeld) {
    type = audit::EventType::kStudyHeld;
  } else if (to == StudyState::kWithdrawn) {
    type = audit::EventType::kStudyWithdrawn;
  } else if (to == StudyState::kQuarantined) {
    type = audit::EventType::kQuarantineAction;
    detail["action"] = "quarantine";
  } else if (was_stopped) {
    type = audit::EventType::kStudyReleased;
    detail["from"] = to_string(from);
  }
  if (type)
    audit_study_event(db, clock, study_id, destination, *type, std::string(audit::kSuccess),
                      std::move(detail));
}

std::string notification_body(Connection& db, std::int64_t patient_id,
                              const std::string& destination, std::int64_t at) {
  // Every instance of the patient's studies that the destination holds or may hold (accepted,
  // or in doubt after a stop mid-request). UIDs only, never the patient.
  auto st = db.prepare(
      "SELECT s.study_uid, i.sop_instance_uid FROM studies s "
      "JOIN instances i ON i.study_id = s.id "
      "JOIN deliveries d ON d.instance_id = i.id AND d.destination = ?2 "
      "WHERE s.id IN (SELECT si.study_id FROM study_identifiers si JOIN patient_identifiers pi "
      "ON pi.kind = si.kind AND pi.issuer = si.issuer AND pi.value = si.value "
      "WHERE pi.patient_id = ?1) AND (d.state IN ('sent', 'verified') OR d.in_doubt = 1) "
      "ORDER BY s.study_uid, i.sop_instance_uid");
  st.bind(1, patient_id).bind(2, destination);
  nlohmann::json uids = nlohmann::json::array();
  nlohmann::json studies = nlohmann::json::array();
  while (st.step()) {
    const std::string study = st.text(0);
    if (uids.empty() || uids.back() != study) {
      uids.push_back(study);
      studies.push_back(
          {{"study_instance_uid", study}, {"sop_instance_uids", nlohmann::json::array()}});
    }
    studies.back()["sop_instance_uids"].push_back(st.text(1));
  }
  nlohmann::json body = {{"event", "consent-withdrawn"},
                         {"at", format_utc_ms(at)},
                         {"destination", destination},
                         {"study_instance_uids", uids},
                         {"studies", studies}};
  return body.dump();
}

void finish_waiting_notifications(Connection& db, const Clock& clock,
                                  const std::string& destination) {
  std::vector<std::pair<std::int64_t, std::int64_t>> ready;  // id, patient
  {
    auto st = db.prepare(
        "SELECT n.id, n.patient_id FROM notifications n WHERE n.destination = ?1 AND n.state = "
        "'waiting' AND NOT EXISTS (SELECT 1 FROM deliveries d JOIN instances i ON i.id = "
        "d.instance_id JOIN study_identifiers si ON si.study_id = i.study_id JOIN "
        "patient_identifiers pi ON pi.kind = si.kind AND pi.issuer = si.issuer AND pi.value = "
        "si.value WHERE pi.patient_id = n.patient_id AND d.destination = ?1 AND d.state = "
        "'sending')");
    st.bind(1, destination);
    while (st.step()) ready.emplace_back(st.int64(0), st.int64(1));
  }
  const std::int64_t now = to_epoch_ms(clock.now());
  for (const auto& [id, patient] : ready)
    db.prepare("UPDATE notifications SET body = ?2, state = 'pending' WHERE id = ?1")
        .bind(1, id)
        .bind(2, notification_body(db, patient, destination, now))
        .run();
}

void queue_late_notification(Connection& db, std::int64_t study_id, const std::string& destination,
                             std::int64_t now) {
  std::vector<std::int64_t> patients;
  {
    auto st = db.prepare(
        "SELECT DISTINCT pi.patient_id FROM study_identifiers si JOIN patient_identifiers pi "
        "ON pi.kind = si.kind AND pi.issuer = si.issuer AND pi.value = si.value "
        "WHERE si.study_id = ?1");
    st.bind(1, study_id);
    while (st.step()) patients.push_back(st.int64(0));
  }
  for (auto patient : patients) {
    // Only where this destination takes notifications (one was queued before), and only when
    // none is still waiting (that one will list the instance).
    auto st = db.prepare(
        "SELECT sum(state = 'waiting'), count(*) FROM notifications WHERE patient_id = ?1 AND "
        "destination = ?2");
    st.bind(1, patient).bind(2, destination);
    st.step();
    if (st.int64(1) == 0 || (!st.is_null(0) && st.int64(0) > 0)) continue;
    db.prepare(
          "INSERT INTO notifications(destination, created_at, body, state, patient_id) "
          "VALUES (?1, ?2, ?3, 'pending', ?4)")
        .bind(1, destination)
        .bind(2, now)
        .bind(3, notification_body(db, patient, destination, now))
        .bind(4, patient)
        .run();
  }
}

void audit_study_event(Connection& db, const Clock& clock, std::int64_t study_id,
                       const std::string& destination, audit::EventType type, std::string outcome,
                       nlohmann::json detail) {
  audit::Event e;
  e.type = type;
  e.actor = audit::system_actor();
  e.outcome = std::move(outcome);
  auto uid = db.prepare("SELECT study_uid FROM studies WHERE id = ?1");
  uid.bind(1, study_id);
  e.study_uid = uid.step() ? uid.text(0) : std::string();
  e.destination = destination;
  e.detail = std::move(detail);
  append_audit(db, clock, std::move(e));
}

DeletedObjects delete_study_rows(Connection& db, std::int64_t study_id) {
  DeletedObjects out;
  auto objs = db.prepare(
      "SELECT DISTINCT i.object_sha256 FROM instances i WHERE i.study_id = ?1 AND NOT EXISTS "
      "(SELECT 1 FROM instances j WHERE j.object_sha256 = i.object_sha256 AND j.study_id != ?1)");
  objs.bind(1, study_id);
  while (objs.step()) out.received.push_back(objs.text(0));
  // A coerced or de-identified copy holds the study's content as much as its original does.
  auto derived = db.prepare(
      "SELECT DISTINCT dob.sha256 FROM derived_objects dob JOIN instances i ON i.id = "
      "dob.instance_id WHERE i.study_id = ?1 AND NOT EXISTS (SELECT 1 FROM derived_objects o "
      "JOIN instances j ON j.id = o.instance_id WHERE o.sha256 = dob.sha256 AND j.study_id != "
      "?1)");
  derived.bind(1, study_id);
  while (derived.step()) out.derived.push_back(derived.text(0));
  for (const char* sql :
       {"DELETE FROM deliveries WHERE instance_id IN (SELECT id FROM instances WHERE study_id = "
        "?1)",
        "DELETE FROM derived_objects WHERE instance_id IN (SELECT id FROM instances WHERE "
        "study_id = ?1)",
        "DELETE FROM policy_findings WHERE study_id = ?1",
        "DELETE FROM study_identifiers WHERE study_id = ?1",
        "DELETE FROM study_accessions WHERE study_id = ?1",
        "DELETE FROM study_destinations WHERE study_id = ?1",
        "DELETE FROM commitment_transactions WHERE study_id = ?1",
        "DELETE FROM deid_reviews WHERE study_id = ?1", "DELETE FROM instances WHERE study_id = ?1",
        "DELETE FROM studies WHERE id = ?1"})
    db.prepare(sql).bind(1, study_id).run();
  for (const auto* list : {&out.received, &out.derived})
    for (const auto& sha : *list)
      db.prepare(
            "DELETE FROM objects WHERE sha256 = ?1 AND NOT EXISTS (SELECT 1 FROM instances WHERE "
            "object_sha256 = ?1) AND NOT EXISTS (SELECT 1 FROM derived_objects WHERE sha256 = "
            "?1)")
          .bind(1, sha)
          .run();
  return out;
}

void append_audit(Connection& db, const Clock& clock, audit::Event e) {
  audit::Anchor prev;
  {
    auto last = db.prepare("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1");
    if (last.step()) prev = audit::Anchor{last.int64(0), last.text(1)};
  }
  if (e.at_ms == 0) e.at_ms = to_epoch_ms(clock.now());
  const audit::Event sealed = audit::seal(std::move(e), prev);
  db.prepare(
        "INSERT INTO audit_events(seq, at, type, actor, outcome, study_uid, sop_instance_uid, "
        "destination, patient_ref, detail, prev_hash, hash) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)")
      .bind(1, sealed.seq)
      .bind(2, sealed.at_ms)
      .bind(3, std::string(audit::event_type_name(sealed.type)))
      .bind(4, sealed.actor)
      .bind(5, sealed.outcome)
      .bind(6, sealed.study_uid)
      .bind(7, sealed.sop_instance_uid)
      .bind(8, sealed.destination)
      .bind(9, sealed.patient_ref)
      .bind(10, audit::canonical_detail(sealed.detail))
      .bind(11, sealed.prev_hash)
      .bind(12, sealed.hash)
      .run();
}

}  // namespace dirgw::catalog
