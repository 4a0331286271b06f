#include "catalog/catalog.h"

#include <map>
#include <set>

#include "catalog/migrations.h"
#include "catalog/sqlite/sqlite.h"

namespace dirgw::catalog {

using sqlite::Connection;
using sqlite::SqliteError;
using sqlite::Statement;
using sqlite::Transaction;

namespace {
Error db_error(const SqliteError& e) {
  int primary = e.code() & 0xff;
  if (primary == SQLITE_FULL) return make_error(ErrorCode::kDiskFull, e.what());
  return make_error(ErrorCode::kCatalog, e.what());
}
}  // namespace

Catalog::Catalog(std::unique_ptr<Connection> db, std::vector<std::string> destinations,
                 const Clock& clock)
    : db_(std::move(db)), destinations_(std::move(destinations)), clock_(clock) {}

Catalog::~Catalog() = default;

Result<std::unique_ptr<Catalog>> Catalog::open(const std::filesystem::path& path,
                                               std::vector<std::string> destinations,
                                               const Clock& clock) {
  try {
    auto db = std::make_unique<Connection>(path.string());
    db->exec("PRAGMA journal_mode=WAL");
    db->exec("PRAGMA synchronous=FULL");
    db->exec("PRAGMA foreign_keys=ON");
    auto migrated = migrate(*db);
    if (!migrated) return migrated.error();
    return std::unique_ptr<Catalog>(new Catalog(std::move(db), std::move(destinations), clock));
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

int Catalog::schema_version() {
  std::lock_guard lock(mutex_);
  auto st = db_->prepare("PRAGMA user_version");
  st.step();
  return static_cast<int>(st.int64(0));
}

namespace {
// The audit entry for an object received (or adopted at start, or received again).
audit::Event received_event(const NewInstance& in, nlohmann::json detail) {
  audit::Event e;
  e.type = audit::EventType::kObjectReceived;
  e.actor = in.calling_ae.empty() && in.peer == "reconciliation"
                ? audit::system_actor()
                : "dicom:" + in.calling_ae + "@" + in.peer;
  e.outcome = audit::kSuccess;
  e.study_uid = in.study_uid;
  e.sop_instance_uid = in.sop_instance_uid;
  e.detail = std::move(detail);
  return e;
}
}  // namespace

bool Catalog::withdraw(std::int64_t study_id, const std::string& destination,
                       const std::string& reason) {
  if (!transition(study_id, destination, StudyState::kWithdrawn, Cause::kConsentWithdrawn, reason))
    return false;
  db_->prepare(
         "UPDATE deliveries SET state = 'withdrawn' WHERE destination = ?2 AND state = "
         "'pending' AND instance_id IN (SELECT id FROM instances WHERE study_id = ?1)")
      .bind(1, study_id)
      .bind(2, destination)
      .run();
  return true;
}

Result<RecordOutcome> Catalog::record_instance(const NewInstance& in,
                                               NewVersionPolicy new_versions) {
  std::lock_guard lock(mutex_);
  const std::int64_t now = to_epoch_ms(clock_.now());
  try {
    Transaction tx(*db_);
    {
      auto dup = db_->prepare(
          "SELECT id FROM instances WHERE sop_instance_uid = ?1 AND object_sha256 = ?2");
      dup.bind(1, in.sop_instance_uid).bind(2, in.sha256);
      if (dup.step()) {
        RecordOutcome out{RecordKind::kDuplicate, dup.int64(0)};
        append_audit(received_event(in, {{"duplicate", true}}));
        tx.commit();
        return out;
      }
    }
    db_->prepare("INSERT OR IGNORE INTO objects(sha256, size, created_at) VALUES (?1, ?2, ?3)")
        .bind(1, in.sha256)
        .bind(2, static_cast<std::int64_t>(in.size))
        .bind(3, now)
        .run();
    std::int64_t study_id = 0;
    {
      auto find = db_->prepare("SELECT id FROM studies WHERE study_uid = ?1");
      find.bind(1, in.study_uid);
      if (find.step()) {
        study_id = find.int64(0);
      } else {
        db_->prepare(
               "INSERT INTO studies(study_uid, state, first_received_at, last_received_at) "
               "VALUES (?1, 'RECEIVING', ?2, ?2)")
            .bind(1, in.study_uid)
            .bind(2, now)
            .run();
        study_id = db_->last_insert_rowid();
      }
    }
    RecordKind kind = RecordKind::kNew;
    {
      auto other = db_->prepare("SELECT 1 FROM instances WHERE sop_instance_uid = ?1");
      other.bind(1, in.sop_instance_uid);
      if (other.step()) kind = RecordKind::kNewVersion;
    }
    db_->prepare(
           "INSERT INTO instances(study_id, sop_instance_uid, sop_class_uid, series_uid, "
           "transfer_syntax, modality, object_sha256, size, received_at, calling_ae, peer, flags) "
           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)")
        .bind(1, study_id)
        .bind(2, in.sop_instance_uid)
        .bind(3, in.sop_class_uid)
        .bind(4, in.series_uid)
        .bind(5, in.transfer_syntax)
        .bind(6, in.modality)
        .bind(7, in.sha256)
        .bind(8, static_cast<std::int64_t>(in.size))
        .bind(9, now)
        .bind(10, in.calling_ae)
        .bind(11, in.peer)
        .bind(12, kind == RecordKind::kNewVersion ? "new-version" : "")
        .run();
    const std::int64_t instance_id = db_->last_insert_rowid();
    if (kind == RecordKind::kNewVersion) {
      // Only the newest version of an SOP instance is sent: older versions still waiting are
      // superseded (a corrected image replaces the wrong one before it leaves).
      db_->prepare(
             "UPDATE deliveries SET state = 'superseded' WHERE state = 'pending' AND instance_id "
             "IN (SELECT id FROM instances WHERE sop_instance_uid = ?1 AND id != ?2)")
          .bind(1, in.sop_instance_uid)
          .bind(2, instance_id)
          .run();
    }
    db_->prepare(
           "UPDATE studies SET state = 'RECEIVING', last_received_at = ?2, "
           "instance_count = instance_count + 1, byte_count = byte_count + ?3 WHERE id = ?1")
        .bind(1, study_id)
        .bind(2, now)
        .bind(3, static_cast<std::int64_t>(in.size))
        .run();
    for (const auto& dest : destinations_) {
      int round = 1;
      auto cur = db_->prepare(
          "SELECT state, round FROM study_destinations WHERE study_id = ?1 AND destination = ?2");
      cur.bind(1, study_id).bind(2, dest);
      if (!cur.step()) {
        db_->prepare(
               "INSERT INTO study_destinations(study_id, destination, state, updated_at) "
               "VALUES (?1, ?2, 'RECEIVING', ?3)")
            .bind(1, study_id)
            .bind(2, dest)
            .bind(3, now)
            .run();
      } else {
        const auto state = parse_study_state(cur.text(0)).value_or(StudyState::kReceiving);
        round = static_cast<int>(cur.int64(1));
        if (on_new_instance(state)) {
          // A study already sent (or given up) opens a delta: a new round in which only the new
          // instances go. HELD, QUARANTINED and WITHDRAWN keep their state.
          const bool new_round = state == StudyState::kSent || state == StudyState::kVerified ||
                                 state == StudyState::kPurged || state == StudyState::kFailed;
          if (new_round) ++round;
          db_->prepare(
                 "UPDATE study_destinations SET state = 'RECEIVING', reason = '', round = ?3, "
                 "updated_at = ?4 WHERE study_id = ?1 AND destination = ?2")
              .bind(1, study_id)
              .bind(2, dest)
              .bind(3, round)
              .bind(4, now)
              .run();
        }
      }
      if (kind == RecordKind::kNewVersion && new_versions == NewVersionPolicy::kHold) {
        db_->prepare(
               "UPDATE study_destinations SET state = 'HELD', updated_at = ?3, reason = "
               "'an instance was received again with different bytes' "
               "WHERE study_id = ?1 AND destination = ?2 AND state NOT IN ('WITHDRAWN', "
               "'QUARANTINED')")
            .bind(1, study_id)
            .bind(2, dest)
            .bind(3, now)
            .run();
      }
      // A late instance of a withdrawn study is withdrawn on arrival: never pending, never sent.
      const bool withdrawn = !cur.is_null(0) && cur.text(0) == "WITHDRAWN";
      db_->prepare(
             "INSERT INTO deliveries(instance_id, destination, state, round) "
             "VALUES (?1, ?2, ?4, ?3)")
          .bind(1, instance_id)
          .bind(2, dest)
          .bind(3, round)
          .bind(4, withdrawn ? "withdrawn" : "pending")
          .run();
    }
    append_audit(
        received_event(in, {{"bytes", in.size}, {"new_version", kind == RecordKind::kNewVersion}}));
    tx.commit();
    return RecordOutcome{kind, instance_id};
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<void> Catalog::record_refusal(const Refusal& r) {
  std::lock_guard lock(mutex_);
  try {
    db_->prepare(
           "INSERT INTO refusals(at, source, calling_ae, peer, reason) VALUES (?1, ?2, ?3, ?4, ?5)")
        .bind(1, r.at != 0 ? r.at : to_epoch_ms(clock_.now()))
        .bind(2, r.source)
        .bind(3, r.calling_ae)
        .bind(4, r.peer)
        .bind(5, r.reason)
        .run();
    return {};
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<int> Catalog::promote_stable(std::int64_t cutoff_ms) {
  std::lock_guard lock(mutex_);
  const std::int64_t now = to_epoch_ms(clock_.now());
  try {
    Transaction tx(*db_);
    std::vector<std::int64_t> ids;
    {
      auto st = db_->prepare(
          "SELECT id FROM studies WHERE state = 'RECEIVING' AND last_received_at <= ?1");
      st.bind(1, cutoff_ms);
      while (st.step()) ids.push_back(st.int64(0));
    }
    for (auto id : ids) {
      db_->prepare("UPDATE studies SET state = 'STABLE' WHERE id = ?1").bind(1, id).run();
      // RECEIVING -> STABLE; the policy stage (consent, validation, coercion) decides next.
      db_->prepare(
             "UPDATE study_destinations SET state = 'STABLE', updated_at = ?2 "
             "WHERE study_id = ?1 AND state = 'RECEIVING'")
          .bind(1, id)
          .bind(2, now)
          .run();
    }
    tx.commit();
    return static_cast<int>(ids.size());
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<std::optional<std::int64_t>> Catalog::oldest_receiving() {
  std::lock_guard lock(mutex_);
  try {
    auto st = db_->prepare("SELECT min(last_received_at) FROM studies WHERE state = 'RECEIVING'");
    st.step();
    if (st.is_null(0)) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(st.int64(0));
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<std::vector<DueItem>> Catalog::due_deliveries(const std::string& destination,
                                                     std::int64_t now_ms, int max_count,
                                                     std::uint64_t max_bytes) {
  std::lock_guard lock(mutex_);
  try {
    auto st = db_->prepare(
        "SELECT d.instance_id, i.study_id, s.study_uid, i.sop_instance_uid, i.sop_class_uid, "
        "coalesce(dob.sha256, i.object_sha256), coalesce(dob.size, i.size), d.attempts, "
        "i.received_at, coalesce(d.first_failure_at, 0), dob.sha256 IS NOT NULL "
        "FROM deliveries d "
        "LEFT JOIN derived_objects dob ON dob.instance_id = d.instance_id "
        "AND dob.destination = d.destination "
        "JOIN instances i ON i.id = d.instance_id "
        "JOIN studies s ON s.id = i.study_id "
        "JOIN study_destinations sd ON sd.study_id = i.study_id AND sd.destination = d.destination "
        "WHERE d.destination = ?1 AND d.state = 'pending' AND d.next_attempt_at <= ?2 "
        "AND sd.state IN ('READY', 'SENDING', 'RETRY_WAIT') "
        "ORDER BY i.study_id, i.id LIMIT ?3");
    st.bind(1, destination).bind(2, now_ms).bind(3, max_count);
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
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<std::optional<std::int64_t>> Catalog::next_due(const std::string& destination) {
  std::lock_guard lock(mutex_);
  try {
    auto st = db_->prepare(
        "SELECT min(d.next_attempt_at) FROM deliveries d "
        "JOIN instances i ON i.id = d.instance_id "
        "JOIN study_destinations sd ON sd.study_id = i.study_id AND sd.destination = d.destination "
        "WHERE d.destination = ?1 AND d.state = 'pending' "
        "AND sd.state IN ('READY', 'SENDING', 'RETRY_WAIT')");
    st.bind(1, destination);
    st.step();
    if (st.is_null(0)) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(st.int64(0));
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<SendBatch> Catalog::begin_send(const std::string& destination, std::vector<DueItem> due) {
  SendBatch batch;
  batch.permit = SendPermit(send_gate_);
  std::lock_guard lock(mutex_);
  try {
    Transaction tx(*db_);
    std::map<std::int64_t, bool> may_send;  // study id -> still sendable
    for (auto& item : due) {
      auto known = may_send.find(item.study_id);
      if (known == may_send.end()) {
        auto st = db_->prepare(
            "SELECT state FROM study_destinations WHERE study_id = ?1 AND destination = ?2");
        st.bind(1, item.study_id).bind(2, destination);
        const auto state = st.step() ? parse_study_state(st.text(0)) : std::nullopt;
        const bool ok = state && sendable(*state);
        if (ok && *state != StudyState::kSending)
          transition(item.study_id, destination, StudyState::kSending, Cause::kSendStarted, "");
        known = may_send.emplace(item.study_id, ok).first;
      }
      bool marked = false;
      if (known->second) {
        auto up = db_->prepare(
            "UPDATE deliveries SET state = 'sending' WHERE instance_id = ?1 AND destination = ?2 "
            "AND state = 'pending'");
        up.bind(1, item.instance_id).bind(2, destination).run();
        marked = db_->changes() == 1;
      }
      if (marked)
        batch.items.push_back(std::move(item));
      else
        ++batch.dropped;
    }
    tx.commit();
  } catch (const SqliteError& e) {
    return db_error(e);
  }
  if (batch.items.empty()) batch.permit.release();
  return batch;
}

std::optional<StudyState> Catalog::refresh_study_state(std::int64_t study_id,
                                                       const std::string& destination) {
  const std::int64_t now = to_epoch_ms(clock_.now());
  auto cur =
      db_->prepare("SELECT state FROM study_destinations WHERE study_id = ?1 AND destination = ?2");
  cur.bind(1, study_id).bind(2, destination);
  if (!cur.step()) return std::nullopt;
  const std::string state = cur.text(0);
  // A study that went back to RECEIVING (a late instance) keeps that state.
  if (state != kSending && state != kReady && state != kRetryWait) return std::nullopt;
  auto counts = db_->prepare(
      "SELECT sum(d.state IN ('pending', 'sending')), sum(d.state = 'failed'), "
      "sum(d.state = 'sending' OR (d.state = 'pending' AND d.next_attempt_at <= ?3)) "
      "FROM deliveries d JOIN instances i ON i.id = d.instance_id "
      "WHERE i.study_id = ?1 AND d.destination = ?2");
  counts.bind(1, study_id).bind(2, destination).bind(3, now);
  counts.step();
  const std::int64_t pending = counts.int64(0), failed = counts.int64(1), due = counts.int64(2);
  std::string next = state;
  std::string reason;
  if (pending == 0 && failed == 0) {
    next = kSent;
  } else if (pending == 0) {
    next = kFailed;
    reason = std::to_string(failed) + " instance(s) refused by the repository";
  } else if (due == 0) {
    next = kRetryWait;
  } else {
    next = kSending;
  }
  const auto from = *parse_study_state(state);
  const auto to = *parse_study_state(next);
  if (!transition_allowed(from == StudyState::kReady ? StudyState::kSending : from, to,
                          Cause::kSendOutcome))
    return std::nullopt;
  auto up = db_->prepare(
      "UPDATE study_destinations SET state = ?3, reason = ?4, updated_at = ?5, "
      "sent_at = CASE WHEN ?3 = 'SENT' THEN ?5 ELSE sent_at END "
      "WHERE study_id = ?1 AND destination = ?2");
  up.bind(1, study_id).bind(2, destination).bind(3, next).bind(4, reason).bind(5, now).run();
  return to;
}

bool Catalog::transition(std::int64_t study_id, const std::string& destination, StudyState to,
                         Cause cause, const std::string& reason) {
  auto cur =
      db_->prepare("SELECT state FROM study_destinations WHERE study_id = ?1 AND destination = ?2");
  cur.bind(1, study_id).bind(2, destination);
  if (!cur.step()) return false;
  auto from = parse_study_state(cur.text(0));
  if (!from || !transition_allowed(*from, to, cause)) return false;
  db_->prepare(
         "UPDATE study_destinations SET state = ?3, reason = ?4, updated_at = ?5 "
         "WHERE study_id = ?1 AND destination = ?2")
      .bind(1, study_id)
      .bind(2, destination)
      .bind(3, to_string(to))
      .bind(4, reason)
      .bind(5, to_epoch_ms(clock_.now()))
      .run();
  return true;
}

Result<void> Catalog::record_deliveries(const std::string& destination,
                                        const std::vector<DeliveryUpdate>& updates) {
  std::lock_guard lock(mutex_);
  const std::int64_t now = to_epoch_ms(clock_.now());
  try {
    Transaction tx(*db_);
    std::set<std::int64_t> studies;
    bool any_sent = false;
    std::string last_error;
    std::map<std::int64_t, bool> withdrawn;  // study id -> withdrawn for this destination
    std::set<std::int64_t> sent_after_withdrawal;
    for (const auto& u : updates) {
      std::int64_t study_id = 0;
      {
        auto sid = db_->prepare(
            "SELECT i.study_id, sd.state = 'WITHDRAWN' FROM instances i LEFT JOIN "
            "study_destinations sd ON sd.study_id = i.study_id AND sd.destination = ?2 "
            "WHERE i.id = ?1");
        sid.bind(1, u.instance_id).bind(2, destination);
        if (!sid.step()) continue;
        study_id = sid.int64(0);
        withdrawn[study_id] = !sid.is_null(1) && sid.int64(1) != 0;
      }
      const bool gone = withdrawn[study_id];
      // What the repository answered is recorded as it is, whatever happened meanwhile: an
      // accepted instance is held there even if its study was withdrawn while it was on the wire.
      const char* state = u.result == DeliveryResult::kDelivered ? "sent"
                          : gone                                 ? "withdrawn"
                          : u.result == DeliveryResult::kRefused ? "failed"
                                                                 : "pending";
      auto up = db_->prepare(
          "UPDATE deliveries SET state = ?3, attempts = attempts + 1, last_error = ?4, "
          "next_attempt_at = ?5, in_doubt = 0, "
          "sent_at = CASE WHEN ?3 = 'sent' THEN ?6 ELSE sent_at END, "
          "first_failure_at = CASE WHEN ?3 = 'sent' THEN first_failure_at "
          "ELSE coalesce(first_failure_at, ?6) END "
          "WHERE instance_id = ?1 AND destination = ?2 AND (state IN ('sending', 'pending') "
          "OR (?3 = 'sent' AND state = 'withdrawn'))");
      up.bind(1, u.instance_id)
          .bind(2, destination)
          .bind(3, state)
          .bind(4, u.error)
          .bind(5, gone ? 0 : u.next_attempt_at)
          .bind(6, now)
          .run();
      if (db_->changes() == 0) continue;
      if (gone && u.result == DeliveryResult::kDelivered) sent_after_withdrawal.insert(study_id);
      any_sent = any_sent || u.result == DeliveryResult::kDelivered;
      if (u.result != DeliveryResult::kDelivered && !u.error.empty()) last_error = u.error;
      studies.insert(study_id);
    }
    for (auto id : sent_after_withdrawal) {
      auto uid = db_->prepare("SELECT study_uid FROM studies WHERE id = ?1");
      uid.bind(1, id);
      uid.step();
      audit::Event e;
      e.type = audit::EventType::kStudySent;
      e.actor = audit::system_actor();
      e.outcome = audit::kSuccess;
      e.study_uid = uid.text(0);
      e.destination = destination;
      e.detail = {{"note", "sent before withdrawal took effect"}};
      append_audit(std::move(e));
      queue_late_notification(id, destination, now);
    }
    finish_waiting_notifications(destination);
    for (auto id : studies) {
      auto moved = refresh_study_state(id, destination);
      if (moved && (*moved == StudyState::kSent || *moved == StudyState::kFailed)) {
        auto uid = db_->prepare("SELECT study_uid FROM studies WHERE id = ?1");
        uid.bind(1, id);
        uid.step();
        audit::Event e;
        e.type = *moved == StudyState::kSent ? audit::EventType::kStudySent
                                             : audit::EventType::kStudyFailed;
        e.actor = audit::system_actor();
        e.outcome = *moved == StudyState::kSent ? std::string(audit::kSuccess)
                                                : audit::failure("refused by the repository");
        e.study_uid = uid.text(0);
        e.destination = destination;
        append_audit(std::move(e));
      }
    }
    db_->prepare("INSERT OR IGNORE INTO destination_status(destination) VALUES (?1)")
        .bind(1, destination)
        .run();
    if (any_sent)
      db_->prepare("UPDATE destination_status SET last_success_at = ?2 WHERE destination = ?1")
          .bind(1, destination)
          .bind(2, now)
          .run();
    if (!last_error.empty())
      db_->prepare(
             "UPDATE destination_status SET last_error_at = ?2, last_error = ?3 "
             "WHERE destination = ?1")
          .bind(1, destination)
          .bind(2, now)
          .bind(3, last_error)
          .run();
    tx.commit();
    return {};
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<void> Catalog::record_destination_error(const std::string& destination,
                                               const std::string& error) {
  std::lock_guard lock(mutex_);
  try {
    db_->prepare(
           "INSERT INTO destination_status(destination, last_error_at, last_error) "
           "VALUES (?1, ?2, ?3) ON CONFLICT(destination) DO UPDATE SET last_error_at = ?2, "
           "last_error = ?3")
        .bind(1, destination)
        .bind(2, to_epoch_ms(clock_.now()))
        .bind(3, error)
        .run();
    return {};
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<Status> Catalog::status() {
  std::lock_guard lock(mutex_);
  try {
    Status s;
    {
      auto st = db_->prepare("PRAGMA user_version");
      st.step();
      s.schema_version = static_cast<int>(st.int64(0));
    }
    {
      auto st = db_->prepare(
          "SELECT count(*), coalesce(sum(instance_count), 0), coalesce(sum(byte_count), 0) "
          "FROM studies");
      st.step();
      s.studies = st.int64(0);
      s.instances = st.int64(1);
      s.bytes = st.int64(2);
    }
    {
      auto st = db_->prepare(
          "SELECT state, count(*), sum(instance_count) FROM studies GROUP BY state ORDER BY state");
      while (st.step()) s.ingest_states.push_back({st.text(0), st.int64(1), st.int64(2)});
    }
    for (const auto& name : destinations_) {
      DestinationStatus d;
      d.name = name;
      auto st = db_->prepare(
          "SELECT sd.state, count(*), coalesce(sum(s.instance_count), 0) FROM study_destinations "
          "sd "
          "JOIN studies s ON s.id = sd.study_id WHERE sd.destination = ?1 "
          "GROUP BY sd.state ORDER BY sd.state");
      st.bind(1, name);
      while (st.step()) d.states.push_back({st.text(0), st.int64(1), st.int64(2)});
      auto pend = db_->prepare(
          "SELECT count(*), coalesce(sum(i.size), 0), coalesce(min(i.received_at), 0) "
          "FROM deliveries d JOIN instances i ON i.id = d.instance_id "
          "WHERE d.destination = ?1 AND d.state IN ('pending', 'sending')");
      pend.bind(1, name);
      pend.step();
      d.pending_instances = pend.int64(0);
      d.pending_bytes = pend.int64(1);
      d.oldest_pending_at = pend.int64(2);
      auto ds = db_->prepare(
          "SELECT coalesce(last_success_at, 0), coalesce(last_error_at, 0), last_error "
          "FROM destination_status WHERE destination = ?1");
      ds.bind(1, name);
      if (ds.step()) {
        d.last_success_at = ds.int64(0);
        d.last_error_at = ds.int64(1);
        d.last_error = ds.text(2);
      }
      s.destinations.push_back(std::move(d));
    }
    {
      auto st = db_->prepare("SELECT count(*) FROM refusals");
      st.step();
      s.refusals = st.int64(0);
      auto last = db_->prepare(
          "SELECT at, source, calling_ae, peer, reason FROM refusals ORDER BY id DESC LIMIT 1");
      if (last.step())
        s.last_refusal =
            Refusal{last.int64(0), last.text(1), last.text(2), last.text(3), last.text(4)};
      auto rec = db_->prepare(
          "SELECT at, temporaries, adopted, quarantined, missing FROM reconciliations "
          "ORDER BY id DESC LIMIT 1");
      if (rec.step())
        s.last_reconciliation = Reconciliation{
            rec.int64(0), static_cast<int>(rec.int64(1)), static_cast<int>(rec.int64(2)),
            static_cast<int>(rec.int64(3)), static_cast<int>(rec.int64(4))};
    }
    return s;
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<std::vector<StudySummary>> Catalog::studies(const std::string& state_filter, int limit,
                                                   const std::string& destination_filter) {
  std::lock_guard lock(mutex_);
  try {
    auto st = db_->prepare(
        "SELECT s.id, s.study_uid, s.state, s.instance_count, s.byte_count, s.first_received_at, "
        "s.last_received_at FROM studies s "
        "WHERE (?1 = '' AND ?3 = '') OR EXISTS (SELECT 1 FROM study_destinations sd "
        "WHERE sd.study_id = s.id AND (?1 = '' OR sd.state = ?1) "
        "AND (?3 = '' OR sd.destination = ?3)) OR (?3 = '' AND s.state = ?1) "
        "ORDER BY s.last_received_at DESC, s.id DESC LIMIT ?2");
    st.bind(1, state_filter).bind(2, limit).bind(3, destination_filter);
    std::vector<StudySummary> out;
    std::vector<std::int64_t> ids;
    while (st.step()) {
      ids.push_back(st.int64(0));
      StudySummary s;
      s.study_uid = st.text(1);
      s.state = st.text(2);
      s.instances = st.int64(3);
      s.bytes = st.int64(4);
      s.first_received_at = st.int64(5);
      s.last_received_at = st.int64(6);
      out.push_back(std::move(s));
    }
    for (std::size_t i = 0; i < ids.size(); ++i) {
      auto sd = db_->prepare(
          "SELECT destination, state FROM study_destinations WHERE study_id = ?1 "
          "ORDER BY destination");
      sd.bind(1, ids[i]);
      while (sd.step()) out[i].destination_states.emplace_back(sd.text(0), sd.text(1));
    }
    return out;
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<std::optional<StudyDetail>> Catalog::study(const std::string& study_uid) {
  std::lock_guard lock(mutex_);
  try {
    auto st = db_->prepare(
        "SELECT id, state, instance_count, byte_count, first_received_at, last_received_at "
        "FROM studies WHERE study_uid = ?1");
    st.bind(1, study_uid);
    if (!st.step()) return std::optional<StudyDetail>();
    StudyDetail d;
    const std::int64_t id = st.int64(0);
    d.summary.study_uid = study_uid;
    d.summary.state = st.text(1);
    d.summary.instances = st.int64(2);
    d.summary.bytes = st.int64(3);
    d.summary.first_received_at = st.int64(4);
    d.summary.last_received_at = st.int64(5);
    auto sd = db_->prepare(
        "SELECT destination, state, reason, round, updated_at, coalesce(sent_at, 0) "
        "FROM study_destinations WHERE study_id = ?1 ORDER BY destination");
    sd.bind(1, id);
    while (sd.step()) {
      d.destinations.push_back({sd.text(0), sd.text(1), sd.text(2), static_cast<int>(sd.int64(3)),
                                sd.int64(4), sd.int64(5)});
      d.summary.destination_states.emplace_back(sd.text(0), sd.text(1));
    }
    auto rounds = db_->prepare(
        "SELECT d.destination, d.round, count(*), sum(d.state = 'sent'), sum(d.state = 'failed'), "
        "sum(d.state IN ('pending', 'sending')), coalesce(min(d.sent_at), 0), "
        "coalesce(max(d.sent_at), 0) "
        "FROM deliveries d JOIN instances i ON i.id = d.instance_id WHERE i.study_id = ?1 "
        "GROUP BY d.destination, d.round ORDER BY d.destination, d.round");
    rounds.bind(1, id);
    while (rounds.step())
      d.rounds.push_back({rounds.text(0), static_cast<int>(rounds.int64(1)), rounds.int64(2),
                          rounds.int64(3), rounds.int64(4), rounds.int64(5), rounds.int64(6),
                          rounds.int64(7)});
    auto inst = db_->prepare(
        "SELECT id, sop_instance_uid, sop_class_uid, series_uid, modality, transfer_syntax, "
        "object_sha256, flags, calling_ae, size, received_at FROM instances WHERE study_id = ?1 "
        "ORDER BY id");
    inst.bind(1, id);
    std::vector<std::int64_t> ids;
    while (inst.step()) {
      ids.push_back(inst.int64(0));
      InstanceDetail i;
      i.sop_instance_uid = inst.text(1);
      i.sop_class_uid = inst.text(2);
      i.series_uid = inst.text(3);
      i.modality = inst.text(4);
      i.transfer_syntax = inst.text(5);
      i.sha256 = inst.text(6);
      i.flags = inst.text(7);
      i.calling_ae = inst.text(8);
      i.size = inst.int64(9);
      i.received_at = inst.int64(10);
      d.instances.push_back(std::move(i));
    }
    auto del = db_->prepare(
        "SELECT destination, state, last_error, attempts, round, next_attempt_at, "
        "coalesce(sent_at, 0) FROM deliveries WHERE instance_id = ?1 ORDER BY destination");
    for (std::size_t k = 0; k < ids.size(); ++k) {
      del.reset();
      del.bind(1, ids[k]);
      while (del.step())
        d.instances[k].deliveries.push_back(
            {del.text(0), del.text(1), del.text(2), static_cast<int>(del.int64(3)),
             static_cast<int>(del.int64(4)), del.int64(5), del.int64(6)});
    }
    return std::optional<StudyDetail>(std::move(d));
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<ActionResult> Catalog::operator_action(const std::string& study_uid,
                                              const std::string& destination, StudyState to,
                                              const std::string& reason) {
  std::lock_guard lock(mutex_);
  const std::int64_t now = to_epoch_ms(clock_.now());
  try {
    Transaction tx(*db_);
    ActionResult r;
    auto rows = db_->prepare(
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
        // Retry: failed deliveries go again, and nothing waits for its backoff.
        db_->prepare(
               "UPDATE deliveries SET state = 'pending', next_attempt_at = 0, "
               "first_failure_at = NULL WHERE destination = ?2 AND state IN ('pending', "
               "'failed') AND instance_id IN (SELECT id FROM instances WHERE study_id = ?1)")
            .bind(1, row.id)
            .bind(2, row.destination)
            .run();
      }
      if (transition(row.id, row.destination, target, Cause::kOperator, reason)) {
        ++r.changed;
      } else {
        r.refused.push_back(row.destination + ": " + row.state + " cannot become " +
                            std::string(to_string(target)));
      }
    }
    (void)now;
    tx.commit();
    return r;
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<ActionResult> Catalog::retry(const std::string& study_uid, const std::string& destination) {
  return operator_action(study_uid, destination, StudyState::kReady, "retry requested");
}

Result<ActionResult> Catalog::retry_all_failed(const std::string& destination) {
  std::vector<std::string> uids;
  {
    std::lock_guard lock(mutex_);
    try {
      auto st = db_->prepare(
          "SELECT DISTINCT s.study_uid FROM studies s JOIN study_destinations sd "
          "ON sd.study_id = s.id WHERE sd.state = 'FAILED' AND (?1 = '' OR sd.destination = ?1)");
      st.bind(1, destination);
      while (st.step()) uids.push_back(st.text(0));
    } catch (const SqliteError& e) {
      return db_error(e);
    }
  }
  ActionResult total;
  for (const auto& uid : uids) {
    auto r = operator_action(uid, destination, StudyState::kReady, "retry requested");
    if (!r) return r.error();
    total.changed += r->changed;
    for (auto& why : r->refused) total.refused.push_back(uid + " " + why);
  }
  return total;
}

Result<ActionResult> Catalog::hold(const std::string& study_uid, const std::string& destination,
                                   const std::string& reason) {
  return operator_action(study_uid, destination, StudyState::kHeld,
                         reason.empty() ? "held by operator" : reason);
}

Result<ActionResult> Catalog::release(const std::string& study_uid,
                                      const std::string& destination) {
  return operator_action(study_uid, destination, StudyState::kReady, "");
}

Result<bool> Catalog::has_object(const std::string& sha256) {
  std::lock_guard lock(mutex_);
  try {
    auto st = db_->prepare("SELECT 1 FROM objects WHERE sha256 = ?1");
    st.bind(1, sha256);
    return st.step();
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<std::vector<std::string>> Catalog::object_hashes() {
  std::lock_guard lock(mutex_);
  try {
    std::vector<std::string> out;
    auto st = db_->prepare("SELECT sha256 FROM objects ORDER BY sha256");
    while (st.step()) out.push_back(st.text(0));
    return out;
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<int> Catalog::flag_missing_object(const std::string& sha256) {
  std::lock_guard lock(mutex_);
  try {
    Transaction tx(*db_);
    std::set<std::pair<std::int64_t, std::string>> touched;
    auto st = db_->prepare(
        "SELECT d.instance_id, d.destination, i.study_id FROM deliveries d "
        "JOIN instances i ON i.id = d.instance_id "
        "WHERE i.object_sha256 = ?1 AND d.state = 'pending'");
    st.bind(1, sha256);
    std::vector<std::tuple<std::int64_t, std::string, std::int64_t>> rows;
    while (st.step()) rows.emplace_back(st.int64(0), st.text(1), st.int64(2));
    for (const auto& [instance_id, dest, study_id] : rows) {
      db_->prepare(
             "UPDATE deliveries SET state = 'failed', last_error = 'spool file missing' "
             "WHERE instance_id = ?1 AND destination = ?2")
          .bind(1, instance_id)
          .bind(2, dest)
          .run();
      touched.insert({study_id, dest});
    }
    for (const auto& [study_id, dest] : touched) refresh_study_state(study_id, dest);
    tx.commit();
    return static_cast<int>(rows.size());
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<void> Catalog::record_reconciliation(const Reconciliation& r) {
  std::lock_guard lock(mutex_);
  try {
    db_->prepare(
           "INSERT INTO reconciliations(at, temporaries, adopted, quarantined, missing) "
           "VALUES (?1, ?2, ?3, ?4, ?5)")
        .bind(1, r.at != 0 ? r.at : to_epoch_ms(clock_.now()))
        .bind(2, r.temporaries)
        .bind(3, r.adopted)
        .bind(4, r.quarantined)
        .bind(5, r.missing)
        .run();
    return {};
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

namespace {
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

}  // namespace

Result<std::vector<PolicyWork>> Catalog::policy_work(int limit) {
  std::lock_guard lock(mutex_);
  try {
    std::vector<PolicyWork> out;
    auto st = db_->prepare(
        "SELECT s.id, s.study_uid, group_concat(sd.destination, char(10)) FROM studies s "
        "JOIN study_destinations sd ON sd.study_id = s.id WHERE sd.state = 'STABLE' "
        "GROUP BY s.id ORDER BY s.last_received_at LIMIT ?1");
    st.bind(1, limit);
    while (st.step()) {
      PolicyWork w;
      w.study_id = st.int64(0);
      w.study_uid = st.text(1);
      std::string dests = st.text(2);
      std::size_t pos = 0;
      while (pos <= dests.size()) {
        auto nl = dests.find('\n', pos);
        if (nl == std::string::npos) nl = dests.size();
        if (nl > pos) w.destinations.push_back(dests.substr(pos, nl - pos));
        pos = nl + 1;
      }
      out.push_back(std::move(w));
    }
    for (auto& w : out) {
      auto inst = db_->prepare(
          "SELECT id, sop_instance_uid, object_sha256, received_at FROM instances "
          "WHERE study_id = ?1 ORDER BY id");
      inst.bind(1, w.study_id);
      while (inst.step())
        w.instances.push_back({inst.int64(0), inst.text(1), inst.text(2), inst.int64(3)});
    }
    return out;
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

PolicyDecision consent_decision(const std::string& destination, ConsentState consent, bool opt_in) {
  PolicyDecision d;
  d.destination = destination;
  d.opt_in = opt_in;
  if (consent == ConsentState::kWithdrawn) {
    d.state = StudyState::kWithdrawn;
    d.reason = "consent withdrawn";
  } else if (opt_in && consent != ConsentState::kGranted) {
    d.state = StudyState::kHeld;
    d.reason = "no consent recorded";
  } else {
    d.state = StudyState::kReady;
  }
  return d;
}

Result<std::vector<PolicyDecision>> Catalog::record_policy(
    std::int64_t study_id, const std::vector<PatientKey>& identifiers,
    const std::vector<Finding>& findings, const std::vector<PolicyDecision>& decisions,
    const std::vector<std::tuple<std::int64_t, std::string, std::string, std::uint64_t>>& derived) {
  std::lock_guard lock(mutex_);
  const std::int64_t now = to_epoch_ms(clock_.now());
  try {
    Transaction tx(*db_);
    for (const auto& k : identifiers)
      db_->prepare(
             "INSERT OR IGNORE INTO study_identifiers(study_id, kind, issuer, value) "
             "VALUES (?1, ?2, ?3, ?4)")
          .bind(1, study_id)
          .bind(2, k.kind)
          .bind(3, k.issuer)
          .bind(4, k.value)
          .run();
    db_->prepare("DELETE FROM policy_findings WHERE study_id = ?1").bind(1, study_id).run();
    for (const auto& f : findings)
      db_->prepare(
             "INSERT INTO policy_findings(study_id, sop_instance_uid, code, tag, message, at) "
             "VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
          .bind(1, study_id)
          .bind(2, f.sop_instance_uid)
          .bind(3, f.code)
          .bind(4, f.tag)
          .bind(5, f.message)
          .bind(6, now)
          .run();
    for (const auto& [instance_id, destination, sha, size] : derived) {
      db_->prepare("INSERT OR IGNORE INTO objects(sha256, size, created_at) VALUES (?1, ?2, ?3)")
          .bind(1, sha)
          .bind(2, static_cast<std::int64_t>(size))
          .bind(3, now)
          .run();
      db_->prepare(
             "INSERT OR REPLACE INTO derived_objects(instance_id, destination, sha256, size, kind) "
             "VALUES (?1, ?2, ?3, ?4, 'coerced')")
          .bind(1, instance_id)
          .bind(2, destination)
          .bind(3, sha)
          .bind(4, static_cast<std::int64_t>(size))
          .run();
    }
    // Consent is read here, in the transaction that commits the decision: a withdrawal either
    // committed before (and is seen) or comes after (and finds this study by its identifiers).
    const std::int64_t patient = find_patient(*db_, identifiers);
    std::vector<PolicyDecision> out;
    for (const auto& proposed : decisions) {
      PolicyDecision d = proposed;
      if (d.state == StudyState::kReady)
        d = consent_decision(d.destination, consent_of(*db_, patient, d.destination), d.opt_in);
      if (d.state == StudyState::kWithdrawn) {
        withdraw(study_id, d.destination, d.reason);
      } else {
        transition(study_id, d.destination, d.state, Cause::kPolicy, d.reason);
      }
      out.push_back(std::move(d));
    }
    tx.commit();
    return out;
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<std::vector<Finding>> Catalog::findings(const std::string& study_uid) {
  std::lock_guard lock(mutex_);
  try {
    std::vector<Finding> out;
    auto st = db_->prepare(
        "SELECT f.sop_instance_uid, f.code, f.tag, f.message FROM policy_findings f "
        "JOIN studies s ON s.id = f.study_id WHERE s.study_uid = ?1 ORDER BY f.id");
    st.bind(1, study_uid);
    while (st.step()) out.push_back({st.text(0), st.text(1), st.text(2), st.text(3)});
    return out;
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<ConsentEffect> Catalog::record_consent(const ConsentChange& c) {
  if (c.identifiers.empty())
    return make_error(ErrorCode::kInvalidArgument, "a consent change needs a patient identifier");
  // A withdrawal waits until every request that passed its last check has left (send_gate.h).
  std::unique_lock<SendGate> gate(send_gate_, std::defer_lock);
  if (!c.grant) gate.lock();
  std::lock_guard lock(mutex_);
  const std::int64_t now = c.at != 0 ? c.at : to_epoch_ms(clock_.now());
  try {
    Transaction tx(*db_);
    ConsentEffect effect;
    std::int64_t patient = find_patient(*db_, c.identifiers);
    if (patient == 0) {
      db_->prepare("INSERT INTO patients(created_at) VALUES (?1)").bind(1, now).run();
      patient = db_->last_insert_rowid();
    }
    effect.patient_id = patient;
    for (const auto& k : c.identifiers)
      db_->prepare(
             "INSERT OR IGNORE INTO patient_identifiers(patient_id, kind, issuer, value) "
             "VALUES (?1, ?2, ?3, ?4)")
          .bind(1, patient)
          .bind(2, k.kind)
          .bind(3, k.issuer)
          .bind(4, k.value)
          .run();
    db_->prepare(
           "INSERT INTO consent_events(patient_id, at, decision, scope, source, operator, "
           "reference) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
        .bind(1, patient)
        .bind(2, now)
        .bind(3, c.grant ? "grant" : "withdraw")
        .bind(4, c.scope)
        .bind(5, c.source)
        .bind(6, c.operator_name)
        .bind(7, c.reference)
        .run();
    // Every study carrying any identifier of this patient.
    std::set<std::int64_t> studies;
    const bool queue_notifications = !c.grant && !c.notify.empty();
    auto st = db_->prepare(
        "SELECT DISTINCT si.study_id FROM study_identifiers si JOIN patient_identifiers pi "
        "ON pi.kind = si.kind AND pi.issuer = si.issuer AND pi.value = si.value "
        "WHERE pi.patient_id = ?1");
    st.bind(1, patient);
    while (st.step()) studies.insert(st.int64(0));
    for (auto study_id : studies) {
      auto rows = db_->prepare(
          "SELECT destination, state, reason FROM study_destinations WHERE study_id = ?1 "
          "AND (?2 = '*' OR destination = ?2)");
      rows.bind(1, study_id).bind(2, c.scope);
      std::vector<std::tuple<std::string, std::string, std::string>> dests;
      while (rows.step()) dests.emplace_back(rows.text(0), rows.text(1), rows.text(2));
      for (const auto& [dest, state, reason] : dests) {
        if (!c.grant) {
          if (withdraw(study_id, dest, "consent withdrawn")) ++effect.studies_withdrawn;
        } else if (state == "HELD" && reason == "no consent recorded" &&
                   consent_of(*db_, patient, dest) == ConsentState::kGranted) {
          if (transition(study_id, dest, StudyState::kReady, Cause::kPolicy, ""))
            ++effect.studies_released;
        }
      }
    }
    if (queue_notifications) {
      for (const auto& dest : c.notify) {
        if (c.scope != "*" && c.scope != dest) continue;
        // Written out at once unless a batch of the patient's is still in flight to `dest`: then
        // it waits for the answer, so that it lists that batch too.
        db_->prepare(
               "INSERT INTO notifications(destination, created_at, body, state, patient_id, "
               "scope) VALUES (?1, ?2, '', 'waiting', ?3, ?4)")
            .bind(1, dest)
            .bind(2, now)
            .bind(3, patient)
            .bind(4, c.scope)
            .run();
        finish_waiting_notifications(dest);
        ++effect.notifications;
      }
    }
    tx.commit();
    return effect;
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

std::string Catalog::notification_body(std::int64_t patient_id, const std::string& destination,
                                       std::int64_t at) {
  // Every instance of the patient's studies that the destination holds or may hold (accepted,
  // or in doubt after a stop mid-request). UIDs only, never the patient.
  auto st = db_->prepare(
      "SELECT s.study_uid, i.sop_instance_uid FROM studies s "
      "JOIN instances i ON i.study_id = s.id "
      "JOIN deliveries d ON d.instance_id = i.id AND d.destination = ?2 "
      "WHERE s.id IN (SELECT si.study_id FROM study_identifiers si JOIN patient_identifiers pi "
      "ON pi.kind = si.kind AND pi.issuer = si.issuer AND pi.value = si.value "
      "WHERE pi.patient_id = ?1) AND (d.state = 'sent' OR d.in_doubt = 1) "
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

void Catalog::finish_waiting_notifications(const std::string& destination) {
  std::vector<std::pair<std::int64_t, std::int64_t>> ready;  // id, patient
  {
    auto st = db_->prepare(
        "SELECT n.id, n.patient_id FROM notifications n WHERE n.destination = ?1 AND n.state = "
        "'waiting' AND NOT EXISTS (SELECT 1 FROM deliveries d JOIN instances i ON i.id = "
        "d.instance_id JOIN study_identifiers si ON si.study_id = i.study_id JOIN "
        "patient_identifiers pi ON pi.kind = si.kind AND pi.issuer = si.issuer AND pi.value = "
        "si.value WHERE pi.patient_id = n.patient_id AND d.destination = ?1 AND d.state = "
        "'sending')");
    st.bind(1, destination);
    while (st.step()) ready.emplace_back(st.int64(0), st.int64(1));
  }
  const std::int64_t now = to_epoch_ms(clock_.now());
  for (const auto& [id, patient] : ready)
    db_->prepare("UPDATE notifications SET body = ?2, state = 'pending' WHERE id = ?1")
        .bind(1, id)
        .bind(2, notification_body(patient, destination, now))
        .run();
}

void Catalog::queue_late_notification(std::int64_t study_id, const std::string& destination,
                                      std::int64_t now) {
  std::vector<std::int64_t> patients;
  {
    auto st = db_->prepare(
        "SELECT DISTINCT pi.patient_id FROM study_identifiers si JOIN patient_identifiers pi "
        "ON pi.kind = si.kind AND pi.issuer = si.issuer AND pi.value = si.value "
        "WHERE si.study_id = ?1");
    st.bind(1, study_id);
    while (st.step()) patients.push_back(st.int64(0));
  }
  for (auto patient : patients) {
    // Only where this destination takes notifications (one was queued before), and only when
    // none is still waiting (that one will list the instance).
    auto st = db_->prepare(
        "SELECT sum(state = 'waiting'), count(*) FROM notifications WHERE patient_id = ?1 AND "
        "destination = ?2");
    st.bind(1, patient).bind(2, destination);
    st.step();
    if (st.int64(1) == 0 || (!st.is_null(0) && st.int64(0) > 0)) continue;
    db_->prepare(
           "INSERT INTO notifications(destination, created_at, body, state, patient_id) "
           "VALUES (?1, ?2, ?3, 'pending', ?4)")
        .bind(1, destination)
        .bind(2, now)
        .bind(3, notification_body(patient, destination, now))
        .bind(4, patient)
        .run();
  }
}

Result<int> Catalog::recover_interrupted_sends() {
  std::lock_guard lock(mutex_);
  try {
    Transaction tx(*db_);
    // Withdrawn meanwhile: never sent again, but the repository may hold them.
    db_->prepare(
           "UPDATE deliveries SET state = 'withdrawn', in_doubt = 1 WHERE state = 'sending' AND "
           "EXISTS (SELECT 1 FROM instances i JOIN study_destinations sd ON sd.study_id = "
           "i.study_id AND sd.destination = deliveries.destination WHERE i.id = "
           "deliveries.instance_id AND sd.state = 'WITHDRAWN')")
        .run();
    int in_doubt = db_->changes();
    db_->prepare("UPDATE deliveries SET state = 'pending', in_doubt = 1 WHERE state = 'sending'")
        .run();
    in_doubt += db_->changes();
    for (const auto& dest : destinations_) finish_waiting_notifications(dest);
    tx.commit();
    return in_doubt;
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<std::vector<Notification>> Catalog::due_notifications(const std::string& destination,
                                                             std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  try {
    std::vector<Notification> out;
    auto st = db_->prepare(
        "SELECT id, body, attempts FROM notifications WHERE destination = ?1 AND state = "
        "'pending' AND next_attempt_at <= ?2 ORDER BY id LIMIT 20");
    st.bind(1, destination).bind(2, now_ms);
    while (st.step()) out.push_back({st.int64(0), st.text(1), static_cast<int>(st.int64(2))});
    return out;
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<void> Catalog::record_notification(std::int64_t id, bool sent, const std::string& error,
                                          std::int64_t next_attempt_at) {
  std::lock_guard lock(mutex_);
  try {
    db_->prepare(
           "UPDATE notifications SET state = ?2, attempts = attempts + 1, last_error = ?3, "
           "next_attempt_at = ?4 WHERE id = ?1")
        .bind(1, id)
        .bind(2, sent ? "sent" : "pending")
        .bind(3, error)
        .bind(4, next_attempt_at)
        .run();
    return {};
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<std::optional<std::int64_t>> Catalog::next_notification(const std::string& destination) {
  std::lock_guard lock(mutex_);
  try {
    auto st = db_->prepare(
        "SELECT min(next_attempt_at) FROM notifications WHERE destination = ?1 AND state = "
        "'pending'");
    st.bind(1, destination);
    st.step();
    if (st.is_null(0)) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(st.int64(0));
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<ConsentState> Catalog::consent_for(const std::vector<PatientKey>& identifiers,
                                          const std::string& destination) {
  std::lock_guard lock(mutex_);
  try {
    return consent_of(*db_, find_patient(*db_, identifiers), destination);
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<std::optional<PatientConsent>> Catalog::patient_consent(const PatientKey& key) {
  std::lock_guard lock(mutex_);
  try {
    const std::int64_t patient = find_patient(*db_, {key});
    if (patient == 0) return std::optional<PatientConsent>();
    PatientConsent pc;
    pc.patient_id = patient;
    auto ids = db_->prepare(
        "SELECT kind, issuer, value FROM patient_identifiers WHERE patient_id = ?1 ORDER BY kind");
    ids.bind(1, patient);
    while (ids.step()) pc.identifiers.push_back({ids.text(0), ids.text(1), ids.text(2)});
    auto ev = db_->prepare(
        "SELECT at, decision, scope, source, operator, reference FROM consent_events "
        "WHERE patient_id = ?1 ORDER BY at, id");
    ev.bind(1, patient);
    while (ev.step())
      pc.history.push_back(
          {ev.int64(0), ev.text(1), ev.text(2), ev.text(3), ev.text(4), ev.text(5)});
    auto st = db_->prepare(
        "SELECT DISTINCT s.study_uid FROM study_identifiers si JOIN patient_identifiers pi "
        "ON pi.kind = si.kind AND pi.issuer = si.issuer AND pi.value = si.value "
        "JOIN studies s ON s.id = si.study_id WHERE pi.patient_id = ?1 ORDER BY s.study_uid");
    st.bind(1, patient);
    while (st.step()) pc.study_uids.push_back(st.text(0));
    return std::optional<PatientConsent>(std::move(pc));
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<void> Catalog::put_mrn_health_number(const std::string& mrn_issuer, const std::string& mrn,
                                            const std::string& health_number,
                                            const std::string& source) {
  std::lock_guard lock(mutex_);
  try {
    db_->prepare(
           "INSERT INTO mrn_health_numbers(mrn_issuer, mrn, health_number, source, updated_at) "
           "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(mrn_issuer, mrn) DO UPDATE SET "
           "health_number = ?3, source = ?4, updated_at = ?5")
        .bind(1, mrn_issuer)
        .bind(2, mrn)
        .bind(3, health_number)
        .bind(4, source)
        .bind(5, to_epoch_ms(clock_.now()))
        .run();
    return {};
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<std::optional<std::string>> Catalog::health_number_for(const std::string& mrn_issuer,
                                                              const std::string& mrn) {
  std::lock_guard lock(mutex_);
  try {
    auto st = db_->prepare(
        "SELECT health_number FROM mrn_health_numbers WHERE mrn_issuer = ?1 AND mrn = ?2");
    st.bind(1, mrn_issuer).bind(2, mrn);
    if (!st.step()) return std::optional<std::string>();
    return std::optional<std::string>(st.text(0));
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<std::vector<StudySummary>> Catalog::quarantined(int limit) {
  return studies("QUARANTINED", limit);
}

Result<ActionResult> Catalog::release_quarantine(const std::string& study_uid) {
  return operator_action(study_uid, "", StudyState::kStable, "released from quarantine");
}

Result<ActionResult> Catalog::delete_quarantined(const std::string& study_uid,
                                                 std::vector<std::string>* objects_to_remove) {
  std::lock_guard lock(mutex_);
  try {
    Transaction tx(*db_);
    ActionResult r;
    auto st = db_->prepare("SELECT id FROM studies WHERE study_uid = ?1");
    st.bind(1, study_uid);
    if (!st.step()) return make_error(ErrorCode::kNotFound, "no such study");
    const std::int64_t id = st.int64(0);
    auto states = db_->prepare(
        "SELECT count(*), sum(state = 'QUARANTINED') FROM study_destinations WHERE study_id = ?1");
    states.bind(1, id);
    states.step();
    if (states.int64(0) != states.int64(1)) {
      r.refused.push_back("only a study quarantined for every destination can be deleted");
      return r;
    }
    // Objects no other instance uses go too.
    auto objs = db_->prepare(
        "SELECT DISTINCT i.object_sha256 FROM instances i WHERE i.study_id = ?1 AND NOT EXISTS "
        "(SELECT 1 FROM instances j WHERE j.object_sha256 = i.object_sha256 AND j.study_id != ?1)");
    objs.bind(1, id);
    std::vector<std::string> shas;
    while (objs.step()) shas.push_back(objs.text(0));
    for (const char* sql :
         {"DELETE FROM deliveries WHERE instance_id IN (SELECT id FROM instances WHERE study_id = "
          "?1)",
          "DELETE FROM derived_objects WHERE instance_id IN (SELECT id FROM instances WHERE "
          "study_id = ?1)",
          "DELETE FROM policy_findings WHERE study_id = ?1",
          "DELETE FROM study_identifiers WHERE study_id = ?1",
          "DELETE FROM study_destinations WHERE study_id = ?1",
          "DELETE FROM instances WHERE study_id = ?1", "DELETE FROM studies WHERE id = ?1"})
      db_->prepare(sql).bind(1, id).run();
    for (const auto& sha : shas)
      db_->prepare("DELETE FROM objects WHERE sha256 = ?1").bind(1, sha).run();
    tx.commit();
    if (objects_to_remove != nullptr) *objects_to_remove = shas;
    r.changed = 1;
    return r;
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<std::optional<std::pair<std::string, std::uint64_t>>> Catalog::derived_object(
    std::int64_t instance_id, const std::string& destination) {
  std::lock_guard lock(mutex_);
  try {
    auto st = db_->prepare(
        "SELECT sha256, size FROM derived_objects WHERE instance_id = ?1 AND destination = ?2");
    st.bind(1, instance_id).bind(2, destination);
    if (!st.step()) return std::optional<std::pair<std::string, std::uint64_t>>();
    return std::optional<std::pair<std::string, std::uint64_t>>(
        std::make_pair(st.text(0), static_cast<std::uint64_t>(st.int64(1))));
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

void Catalog::append_audit(audit::Event e) {
  audit::Anchor prev;
  {
    auto last = db_->prepare("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1");
    if (last.step()) prev = audit::Anchor{last.int64(0), last.text(1)};
  }
  if (e.at_ms == 0) e.at_ms = to_epoch_ms(clock_.now());
  const audit::Event sealed = audit::seal(std::move(e), prev);
  db_->prepare(
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

Result<void> Catalog::audit(audit::Event event) {
  std::lock_guard lock(mutex_);
  try {
    Transaction tx(*db_);
    append_audit(std::move(event));
    tx.commit();
    return {};
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

namespace {
constexpr const char* kAuditColumns =
    "SELECT seq, at, type, actor, outcome, study_uid, sop_instance_uid, destination, patient_ref, "
    "detail, prev_hash, hash FROM audit_events ";

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
}  // namespace

Result<audit::VerifyResult> Catalog::verify_audit(const std::optional<audit::Anchor>& anchor) {
  std::lock_guard lock(mutex_);
  try {
    audit::Verifier v(audit::ChainHasher::plain(), audit::Anchor{}, anchor);
    auto st = db_->prepare(std::string(kAuditColumns) + "ORDER BY seq");
    while (st.step()) {
      auto e = audit_row(st);
      if (!e) {
        v.reject(st.int64(0), e.error().detail);
        break;
      }
      if (!v.add(*e)) break;
    }
    return v.finish();
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<std::vector<audit::Event>> Catalog::read_audit(const char* where, std::int64_t bound,
                                                      int limit) {
  std::lock_guard lock(mutex_);
  try {
    std::vector<audit::Event> out;
    auto st = db_->prepare(std::string(kAuditColumns) + where + " ORDER BY seq LIMIT ?2");
    st.bind(1, bound).bind(2, limit);
    while (st.step()) {
      auto e = audit_row(st);
      if (e) out.push_back(std::move(e).value());
    }
    return out;
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

Result<std::vector<audit::Event>> Catalog::audit_since(std::int64_t since_ms, int limit) {
  return read_audit("WHERE at >= ?1", since_ms, limit);
}

Result<std::vector<audit::Event>> Catalog::audit_after(std::int64_t after_seq, int limit) {
  return read_audit("WHERE seq > ?1", after_seq, limit);
}

Result<audit::Anchor> Catalog::audit_head() {
  std::lock_guard lock(mutex_);
  try {
    auto last = db_->prepare("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1");
    if (last.step()) return audit::Anchor{last.int64(0), last.text(1)};
    return audit::Anchor{};
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

}  // namespace dirgw::catalog
