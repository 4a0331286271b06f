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
      db_->prepare(
             "INSERT INTO deliveries(instance_id, destination, state, round) "
             "VALUES (?1, ?2, 'pending', ?3)")
          .bind(1, instance_id)
          .bind(2, dest)
          .bind(3, round)
          .run();
    }
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
      // RECEIVING -> STABLE -> READY: the policy stage (consent, validation, coercion) will
      // decide between READY, HELD and QUARANTINED here; until it exists, policy admits all.
      db_->prepare(
             "UPDATE study_destinations SET state = 'READY', updated_at = ?2 "
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
        "i.object_sha256, i.size, d.attempts, i.received_at, coalesce(d.first_failure_at, 0) "
        "FROM deliveries d "
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

Result<void> Catalog::mark_sending(const std::string& destination,
                                   const std::vector<std::int64_t>& study_ids) {
  std::lock_guard lock(mutex_);
  const std::int64_t now = to_epoch_ms(clock_.now());
  try {
    Transaction tx(*db_);
    (void)now;
    for (auto id : std::set<std::int64_t>(study_ids.begin(), study_ids.end()))
      transition(id, destination, StudyState::kSending, Cause::kSendStarted, "");
    tx.commit();
    return {};
  } catch (const SqliteError& e) {
    return db_error(e);
  }
}

void Catalog::refresh_study_state(std::int64_t study_id, const std::string& destination) {
  const std::int64_t now = to_epoch_ms(clock_.now());
  auto cur =
      db_->prepare("SELECT state FROM study_destinations WHERE study_id = ?1 AND destination = ?2");
  cur.bind(1, study_id).bind(2, destination);
  if (!cur.step()) return;
  const std::string state = cur.text(0);
  // A study that went back to RECEIVING (a late instance) keeps that state.
  if (state != kSending && state != kReady && state != kRetryWait) return;
  auto counts = db_->prepare(
      "SELECT sum(d.state = 'pending'), sum(d.state = 'failed'), "
      "sum(d.state = 'pending' AND d.next_attempt_at <= ?3) "
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
    return;
  auto up = db_->prepare(
      "UPDATE study_destinations SET state = ?3, reason = ?4, updated_at = ?5, "
      "sent_at = CASE WHEN ?3 = 'SENT' THEN ?5 ELSE sent_at END "
      "WHERE study_id = ?1 AND destination = ?2");
  up.bind(1, study_id).bind(2, destination).bind(3, next).bind(4, reason).bind(5, now).run();
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
    for (const auto& u : updates) {
      const char* state = u.result == DeliveryResult::kDelivered ? "sent"
                          : u.result == DeliveryResult::kRefused ? "failed"
                                                                 : "pending";
      db_->prepare(
             "UPDATE deliveries SET state = ?3, attempts = attempts + 1, last_error = ?4, "
             "next_attempt_at = ?5, sent_at = CASE WHEN ?3 = 'sent' THEN ?6 ELSE sent_at END, "
             "first_failure_at = CASE WHEN ?3 = 'sent' THEN first_failure_at "
             "ELSE coalesce(first_failure_at, ?6) END "
             "WHERE instance_id = ?1 AND destination = ?2 AND state = 'pending'")
          .bind(1, u.instance_id)
          .bind(2, destination)
          .bind(3, state)
          .bind(4, u.error)
          .bind(5, u.next_attempt_at)
          .bind(6, now)
          .run();
      any_sent = any_sent || u.result == DeliveryResult::kDelivered;
      if (u.result != DeliveryResult::kDelivered && !u.error.empty()) last_error = u.error;
      auto sid = db_->prepare("SELECT study_id FROM instances WHERE id = ?1");
      sid.bind(1, u.instance_id);
      if (sid.step()) studies.insert(sid.int64(0));
    }
    for (auto id : studies) refresh_study_state(id, destination);
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
          "WHERE d.destination = ?1 AND d.state = 'pending'");
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
        "sum(d.state = 'pending'), coalesce(min(d.sent_at), 0), coalesce(max(d.sent_at), 0) "
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

}  // namespace dirgw::catalog
