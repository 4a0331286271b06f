#include "catalog/ingest_ledger.h"

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "catalog/internal.h"

namespace dirgw::catalog {

namespace {
// Every destination row of the study not yet sent becomes QUARANTINED for the conflict. Rows
// already SENT (or later) keep their state: what left cannot be recalled, and a new round for the
// conflicting instance was opened above (so it is this study's RECEIVING row that is held).
void quarantine_identity_conflict(Connection& db, const Clock& clock, std::int64_t study_id,
                                  const std::string& sop_uid, std::int64_t now) {
  // The finding `dirgw quarantine show` lists; the policy stage rewrites it on every run.
  db.prepare(
        "DELETE FROM policy_findings WHERE study_id = ?1 AND sop_instance_uid = ?2 AND code = ?3")
      .bind(1, study_id)
      .bind(2, sop_uid)
      .bind(3, reason::kIdentityConflict)
      .run();
  db.prepare(
        "INSERT INTO policy_findings(study_id, sop_instance_uid, code, tag, message, at) "
        "VALUES (?1, ?2, ?3, '', ?4, ?5)")
      .bind(1, study_id)
      .bind(2, sop_uid)
      .bind(3, reason::kIdentityConflict)
      .bind(4, reason::kIdentityConflictText)
      .bind(5, now)
      .run();
  std::vector<std::pair<std::string, StudyState>> moving;  // for their audit events
  {
    auto st = db.prepare(
        "SELECT destination, state FROM study_destinations WHERE study_id = ?1 AND state NOT IN "
        "('SENT', 'VERIFIED', 'PURGED', 'WITHDRAWN', 'QUARANTINED')");
    st.bind(1, study_id);
    while (st.step())
      moving.emplace_back(st.text(0),
                          parse_study_state(st.text(1)).value_or(StudyState::kReceiving));
  }
  for (const auto& [dest, from] : moving)
    audit_decision(db, clock, study_id, dest, from, StudyState::kQuarantined, Cause::kNewInstance,
                   reason::kIdentityConflict);
  db.prepare(
        "UPDATE study_destinations SET state = 'QUARANTINED', reason_code = ?2, reason = ?3, "
        "updated_at = ?4 WHERE study_id = ?1 AND state NOT IN ('SENT', 'VERIFIED', 'PURGED', "
        "'WITHDRAWN')")
      .bind(1, study_id)
      .bind(2, reason::kIdentityConflict)
      .bind(3, reason::kIdentityConflictText)
      .bind(4, now)
      .run();
}
}  // namespace

Result<RecordOutcome> IngestLedger::record_instance(const NewInstance& in,
                                                    NewVersionPolicy new_versions) {
  const std::int64_t now = db_.now_ms();
  return db_.write([&](Connection& db) -> Result<RecordOutcome> {
    RecordOutcome out = record_in(db, in, new_versions, now);
    // The same instance held in other bytes: its data is not kept, so not made durable either.
    if (in.before_commit && !out.other_bytes && !out.content_needed) {
      if (auto durable = in.before_commit(); !durable) return durable.error();  // rolls back
    }
    return out;
  });
}

std::vector<Result<RecordOutcome>> IngestLedger::record_instances(
    const std::vector<const NewInstance*>& batch, NewVersionPolicy new_versions) {
  const std::int64_t now = db_.now_ms();
  std::vector<Result<RecordOutcome>> out;
  out.reserve(batch.size());
  // One transaction, one COMMIT (one WAL flush) for the batch; each instance in a savepoint of
  // its own, so that one that fails is rolled back alone and the others still commit.
  auto committed = db_.write([&](Connection& db) {
    for (const NewInstance* in : batch) {
      db.exec("SAVEPOINT instance");
      try {
        RecordOutcome recorded = record_in(db, *in, new_versions, now);
        // The object's data is made durable before its rows can commit; if it cannot be, its
        // rows go and the others of the group still commit.
        const bool not_kept = recorded.other_bytes || recorded.content_needed;
        Result<void> durable =
            in->before_commit && !not_kept ? in->before_commit() : Result<void>{};
        if (!durable) {
          db.exec("ROLLBACK TO instance");
          out.push_back(durable.error());
        } else {
          out.push_back(recorded);
        }
        db.exec("RELEASE instance");
      } catch (const sqlite::SqliteError& e) {
        db.exec("ROLLBACK TO instance");
        db.exec("RELEASE instance");
        out.push_back(db_error(e));
      }
    }
  });
  if (!committed) {
    // The COMMIT itself failed: nothing of the batch is durable, every instance fails.
    out.assign(batch.size(), Result<RecordOutcome>(committed.error()));
  }
  return out;
}

// Over 80 lines: one transaction whose steps (duplicate, study, version or identity conflict,
// per-destination rows, conflict quarantine) share its state; splitting it is left to a later
// change (noted in issue 17's work). Throws sqlite::SqliteError (the caller's transaction or
// savepoint rolls back).
RecordOutcome IngestLedger::record_in(Connection& db, const NewInstance& in,
                                      NewVersionPolicy new_versions, std::int64_t now) {
  bool held_in_other_bytes = false;  // this SOP Instance UID is held, none with these bytes
  {
    // One lookup for the usual path (a new SOP Instance UID) and both duplicate cases: the row
    // with these bytes first, when there is one.
    auto dup = db.prepare(
        "SELECT id, object_sha256 = ?2 FROM instances WHERE sop_instance_uid = ?1 ORDER BY 2 DESC "
        "LIMIT 1");
    dup.bind(1, in.sop_instance_uid).bind(2, in.sha256);
    const bool found = dup.step();
    if (found && dup.int64(1) == 0) {
      held_in_other_bytes = true;
    } else if (found) {
      RecordOutcome out{RecordKind::kDuplicate, dup.int64(0), false};
      // Received again after retention removed it: the spool holds the file once more.
      db.prepare(
            "UPDATE objects SET purged_at = NULL WHERE sha256 = ?1 AND purged_at IS NOT "
            "NULL")
          .bind(1, in.sha256)
          .run();
      append_audit(db, db_.clock(), received_event(in, {{"duplicate", true}}));
      return out;
    }
  }
  if (held_in_other_bytes && in.content && in.content->defer && !in.content->own)
    return RecordOutcome{RecordKind::kDuplicate, 0, false, false, true};
  std::string content_key;
  if (const std::int64_t held =
          held_in_other_bytes ? held_with_same_content(db, in, content_key) : 0;
      held != 0) {
    append_audit(db, db_.clock(), received_event(in, {{"duplicate", true}, {"other_bytes", true}}));
    return RecordOutcome{RecordKind::kDuplicate, held, false, true};
  }
  db.prepare("INSERT OR IGNORE INTO objects(sha256, size, created_at) VALUES (?1, ?2, ?3)")
      .bind(1, in.sha256)
      .bind(2, static_cast<std::int64_t>(in.size))
      .bind(3, now)
      .run();
  if (!content_key.empty())
    db.prepare("UPDATE objects SET content_key = ?2 WHERE sha256 = ?1")
        .bind(1, in.sha256)
        .bind(2, content_key)
        .run();
  std::int64_t study_id = 0;
  bool opened = false;  // the study (or one of its destinations) starts RECEIVING now
  {
    auto find = db.prepare("SELECT id, state FROM studies WHERE study_uid = ?1");
    find.bind(1, in.study_uid);
    if (find.step()) {
      study_id = find.int64(0);
      opened = find.text(1) != "RECEIVING";
    } else {
      opened = true;
      db.prepare(
            "INSERT INTO studies(study_uid, state, first_received_at, last_received_at) "
            "VALUES (?1, 'RECEIVING', ?2, ?2)")
          .bind(1, in.study_uid)
          .bind(2, now)
          .run();
      study_id = db.last_insert_rowid();
    }
  }
  RecordKind kind = RecordKind::kNew;
  // Other studies holding this SOP Instance UID with another identity (this one included when
  // the patient differs within the study).
  std::set<std::int64_t> conflicting;
  {
    auto other =
        db.prepare("SELECT study_id, patient_identity FROM instances WHERE sop_instance_uid = ?1");
    other.bind(1, in.sop_instance_uid);
    while (other.step()) {
      if (kind == RecordKind::kNew) kind = RecordKind::kNewVersion;
      const std::string identity = other.text(1);
      const bool other_patient =
          !identity.empty() && !in.patient_identity.empty() && identity != in.patient_identity;
      if (other.int64(0) != study_id || other_patient) {
        conflicting.insert(other.int64(0));
        conflicting.insert(study_id);
      }
    }
    if (!conflicting.empty()) kind = RecordKind::kIdentityConflict;
  }
  db.prepare(
        "INSERT INTO instances(study_id, sop_instance_uid, sop_class_uid, series_uid, "
        "transfer_syntax, modality, object_sha256, size, received_at, calling_ae, peer, flags, "
        "patient_identity, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
        "?13, "
        "?14)")
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
      .bind(12, kind == RecordKind::kNewVersion         ? "new-version"
                : kind == RecordKind::kIdentityConflict ? "identity-conflict"
                                                        : "")
      .bind(13, in.patient_identity)
      .bind(14, in.source)
      .run();
  const std::int64_t instance_id = db.last_insert_rowid();
  if (kind == RecordKind::kNewVersion) {
    // Only the newest version of an SOP instance is sent: older versions still waiting are
    // superseded (a corrected image replaces the wrong one before it leaves).
    db.prepare(
          "UPDATE deliveries SET state = 'superseded' WHERE state = 'pending' AND instance_id "
          "IN (SELECT id FROM instances WHERE sop_instance_uid = ?1 AND id != ?2)")
        .bind(1, in.sop_instance_uid)
        .bind(2, instance_id)
        .run();
  }
  db.prepare(
        "UPDATE studies SET state = 'RECEIVING', last_received_at = ?2, "
        "instance_count = instance_count + 1, byte_count = byte_count + ?3 WHERE id = ?1")
      .bind(1, study_id)
      .bind(2, now)
      .bind(3, static_cast<std::int64_t>(in.size))
      .run();
  for (const auto& dest : db_.destinations()) {
    int round = 1;
    auto cur = db.prepare(
        "SELECT state, round FROM study_destinations WHERE study_id = ?1 AND destination = ?2");
    cur.bind(1, study_id).bind(2, dest);
    if (!cur.step()) {
      opened = true;
      db.prepare(
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
        // instances go. HELD and WITHDRAWN keep their state; QUARANTINED is judged again.
        const bool new_round = state == StudyState::kSent || state == StudyState::kVerified ||
                               state == StudyState::kPurged || state == StudyState::kFailed;
        if (new_round) ++round;
        opened = true;
        db.prepare(
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
      db.prepare(
            "UPDATE study_destinations SET state = 'HELD', updated_at = ?3, reason_code = "
            "'new-version', reason = "
            "'an instance was received again with different bytes' "
            "WHERE study_id = ?1 AND destination = ?2 AND state NOT IN ('WITHDRAWN', "
            "'QUARANTINED')")
          .bind(1, study_id)
          .bind(2, dest)
          .bind(3, now)
          .run();
      if (db.changes() > 0)
        audit_decision(db, db_.clock(), study_id, dest, StudyState::kReceiving, StudyState::kHeld,
                       Cause::kNewInstance, reason::kNewVersion);
    }
    // A late instance of a withdrawn study is withdrawn on arrival: never pending, never sent.
    const bool withdrawn = !cur.is_null(0) && cur.text(0) == "WITHDRAWN";
    db.prepare(
          "INSERT INTO deliveries(instance_id, destination, state, round, study_id) "
          "VALUES (?1, ?2, ?4, ?3, ?5)")
        .bind(1, instance_id)
        .bind(2, dest)
        .bind(3, round)
        .bind(4, withdrawn ? "withdrawn" : "pending")
        .bind(5, study_id)
        .run();
  }
  // Nothing of either version leaves until a person decides (docs/ingest-dicom.md).
  for (const std::int64_t id : conflicting)
    quarantine_identity_conflict(db, db_.clock(), id, in.sop_instance_uid, now);
  append_audit(db, db_.clock(),
               received_event(in, {{"bytes", in.size},
                                   {"new_version", kind == RecordKind::kNewVersion},
                                   {"identity_conflict", kind == RecordKind::kIdentityConflict}}));
  // A new version or an identity conflict changes the study's course: wake as for a new one.
  return RecordOutcome{kind, instance_id, opened || kind != RecordKind::kNew};
}

namespace {

// Newest first; a few suffice (an instance with more versions than that is a rare thing).
constexpr const char* kHeldVersions =
    "SELECT i.id, i.object_sha256, o.content_key FROM instances i JOIN objects o ON o.sha256 = "
    "i.object_sha256 WHERE i.sop_instance_uid = ?1 ORDER BY i.id DESC LIMIT 4";

}  // namespace

Result<std::vector<IngestLedger::HeldVersion>> IngestLedger::held_versions(
    const std::string& sop_instance_uid) {
  return db_.read([&](Connection& db) {
    std::vector<HeldVersion> out;
    auto st = db.prepare(kHeldVersions);
    st.bind(1, sop_instance_uid);
    while (st.step())
      out.push_back(
          {st.text(1), st.is_null(2) ? std::nullopt : std::optional<std::string>(st.text(2))});
    return out;
  });
}

std::int64_t IngestLedger::held_with_same_content(Connection& db, const NewInstance& in,
                                                  std::string& key) {
  if (!in.content) return 0;
  struct Held {
    std::int64_t id;
    std::string sha256;
    std::optional<std::string> key;
  };
  std::vector<Held> held;
  {
    auto st = db.prepare(kHeldVersions);
    st.bind(1, in.sop_instance_uid);
    while (st.step())
      held.push_back({st.int64(0), st.text(1),
                      st.is_null(2) ? std::nullopt : std::optional<std::string>(st.text(2))});
  }
  if (held.empty()) return 0;
  // Read before the transaction when it could be (CatalogSink); then only its file's presence.
  std::optional<std::string> own;
  if (!in.content->own)
    own = in.content->key();
  else if (!in.content->present || in.content->present())
    own = in.content->own;
  // Unreadable (another door's duplicate of the same bytes removed the file it shares): this
  // object fails and its sender tries again, rather than recording a row without its file.
  if (!own)
    throw sqlite::SqliteError(SQLITE_IOERR,
                              "the received object cannot be read to compare it with the version "
                              "held; try again");
  key = std::move(*own);
  for (auto& h : held) {
    if (!h.key) {
      const auto before = in.content->stored.find(h.sha256);
      h.key =
          before != in.content->stored.end() ? before->second : in.content->stored_key(h.sha256);
      if (h.key->empty()) continue;  // its file is gone: nothing to compare with
      db.prepare("UPDATE objects SET content_key = ?2 WHERE sha256 = ?1")
          .bind(1, h.sha256)
          .bind(2, *h.key)
          .run();
    }
    if (in.content->same(*h.key, key)) return h.id;
  }
  return 0;
}

Result<bool> IngestLedger::remove_unreferenced(const std::string& sha256,
                                               const std::function<Result<void>()>& remove) {
  return db_.locked([&](Connection& db) -> Result<bool> {
    auto st = db.prepare("SELECT 1 FROM objects WHERE sha256 = ?1");
    st.bind(1, sha256);
    if (st.step()) return false;
    if (auto r = remove(); !r) return r.error();
    return true;
  });
}

Result<void> IngestLedger::record_refusal(const Refusal& r) {
  return db_.locked([&](Connection& db) -> Result<void> {
    db.prepare(
          "INSERT INTO refusals(at, source, calling_ae, peer, reason, reason_code) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        .bind(1, r.at != 0 ? r.at : to_epoch_ms(db_.clock().now()))
        .bind(2, r.source)
        .bind(3, r.calling_ae)
        .bind(4, r.peer)
        .bind(5, r.reason)
        .bind(6, r.code)
        .run();
    return {};
  });
}

Result<int> IngestLedger::promote_stable(std::int64_t cutoff_ms) {
  const std::int64_t now = db_.now_ms();
  return db_.write([&](Connection& db) -> Result<int> {
    std::vector<std::int64_t> ids;
    {
      auto st =
          db.prepare("SELECT id FROM studies WHERE state = 'RECEIVING' AND last_received_at <= ?1");
      st.bind(1, cutoff_ms);
      while (st.step()) ids.push_back(st.int64(0));
    }
    for (auto id : ids) {
      db.prepare("UPDATE studies SET state = 'STABLE' WHERE id = ?1").bind(1, id).run();
      // RECEIVING -> STABLE; the policy stage (consent, validation, coercion) decides next.
      db.prepare(
            "UPDATE study_destinations SET state = 'STABLE', updated_at = ?2 "
            "WHERE study_id = ?1 AND state = 'RECEIVING'")
          .bind(1, id)
          .bind(2, now)
          .run();
    }
    return static_cast<int>(ids.size());
  });
}

Result<std::optional<std::int64_t>> IngestLedger::oldest_receiving() {
  return db_.locked([&](Connection& db) -> Result<std::optional<std::int64_t>> {
    auto st = db.prepare("SELECT min(last_received_at) FROM studies WHERE state = 'RECEIVING'");
    st.step();
    if (st.is_null(0)) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(st.int64(0));
  });
}

Result<bool> IngestLedger::has_object(const std::string& sha256) {
  return db_.locked([&](Connection& db) -> Result<bool> {
    auto st = db.prepare("SELECT 1 FROM objects WHERE sha256 = ?1");
    st.bind(1, sha256);
    return st.step();
  });
}

Result<std::vector<std::string>> IngestLedger::object_hashes(const std::string& shard) {
  return db_.locked([&](Connection& db) -> Result<std::vector<std::string>> {
    std::vector<std::string> out;
    // Originals only: derived objects live in spool/derived/, which the spool's listing of
    // received objects does not include (counting them made every coerced object "missing" at
    // each start). Through the partial index of unpurged objects: purged rows are never read.
    auto st = db.prepare(
        "SELECT sha256 FROM objects INDEXED BY objects_unpurged WHERE purged_at IS NULL "
        "AND sha256 >= ?1 AND sha256 < ?2 "
        "AND NOT EXISTS (SELECT 1 FROM derived_objects d WHERE d.sha256 = objects.sha256) "
        "ORDER BY sha256");
    st.bind(1, shard).bind(2, shard.empty() ? std::string("g") : shard + "g");
    while (st.step()) out.push_back(st.text(0));
    return out;
  });
}

Result<void> IngestLedger::each_open_object(const std::function<void(const std::string&)>& each) {
  return db_.read([&](Connection& db) -> Result<void> {
    auto st = db.prepare(
        "SELECT i.object_sha256 FROM deliveries d JOIN instances i ON i.id = d.instance_id "
        "WHERE d.destination = ?1 AND d.state IN ('pending', 'sending')");
    for (const auto& dest : db_.destinations()) {
      st.reset();
      st.bind(1, dest);
      while (st.step()) each(st.text(0));
    }
    return {};
  });
}

Result<bool> IngestLedger::begin_run() {
  const std::int64_t now = db_.now_ms();
  return db_.write([&](Connection& db) -> Result<bool> {
    auto last =
        db.prepare("SELECT stopped_at IS NOT NULL FROM daemon_runs ORDER BY id DESC LIMIT 1");
    const bool ordered = last.step() && last.int64(0) != 0;
    db.prepare("INSERT INTO daemon_runs(started_at) VALUES (?1)").bind(1, now).run();
    return ordered;
  });
}

Result<void> IngestLedger::end_run() {
  const std::int64_t now = db_.now_ms();
  return db_.write([&](Connection& db) {
    db.prepare(
          "UPDATE daemon_runs SET stopped_at = ?1 WHERE id = (SELECT max(id) FROM daemon_runs)")
        .bind(1, now)
        .run();
  });
}

Result<int> IngestLedger::flag_missing_object(const std::string& sha256) {
  return db_.write([&](Connection& db) -> Result<int> {
    std::set<std::pair<std::int64_t, std::string>> touched;
    auto st = db.prepare(
        "SELECT d.instance_id, d.destination, i.study_id FROM deliveries d "
        "JOIN instances i ON i.id = d.instance_id "
        "WHERE i.object_sha256 = ?1 AND d.state = 'pending'");
    st.bind(1, sha256);
    std::vector<std::tuple<std::int64_t, std::string, std::int64_t>> rows;
    while (st.step()) rows.emplace_back(st.int64(0), st.text(1), st.int64(2));
    for (const auto& [instance_id, dest, study_id] : rows) {
      db.prepare(
            "UPDATE deliveries SET state = 'failed', last_error = 'spool file missing' "
            "WHERE instance_id = ?1 AND destination = ?2")
          .bind(1, instance_id)
          .bind(2, dest)
          .run();
      touched.insert({study_id, dest});
    }
    for (const auto& [study_id, dest] : touched)
      refresh_study_state(db, db_.clock(), study_id, dest);
    return static_cast<int>(rows.size());
  });
}

Result<void> IngestLedger::record_reconciliation(const Reconciliation& r) {
  return db_.locked([&](Connection& db) -> Result<void> {
    db.prepare(
          "INSERT INTO reconciliations(at, temporaries, adopted, quarantined, missing) "
          "VALUES (?1, ?2, ?3, ?4, ?5)")
        .bind(1, r.at != 0 ? r.at : to_epoch_ms(db_.clock().now()))
        .bind(2, r.temporaries)
        .bind(3, r.adopted)
        .bind(4, r.quarantined)
        .bind(5, r.missing)
        .run();
    return {};
  });
}

}  // namespace dirgw::catalog
