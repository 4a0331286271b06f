#include "catalog/delivery_ledger.h"

#include <map>
#include <set>

#include "catalog/internal.h"

namespace dirgw::catalog {

Result<std::vector<DueItem>> DeliveryLedger::due_deliveries(const std::string& destination,
                                                            std::int64_t now_ms, int max_count,
                                                            std::uint64_t max_bytes,
                                                            bool stat_only) {
  return db_.locked([&](Connection& db) -> Result<std::vector<DueItem>> {
    auto st = db.prepare(
        "SELECT d.instance_id, i.study_id, s.study_uid, coalesce(dob.sop_instance_uid, "
        "i.sop_instance_uid), i.sop_class_uid, "
        "coalesce(dob.sha256, i.object_sha256), coalesce(dob.size, i.size), d.attempts, "
        "i.received_at, coalesce(d.first_failure_at, 0), dob.sha256 IS NOT NULL "
        "FROM deliveries d "
        "LEFT JOIN derived_objects dob ON dob.instance_id = d.instance_id "
        "AND dob.destination = d.destination "
        "JOIN instances i ON i.id = d.instance_id "
        "JOIN studies s ON s.id = i.study_id "
        "JOIN study_destinations sd ON sd.study_id = i.study_id AND sd.destination = d.destination "
        "WHERE d.destination = ?1 AND d.state = 'pending' AND d.next_attempt_at <= ?2 "
        "AND (sd.state IN ('READY', 'SENDING', 'RETRY_WAIT') OR (sd.state = 'RECEIVING' AND "
        "d.early = 1)) AND (?4 = 0 OR s.priority > 0) "
        "ORDER BY s.priority DESC, i.study_id, i.id LIMIT ?3");
    st.bind(1, destination).bind(2, now_ms).bind(3, max_count).bind(4, stat_only ? 1 : 0);
    std::vector<DueItem> out;
    std::uint64_t bytes = 0;
    while (st.step()) {
      DueItem item;
      item.instance_id = st.int64(0);
      item.study_id = st.int64(1);
      item.study_uid = st.text(2);
      item.sop_instance_uid = st.text(3);
      item.sop_class_uid = st.text(4);
      item.sha256 = st.text(5);
      item.size = static_cast<std::uint64_t>(st.int64(6));
      item.attempts = static_cast<int>(st.int64(7));
      item.received_at = st.int64(8);
      item.first_failure_at = st.int64(9);
      item.derived = st.int64(10) != 0;
      if (!out.empty() && bytes + item.size > max_bytes) break;
      bytes += item.size;
      out.push_back(std::move(item));
    }
    return out;
  });
}

Result<std::optional<std::int64_t>> DeliveryLedger::next_due(const std::string& destination,
                                                             bool stat_only) {
  return db_.locked([&](Connection& db) -> Result<std::optional<std::int64_t>> {
    auto st = db.prepare(
        "SELECT min(d.next_attempt_at) FROM deliveries d "
        "JOIN instances i ON i.id = d.instance_id "
        "JOIN study_destinations sd ON sd.study_id = i.study_id AND sd.destination = d.destination "
        "JOIN studies s ON s.id = i.study_id "
        "WHERE d.destination = ?1 AND d.state = 'pending' "
        "AND (sd.state IN ('READY', 'SENDING', 'RETRY_WAIT') OR (sd.state = 'RECEIVING' AND "
        "d.early = 1)) AND (?2 = 0 OR s.priority > 0)");
    st.bind(1, destination).bind(2, stat_only ? 1 : 0);
    st.step();
    if (st.is_null(0)) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(st.int64(0));
  });
}

namespace {

// The last check of begin_send, inside the caller's write transaction: keeps the items whose
// study may still be sent and marks them 'sending'; the rest are counted as dropped.
void begin_in(Connection& db, const Clock& clock, const std::string& destination,
              std::vector<DueItem> due, SendBatch& batch) {
  // study id -> still sendable: the whole study (READY...), or, while it is RECEIVING, only
  // its instances cleared on their own (send_while_receiving); nothing otherwise.
  enum class May { kNo, kStudy, kEarlyOnly };
  std::map<std::int64_t, May> may_send;
  for (auto& item : due) {
    auto known = may_send.find(item.study_id);
    if (known == may_send.end()) {
      auto st = db.prepare(
          "SELECT state FROM study_destinations WHERE study_id = ?1 AND destination = ?2");
      st.bind(1, item.study_id).bind(2, destination);
      const auto state = st.step() ? parse_study_state(st.text(0)) : std::nullopt;
      May may = !state                             ? May::kNo
                : sendable(*state)                 ? May::kStudy
                : *state == StudyState::kReceiving ? May::kEarlyOnly
                                                   : May::kNo;
      // A RECEIVING study stays RECEIVING: stable age and policy still decide its state.
      if (may == May::kStudy && *state != StudyState::kSending)
        transition(db, clock, item.study_id, destination, StudyState::kSending, Cause::kSendStarted,
                   "");
      known = may_send.emplace(item.study_id, may).first;
    }
    bool marked = false;
    if (known->second != May::kNo) {
      auto up = db.prepare(
          "UPDATE deliveries SET state = 'sending' WHERE instance_id = ?1 AND destination = ?2 "
          "AND state = 'pending' AND (?3 = 0 OR early = 1)");
      up.bind(1, item.instance_id)
          .bind(2, destination)
          .bind(3, known->second == May::kEarlyOnly ? 1 : 0)
          .run();
      marked = db.changes() == 1;
    }
    if (marked)
      batch.items.push_back(std::move(item));
    else
      ++batch.dropped;
  }
}

// A begun batch that will not go: its deliveries are 'pending' again. Returns their studies.
std::set<std::int64_t> abandon_in(Connection& db, const std::string& destination,
                                  const std::vector<DueItem>& items) {
  std::set<std::int64_t> studies;
  for (const auto& item : items) {
    db.prepare(
          "UPDATE deliveries SET state = 'pending' WHERE instance_id = ?1 AND destination = ?2 "
          "AND state = 'sending'")
        .bind(1, item.instance_id)
        .bind(2, destination)
        .run();
    if (db.changes() > 0) studies.insert(item.study_id);
  }
  return studies;
}

}  // namespace

Result<SendBatch> DeliveryLedger::begin_send(const std::string& destination,
                                             std::vector<DueItem> due) {
  return commit_batch(destination, {}, std::move(due), {});
}

namespace {

// What one batch of answers changed, gathered while each instance's row is written.
struct BatchEffects {
  std::set<std::int64_t> studies;                // studies whose state may have moved
  std::set<std::int64_t> progressed;             // studies with an instance accepted or refused
  std::set<std::int64_t> sent_after_withdrawal;  // accepted while their withdrawal took effect
  bool any_sent = false;
  std::string last_error;
};

// One instance's answer, recorded as it is, whatever happened meanwhile: an accepted instance
// is held by the repository even if its study was withdrawn while it was on the wire.
void apply_answer(Connection& db, const std::string& destination, const DeliveryUpdate& u,
                  std::int64_t now, BatchEffects& fx) {
  auto sid = db.prepare(
      "SELECT d.study_id, sd.state = 'WITHDRAWN' FROM deliveries d LEFT JOIN "
      "study_destinations sd ON sd.study_id = d.study_id AND sd.destination = d.destination "
      "WHERE d.instance_id = ?1 AND d.destination = ?2");
  sid.bind(1, u.instance_id).bind(2, destination);
  if (!sid.step()) return;
  const std::int64_t study_id = sid.int64(0);
  const bool gone = !sid.is_null(1) && sid.int64(1) != 0;
  const bool delivered = u.result == DeliveryResult::kDelivered;
  const char* state = delivered                              ? "sent"
                      : gone                                 ? "withdrawn"
                      : u.result == DeliveryResult::kRefused ? "failed"
                                                             : "pending";
  db.prepare(
        "UPDATE deliveries SET state = ?3, attempts = attempts + 1, last_error = ?4, "
        "next_attempt_at = ?5, in_doubt = 0, unconfirmed = ?7, "
        "sent_at = CASE WHEN ?3 = 'sent' THEN ?6 ELSE sent_at END, "
        "first_failure_at = CASE WHEN ?3 = 'sent' THEN first_failure_at "
        "ELSE coalesce(first_failure_at, ?6) END "
        "WHERE instance_id = ?1 AND destination = ?2 AND (state IN ('sending', 'pending') "
        "OR (?3 = 'sent' AND state = 'withdrawn'))")
      .bind(1, u.instance_id)
      .bind(2, destination)
      .bind(3, state)
      .bind(4, u.error)
      .bind(5, gone ? 0 : u.next_attempt_at)
      .bind(6, now)
      .bind(7, u.unconfirmed && u.result == DeliveryResult::kRefused ? 1 : 0)
      .run();
  if (db.changes() == 0) return;
  if (gone && delivered) fx.sent_after_withdrawal.insert(study_id);
  fx.any_sent = fx.any_sent || delivered;
  if (delivered || u.result == DeliveryResult::kRefused) fx.progressed.insert(study_id);
  if (!delivered && !u.error.empty()) fx.last_error = u.error;
  fx.studies.insert(study_id);
}

void note_destination_status(Connection& db, const std::string& destination, std::int64_t now,
                             const BatchEffects& fx) {
  db.prepare("INSERT OR IGNORE INTO destination_status(destination) VALUES (?1)")
      .bind(1, destination)
      .run();
  if (fx.any_sent)
    db.prepare("UPDATE destination_status SET last_success_at = ?2 WHERE destination = ?1")
        .bind(1, destination)
        .bind(2, now)
        .run();
  if (!fx.last_error.empty())
    db.prepare(
          "UPDATE destination_status SET last_error_at = ?2, last_error = ?3 "
          "WHERE destination = ?1")
        .bind(1, destination)
        .bind(2, now)
        .bind(3, fx.last_error)
        .run();
}

// record_deliveries inside the caller's write transaction. Returns the studies it settled.
std::set<std::int64_t> record_in(Connection& db, const Clock& clock, const std::string& destination,
                                 const std::vector<DeliveryUpdate>& updates) {
  const std::int64_t now = to_epoch_ms(clock.now());
  BatchEffects fx;
  for (const auto& u : updates) apply_answer(db, destination, u, now, fx);
  for (auto id : fx.sent_after_withdrawal) {
    audit_study_event(db, clock, id, destination, audit::EventType::kStudySent,
                      std::string(audit::kSuccess),
                      nlohmann::json{{"note", "sent before withdrawal took effect"}});
    queue_late_notification(db, id, destination, now);
  }
  finish_waiting_notifications(db, clock, destination);
  // Each study's state from its counters (schema 9), not a recount of its deliveries.
  for (auto id : fx.studies) settle_study(db, clock, id, destination, fx.progressed.count(id) > 0);
  note_destination_status(db, destination, now, fx);
  return fx.studies;
}

}  // namespace

Result<void> DeliveryLedger::record_deliveries(const std::string& destination,
                                               const std::vector<DeliveryUpdate>& updates) {
  return db_.write([&](Connection& db) { (void)record_in(db, db_.clock(), destination, updates); });
}

Result<SendBatch> DeliveryLedger::commit_batch(const std::string& destination,
                                               const std::vector<DeliveryUpdate>& answers,
                                               std::vector<DueItem> next,
                                               const std::vector<DueItem>& abandon) {
  SendBatch batch;
  if (!next.empty()) batch.permit = SendPermit(db_.send_gate());
  auto done = db_.write([&](Connection& db) {
    // The batch put back first: a study whose answers failed whole then has nothing in flight
    // when they are recorded, and waits in RETRY_WAIT as it would have without a batch ahead.
    // A study with no answers here is settled as after progress (SENDING while more is due).
    const auto abandoned = abandon_in(db, destination, abandon);
    std::set<std::int64_t> settled;
    if (!answers.empty()) settled = record_in(db, db_.clock(), destination, answers);
    for (auto id : abandoned)
      if (settled.count(id) == 0) settle_study(db, db_.clock(), id, destination, true);
    begin_in(db, db_.clock(), destination, std::move(next), batch);
  });
  if (!done) return done.error();
  if (batch.items.empty()) batch.permit.release();
  return batch;
}

Result<void> DeliveryLedger::record_destination_error(const std::string& destination,
                                                      const std::string& error) {
  return db_.locked([&](Connection& db) -> Result<void> {
    db.prepare(
          "INSERT INTO destination_status(destination, last_error_at, last_error) "
          "VALUES (?1, ?2, ?3) ON CONFLICT(destination) DO UPDATE SET last_error_at = ?2, "
          "last_error = ?3")
        .bind(1, destination)
        .bind(2, to_epoch_ms(db_.clock().now()))
        .bind(3, error)
        .run();
    return {};
  });
}

Result<int> DeliveryLedger::recover_interrupted_sends() {
  return db_.write([&](Connection& db) -> Result<int> {
    // Withdrawn meanwhile: never sent again, but the repository may hold them.
    // Through the partial index of open deliveries (schema 27): the backlog, not every delivery
    // ever kept (the index's own condition must be in the WHERE clause for SQLite to use it).
    db.prepare(
          "UPDATE deliveries INDEXED BY deliveries_open SET state = 'withdrawn', in_doubt = 1 "
          "WHERE state IN ('pending', 'sending') AND state = 'sending' AND "
          "EXISTS (SELECT 1 FROM instances i JOIN study_destinations sd ON sd.study_id = "
          "i.study_id AND sd.destination = deliveries.destination WHERE i.id = "
          "deliveries.instance_id AND sd.state = 'WITHDRAWN')")
        .run();
    int in_doubt = db.changes();
    db.prepare(
          "UPDATE deliveries INDEXED BY deliveries_open SET state = 'pending', in_doubt = 1 "
          "WHERE state IN ('pending', 'sending') AND state = 'sending'")
        .run();
    in_doubt += db.changes();
    for (const auto& dest : db_.destinations()) finish_waiting_notifications(db, db_.clock(), dest);
    return in_doubt;
  });
}

Result<std::vector<Notification>> DeliveryLedger::due_notifications(const std::string& destination,
                                                                    std::int64_t now_ms) {
  return db_.locked([&](Connection& db) -> Result<std::vector<Notification>> {
    std::vector<Notification> out;
    auto st = db.prepare(
        "SELECT id, body, attempts FROM notifications WHERE destination = ?1 AND state = "
        "'pending' AND next_attempt_at <= ?2 ORDER BY id LIMIT 20");
    st.bind(1, destination).bind(2, now_ms);
    while (st.step()) out.push_back({st.int64(0), st.text(1), static_cast<int>(st.int64(2))});
    return out;
  });
}

Result<void> DeliveryLedger::record_notification(std::int64_t id, bool sent,
                                                 const std::string& error,
                                                 std::int64_t next_attempt_at) {
  return db_.locked([&](Connection& db) -> Result<void> {
    db.prepare(
          "UPDATE notifications SET state = ?2, attempts = attempts + 1, last_error = ?3, "
          "next_attempt_at = ?4 WHERE id = ?1")
        .bind(1, id)
        .bind(2, sent ? "sent" : "pending")
        .bind(3, error)
        .bind(4, next_attempt_at)
        .run();
    return {};
  });
}

Result<std::optional<std::int64_t>> DeliveryLedger::next_notification(
    const std::string& destination) {
  return db_.locked([&](Connection& db) -> Result<std::optional<std::int64_t>> {
    auto st = db.prepare(
        "SELECT min(next_attempt_at) FROM notifications WHERE destination = ?1 AND state = "
        "'pending'");
    st.bind(1, destination);
    st.step();
    if (st.is_null(0)) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(st.int64(0));
  });
}

Result<std::optional<std::pair<std::string, std::uint64_t>>> DeliveryLedger::derived_object(
    std::int64_t instance_id, const std::string& destination) {
  return db_.locked(
      [&](Connection& db) -> Result<std::optional<std::pair<std::string, std::uint64_t>>> {
        auto st = db.prepare(
            "SELECT sha256, size FROM derived_objects WHERE instance_id = ?1 AND destination = ?2");
        st.bind(1, instance_id).bind(2, destination);
        if (!st.step()) return std::optional<std::pair<std::string, std::uint64_t>>();
        return std::optional<std::pair<std::string, std::uint64_t>>(
            std::make_pair(st.text(0), static_cast<std::uint64_t>(st.int64(1))));
      });
}

}  // namespace dirgw::catalog
