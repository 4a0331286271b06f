#include "catalog/operator_actions.h"

#include <map>
#include <set>

#include "catalog/internal.h"

namespace dirgw::catalog {

Result<ActionResult> OperatorActions::operator_action(const std::string& study_uid,
                                                      const std::string& destination, StudyState to,
                                                      const std::string& reason) {
  const std::int64_t now = db_.now_ms();
  return db_.write([&](Connection& db) -> Result<ActionResult> {
    ActionResult r;
    auto rows = db.prepare(
        "SELECT s.id, s.state, sd.destination, sd.state FROM studies s "
        "JOIN study_destinations sd ON sd.study_id = s.id "
        "WHERE s.study_uid = ?1 AND (?2 = '' OR sd.destination = ?2)");
    rows.bind(1, study_uid).bind(2, destination);
    struct Row {
      std::int64_t id;
      std::string ingest_state, destination, state;
    };
    std::vector<Row> found;
    while (rows.step()) found.push_back({rows.int64(0), rows.text(1), rows.text(2), rows.text(3)});
    if (found.empty())
      return make_error(ErrorCode::kNotFound, destination.empty()
                                                  ? "no such study"
                                                  : "no such study for destination " + destination);
    for (const auto& row : found) {
      StudyState target = to;
      // Released while its instances are still arriving: back to RECEIVING, not READY.
      if (to == StudyState::kReady && row.state == "HELD" && row.ingest_state == "RECEIVING")
        target = StudyState::kReceiving;
      if (to == StudyState::kReady && (row.state == "FAILED" || row.state == "RETRY_WAIT")) {
        // Retry: failed deliveries go again, counted afresh (the backoff starts small, the
        // resend limit starts over), and nothing waits for its backoff.
        db.prepare(
              "UPDATE deliveries SET state = 'pending', next_attempt_at = 0, attempts = 0, "
              "resends = 0, first_failure_at = NULL WHERE destination = ?2 AND state IN "
              "('pending', "
              "'failed') AND instance_id IN (SELECT id FROM instances WHERE study_id = ?1)")
            .bind(1, row.id)
            .bind(2, row.destination)
            .run();
      }
      if (to == StudyState::kStable && row.state == "QUARANTINED") {
        // What the repository took but never confirmed goes again, counted afresh (schema 20).
        db.prepare(
              "UPDATE deliveries SET state = 'pending', unconfirmed = 0, attempts = 0, "
              "resends = 0, next_attempt_at = 0, first_failure_at = NULL WHERE destination = ?2 "
              "AND state = 'failed' AND unconfirmed = 1 AND instance_id IN (SELECT id FROM "
              "instances WHERE study_id = ?1)")
            .bind(1, row.id)
            .bind(2, row.destination)
            .run();
      }
      if (transition(db, db_.clock(), row.id, row.destination, target, Cause::kOperator, reason,
                     to == StudyState::kHeld ? reason::kOperator : "")) {
        ++r.changed;
        // require_report: a study let go while waiting for its report goes without it.
        if (row.state == "HELD" && to != StudyState::kHeld)
          db.prepare(
                "UPDATE study_destinations SET report_note = 'released by an operator without "
                "report' WHERE study_id = ?1 AND destination = ?2 AND report_note = 'waiting for "
                "report'")
              .bind(1, row.id)
              .bind(2, row.destination)
              .run();
      } else {
        r.refused.push_back(row.destination + ": " + row.state + " cannot become " +
                            std::string(to_string(target)));
      }
    }
    (void)now;
    return r;
  });
}

Result<ActionResult> OperatorActions::retry(const std::string& study_uid,
                                            const std::string& destination) {
  return operator_action(study_uid, destination, StudyState::kReady, "retry requested");
}

Result<ActionResult> OperatorActions::retry_all_failed(const std::string& destination) {
  auto uids = db_.locked([&](Connection& db) {
    std::vector<std::string> out;
    auto st = db.prepare(
        "SELECT DISTINCT s.study_uid FROM studies s JOIN study_destinations sd "
        "ON sd.study_id = s.id WHERE sd.state = 'FAILED' AND (?1 = '' OR sd.destination = ?1)");
    st.bind(1, destination);
    while (st.step()) out.push_back(st.text(0));
    return out;
  });
  if (!uids) return uids.error();
  ActionResult total;
  for (const auto& uid : *uids) {
    auto r = operator_action(uid, destination, StudyState::kReady, "retry requested");
    if (!r) return r.error();
    total.changed += r->changed;
    for (auto& why : r->refused) total.refused.push_back(uid + " " + why);
  }
  return total;
}

Result<ActionResult> OperatorActions::hold(const std::string& study_uid,
                                           const std::string& destination,
                                           const std::string& reason) {
  return operator_action(study_uid, destination, StudyState::kHeld,
                         reason.empty() ? "held by operator" : reason);
}

Result<ActionResult> OperatorActions::release(const std::string& study_uid,
                                              const std::string& destination) {
  return operator_action(study_uid, destination, StudyState::kReady, "");
}

Result<ActionResult> OperatorActions::prioritize(const std::string& study_uid) {
  return db_.write([&](Connection& db) -> Result<ActionResult> {
    ActionResult r;
    auto st = db.prepare("SELECT priority FROM studies WHERE study_uid = ?1");
    st.bind(1, study_uid);
    if (!st.step()) return make_error(ErrorCode::kNotFound, "no such study");
    if (st.int64(0) >= 2) return r;
    auto up = db.prepare("UPDATE studies SET priority = 2 WHERE study_uid = ?1");
    up.bind(1, study_uid).run();
    r.changed = db.changes();
    return r;
  });
}

Result<void> OperatorActions::mark_stat(std::int64_t study_id) {
  return db_.write([&](Connection& db) -> Result<void> {
    auto up = db.prepare("UPDATE studies SET priority = 1 WHERE id = ?1 AND priority < 1");
    up.bind(1, study_id).run();
    return {};
  });
}

Result<ActionResult> OperatorActions::release_quarantine(const std::string& study_uid) {
  return operator_action(study_uid, "", StudyState::kStable, "released from quarantine");
}

Result<ActionResult> OperatorActions::release_reviewed_burned_in(const std::string& study_uid,
                                                                 const std::string& destination,
                                                                 const std::string& reviewer) {
  const std::int64_t now = db_.now_ms();
  auto reviewed = db_.write([&](Connection& db) -> Result<ActionResult> {
    ActionResult r;
    auto st = db.prepare(
        "SELECT s.id, sd.state, sd.reason_code FROM studies s JOIN study_destinations sd ON "
        "sd.study_id = s.id WHERE s.study_uid = ?1 AND sd.destination = ?2");
    st.bind(1, study_uid).bind(2, destination);
    if (!st.step())
      return make_error(ErrorCode::kNotFound, "no such study for destination " + destination);
    if (st.text(1) != "QUARANTINED" || st.text(2) != reason::kDeidRefused) {
      r.refused.push_back(destination + ": not quarantined as not de-identifiable (" + st.text(1) +
                          (st.text(2).empty() ? "" : ", " + st.text(2)) + ")");
      return r;
    }
    const std::int64_t id = st.int64(0);
    db.prepare(
          "INSERT OR REPLACE INTO deid_reviews(study_id, destination, through_instance_id, "
          "reviewed_at, operator) VALUES (?1, ?2, (SELECT coalesce(max(id), 0) FROM instances "
          "WHERE study_id = ?1), ?3, ?4)")
        .bind(1, id)
        .bind(2, destination)
        .bind(3, now)
        .bind(4, reviewer)
        .run();
    r.changed = 1;
    return r;
  });
  if (!reviewed || reviewed->changed == 0) return reviewed;
  return operator_action(study_uid, destination, StudyState::kStable,
                         "released after a burned-in review");
}

Result<ActionResult> OperatorActions::delete_quarantined(const std::string& study_uid,
                                                         DeletedObjects* objects_to_remove) {
  return db_.write([&](Connection& db) -> Result<ActionResult> {
    ActionResult r;
    auto st = db.prepare("SELECT id FROM studies WHERE study_uid = ?1");
    st.bind(1, study_uid);
    if (!st.step()) return make_error(ErrorCode::kNotFound, "no such study");
    const std::int64_t id = st.int64(0);
    auto states = db.prepare(
        "SELECT count(*), sum(state = 'QUARANTINED') FROM study_destinations WHERE study_id = ?1");
    states.bind(1, id);
    states.step();
    if (states.int64(0) != states.int64(1)) {
      r.refused.push_back("only a study quarantined for every destination can be deleted");
      return r;
    }
    // Objects no other instance uses go too, received and derived.
    DeletedObjects objects = delete_study_rows(db, id);
    if (objects_to_remove != nullptr) *objects_to_remove = std::move(objects);
    r.changed = 1;
    return r;
  });
}

}  // namespace dirgw::catalog
