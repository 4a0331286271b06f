#include "catalog/report_ledger.h"

namespace dirgw::catalog {

namespace {

// The columns row() reads; `message` may be left out (read as ''): it holds patient data.
std::string columns(bool with_message = true) {
  return std::string("SELECT id, message_key, report_key, accession, status, state, reason, ") +
         (with_message ? "message" : "''") +
         ", received_at, study_uid, sop_instance_uid, sop_class_uid, series_uid, version FROM "
         "hl7_reports ";
}

StoredReport row(sqlite::Statement& st) {
  StoredReport r;
  r.id = st.int64(0);
  r.message_key = st.text(1);
  r.report_key = st.text(2);
  r.accession = st.text(3);
  r.status = st.text(4);
  r.state = st.text(5);
  r.reason = st.text(6);
  r.message = st.text(7);
  r.received_at = st.int64(8);
  r.study_uid = st.text(9);
  r.sop_instance_uid = st.text(10);
  r.sop_class_uid = st.text(11);
  r.series_uid = st.text(12);
  r.version = static_cast<int>(st.int64(13));
  return r;
}

}  // namespace

Result<ReportAdded> ReportLedger::add(const std::string& message_key, const std::string& report_key,
                                      const std::string& accession, const std::string& status,
                                      const std::string& state, const std::string& message,
                                      const std::string& body_sha256) {
  return db_.write([&](Connection& db) -> Result<ReportAdded> {
    // A row under this key: the same message when its content is the same (or unknown: stored
    // before schema 30); else the control ID was used again, and this message is keyed by its
    // content too.
    std::string key = message_key;
    bool reused = false;
    for (int pass = 0; pass < 2; ++pass) {
      auto known = db.prepare("SELECT id, body_sha256 FROM hl7_reports WHERE message_key = ?1");
      known.bind(1, key);
      if (!known.step()) break;
      if (known.text(1).empty() || known.text(1) == body_sha256)
        return ReportAdded{known.int64(0), true, reused};
      key = message_key + "#" + body_sha256.substr(0, 16);
      reused = true;
    }
    // The same content as the newest version already made of this report (an engine's "resend
    // result" under a new control ID): known.
    auto latest = db.prepare(
        "SELECT id, body_sha256 FROM hl7_reports WHERE report_key = ?1 AND state = 'done' "
        "ORDER BY version DESC LIMIT 1");
    latest.bind(1, report_key);
    if (!body_sha256.empty() && latest.step() && latest.text(1) == body_sha256)
      return ReportAdded{latest.int64(0), true, reused};
    const std::int64_t now = db_.now_ms();
    db.prepare(
          "INSERT INTO hl7_reports(message_key, report_key, accession, status, state, message, "
          "received_at, updated_at, body_sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)")
        .bind(1, key)
        .bind(2, report_key)
        .bind(3, accession)
        .bind(4, status)
        .bind(5, state)
        .bind(6, message)
        .bind(7, now)
        .bind(8, body_sha256)
        .run();
    return ReportAdded{db.last_insert_rowid(), false, reused};
  });
}

Result<std::optional<StoredReport>> ReportLedger::get(std::int64_t id) {
  return db_.locked([&](Connection& db) -> Result<std::optional<StoredReport>> {
    auto st = db.prepare(columns() + "WHERE id = ?1");
    st.bind(1, id);
    if (!st.step()) return std::optional<StoredReport>();
    return std::optional<StoredReport>(row(st));
  });
}

Result<std::vector<StoredReport>> ReportLedger::in_state(const std::string& state, int limit) {
  return db_.locked([&](Connection& db) -> Result<std::vector<StoredReport>> {
    auto st = db.prepare(columns() + "WHERE state = ?1 ORDER BY id LIMIT ?2");
    st.bind(1, state).bind(2, limit);
    std::vector<StoredReport> out;
    while (st.step()) out.push_back(row(st));
    return out;
  });
}

Result<std::optional<StoredReport>> ReportLedger::latest_version(const std::string& report_key) {
  return db_.locked([&](Connection& db) -> Result<std::optional<StoredReport>> {
    auto st = db.prepare(columns() +
                         "WHERE report_key = ?1 AND state = 'done' ORDER BY version DESC LIMIT 1");
    st.bind(1, report_key);
    if (!st.step()) return std::optional<StoredReport>();
    return std::optional<StoredReport>(row(st));
  });
}

Result<void> ReportLedger::mark_done(const StoredReport& d) {
  return db_.write([&](Connection& db) -> Result<void> {
    const std::int64_t now = db_.now_ms();
    db.prepare(
          "UPDATE hl7_reports SET state = 'done', reason = '', message = '', study_uid = ?2, "
          "sop_instance_uid = ?3, sop_class_uid = ?4, series_uid = ?5, version = ?6, "
          "updated_at = ?7 WHERE id = ?1")
        .bind(1, d.id)
        .bind(2, d.study_uid)
        .bind(3, d.sop_instance_uid)
        .bind(4, d.sop_class_uid)
        .bind(5, d.series_uid)
        .bind(6, d.version)
        .bind(7, now)
        .run();
    db.prepare(
          "UPDATE hl7_reports SET state = 'superseded', reason = 'a later version was sent', "
          "message = '', updated_at = ?3 WHERE report_key = ?1 AND state = 'held' AND id < ?2")
        .bind(1, d.report_key)
        .bind(2, d.id)
        .bind(3, now)
        .run();
    return {};
  });
}

Result<void> ReportLedger::mark(std::int64_t id, const std::string& state,
                                const std::string& reason) {
  return db_.write([&](Connection& db) -> Result<void> {
    db.prepare("UPDATE hl7_reports SET state = ?2, reason = ?3, updated_at = ?4 WHERE id = ?1")
        .bind(1, id)
        .bind(2, state)
        .bind(3, reason)
        .bind(4, db_.now_ms())
        .run();
    return {};
  });
}

Result<void> ReportLedger::wait_again(std::int64_t id) {
  return db_.write([&](Connection& db) -> Result<void> {
    const std::int64_t now = db_.now_ms();
    db.prepare(
          "UPDATE hl7_reports SET state = 'waiting', reason = '', received_at = ?2, "
          "updated_at = ?2 WHERE id = ?1")
        .bind(1, id)
        .bind(2, now)
        .run();
    return {};
  });
}

Result<int> ReportLedger::expire_waiting(std::int64_t max_age_ms, int max_waiting) {
  return db_.write([&](Connection& db) -> Result<int> {
    const std::int64_t now = db_.now_ms();
    const std::int64_t received_before = now - max_age_ms;
    db.prepare(
          "UPDATE hl7_reports SET state = 'expired', updated_at = ?2, reason = 'no study with its "
          "accession number arrived within ingest.hl7.reports.max_waiting_age' WHERE state = "
          "'waiting' AND received_at < ?1")
        .bind(1, received_before)
        .bind(2, now)
        .run();
    int expired = db.changes();
    db.prepare(
          "UPDATE hl7_reports SET state = 'expired', updated_at = ?2, reason = 'more than "
          "ingest.hl7.reports.max_waiting reports waiting: the oldest expired' WHERE id IN "
          "(SELECT id FROM hl7_reports WHERE state = 'waiting' ORDER BY id LIMIT max(0, "
          "(SELECT count(*) FROM hl7_reports WHERE state = 'waiting') - ?1))")
        .bind(1, max_waiting)
        .bind(2, now)
        .run();
    expired += db.changes();
    return expired;
  });
}

Result<std::vector<ReportCounts>> ReportLedger::counts() {
  return db_.read([&](Connection& db) -> Result<std::vector<ReportCounts>> {
    auto st = db.prepare(
        "SELECT state, COUNT(*), MIN(received_at) FROM hl7_reports GROUP BY state ORDER BY state");
    std::vector<ReportCounts> out;
    while (st.step()) out.push_back({st.text(0), st.int64(1), st.int64(2)});
    return out;
  });
}

Result<std::vector<StoredReport>> ReportLedger::recent(const std::string& state, int limit) {
  return db_.read([&](Connection& db) -> Result<std::vector<StoredReport>> {
    auto st =
        db.prepare(columns(false) + (state.empty() ? "ORDER BY id DESC LIMIT ?1"
                                                   : "WHERE state = ?2 ORDER BY id DESC LIMIT ?1"));
    st.bind(1, limit);
    if (!state.empty()) st.bind(2, state);
    std::vector<StoredReport> out;
    while (st.step()) out.push_back(row(st));
    return out;
  });
}

Result<std::vector<StudyToIndex>> ReportLedger::unindexed_studies(int limit) {
  return db_.locked([&](Connection& db) -> Result<std::vector<StudyToIndex>> {
    auto st = db.prepare(
        "SELECT s.id, COALESCE((SELECT i.object_sha256 FROM instances i WHERE i.study_id = s.id "
        "AND i.source NOT LIKE 'hl7:%' ORDER BY i.id LIMIT 1), '') FROM studies s "
        "WHERE s.id > (SELECT COALESCE(MAX(study_id), 0) FROM study_accessions) "
        "ORDER BY s.id LIMIT ?1");
    st.bind(1, limit);
    std::vector<StudyToIndex> out;
    while (st.step()) out.push_back({st.int64(0), st.text(1)});
    return out;
  });
}

Result<std::vector<StudyToIndex>> ReportLedger::blank_accession_studies(int limit) {
  return db_.locked([&](Connection& db) -> Result<std::vector<StudyToIndex>> {
    auto st = db.prepare(
        "SELECT study_id, newest FROM (SELECT a.study_id, a.image_sha256, (SELECT i.object_sha256 "
        "FROM instances i WHERE i.study_id = a.study_id AND i.source NOT LIKE 'hl7:%' ORDER BY "
        "i.id DESC LIMIT 1) AS newest FROM study_accessions a WHERE a.accession = '' ORDER BY "
        "a.study_id DESC LIMIT 1000) WHERE newest IS NOT NULL AND newest <> image_sha256 "
        "ORDER BY study_id LIMIT ?1");
    st.bind(1, limit);
    std::vector<StudyToIndex> out;
    while (st.step()) out.push_back({st.int64(0), st.text(1)});
    return out;
  });
}

Result<void> ReportLedger::put_accession(std::int64_t study_id, const std::string& accession,
                                         const std::string& patient_id,
                                         const std::string& image_sha256) {
  return db_.locked([&](Connection& db) -> Result<void> {
    db.prepare(
          "INSERT OR REPLACE INTO study_accessions(study_id, accession, patient_id, "
          "image_sha256) VALUES (?1, ?2, ?3, ?4)")
        .bind(1, study_id)
        .bind(2, accession)
        .bind(3, patient_id)
        .bind(4, image_sha256)
        .run();
    return {};
  });
}

Result<std::vector<StudyMatch>> ReportLedger::studies_with_accession(const std::string& accession) {
  return db_.locked([&](Connection& db) -> Result<std::vector<StudyMatch>> {
    auto st = db.prepare(
        "SELECT a.study_id, s.study_uid, a.patient_id, a.image_sha256 FROM study_accessions a "
        "JOIN studies s ON s.id = a.study_id WHERE a.accession = ?1 ORDER BY a.study_id");
    st.bind(1, accession);
    std::vector<StudyMatch> out;
    while (st.step()) out.push_back({st.int64(0), st.text(1), st.text(2), st.text(3)});
    return out;
  });
}

}  // namespace dirgw::catalog
