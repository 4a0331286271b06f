#include "catalog/prior_ledger.h"

namespace dirgw::catalog {

namespace {

constexpr const char* kRequestColumns =
    "id, patient_ref, mrn, mrn_issuer, health_number, health_number_issuer, trigger_kind, "
    "trigger_ref, since_days, state, attempts, next_try_at, last_error, found, fetched, "
    "created_at, done_at, actor, procedures, body_part";

// The procedure codes as one column, one a line (a code holds no line break: HL7 and DICOM
// values are single-line).
std::string lines_of(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : "\n") + s;
  return out;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < s.size()) {
    const auto end = s.find('\n', start);
    out.push_back(s.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

PriorRequest request_row(const sqlite::Statement& s) {
  PriorRequest r;
  r.id = s.int64(0);
  r.patient_ref = s.text(1);
  r.mrn = s.text(2);
  r.mrn_issuer = s.text(3);
  r.health_number = s.text(4);
  r.health_number_issuer = s.text(5);
  r.trigger_kind = s.text(6);
  r.trigger_ref = s.text(7);
  r.since_days = static_cast<int>(s.int64(8));
  r.state = s.text(9);
  r.attempts = static_cast<int>(s.int64(10));
  r.next_try_at = s.int64(11);
  r.last_error = s.text(12);
  r.found = static_cast<int>(s.int64(13));
  r.fetched = static_cast<int>(s.int64(14));
  r.created_at = s.int64(15);
  r.done_at = s.int64(16);
  r.actor = s.text(17);
  r.procedures = split_lines(s.text(18));
  r.body_part = s.text(19);
  return r;
}

constexpr const char* kStudyColumns =
    "study_uid, request_id, patient_ref, mrn, mrn_issuer, study_date, modalities, instances, "
    "state, reason, trigger_ref, fetched_at";

PriorStudy study_row(const sqlite::Statement& s) {
  PriorStudy r;
  r.study_uid = s.text(0);
  r.request_id = s.int64(1);
  r.patient_ref = s.text(2);
  r.mrn = s.text(3);
  r.mrn_issuer = s.text(4);
  r.study_date = s.text(5);
  r.modalities = s.text(6);
  r.instances = s.int64(7);
  r.state = s.text(8);
  r.reason = s.text(9);
  r.trigger_ref = s.text(10);
  r.fetched_at = s.int64(11);
  return r;
}

}  // namespace

Result<std::int64_t> PriorLedger::add_request(const PriorRequest& r) {
  return db_.write([&](Connection& db) {
    db.prepare(
          "INSERT INTO prior_requests (patient_ref, mrn, mrn_issuer, health_number, "
          "health_number_issuer, trigger_kind, trigger_ref, since_days, created_at, next_try_at, "
          "actor, procedures, body_part) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, "
          "?12)")
        .bind(1, r.patient_ref)
        .bind(2, r.mrn)
        .bind(3, r.mrn_issuer)
        .bind(4, r.health_number)
        .bind(5, r.health_number_issuer)
        .bind(6, r.trigger_kind)
        .bind(7, r.trigger_ref)
        .bind(8, r.since_days)
        .bind(9, db_.now_ms())
        .bind(10, r.actor)
        .bind(11, lines_of(r.procedures))
        .bind(12, r.body_part)
        .run();
    return db.last_insert_rowid();
  });
}

Result<std::optional<PriorRequest>> PriorLedger::request(std::int64_t id) {
  return db_.read([&](Connection& db) {
    auto s =
        db.prepare(std::string("SELECT ") + kRequestColumns + " FROM prior_requests WHERE id = ?1");
    s.bind(1, id);
    if (!s.step()) return std::optional<PriorRequest>();
    return std::optional<PriorRequest>(request_row(s));
  });
}

Result<std::vector<PriorRequest>> PriorLedger::due(std::int64_t now, int limit) {
  return db_.read([&](Connection& db) {
    std::vector<PriorRequest> out;
    auto s = db.prepare(std::string("SELECT ") + kRequestColumns +
                        " FROM prior_requests WHERE state = 'pending' AND next_try_at <= ?1 "
                        "ORDER BY next_try_at, id LIMIT ?2");
    s.bind(1, now).bind(2, limit);
    while (s.step()) out.push_back(request_row(s));
    return out;
  });
}

Result<std::optional<std::int64_t>> PriorLedger::next_due() {
  return db_.read([&](Connection& db) {
    auto s = db.prepare("SELECT MIN(next_try_at) FROM prior_requests WHERE state = 'pending'");
    if (!s.step() || s.is_null(0)) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(s.int64(0));
  });
}

Result<void> PriorLedger::retry_later(std::int64_t id, std::int64_t next_try_at,
                                      const std::string& error) {
  return db_.write([&](Connection& db) {
    db.prepare(
          "UPDATE prior_requests SET attempts = attempts + 1, next_try_at = ?2, last_error = ?3 "
          "WHERE id = ?1")
        .bind(1, id)
        .bind(2, next_try_at)
        .bind(3, error)
        .run();
  });
}

Result<void> PriorLedger::finish(std::int64_t id, const std::string& state, int found, int fetched,
                                 const std::string& error) {
  return db_.write([&](Connection& db) {
    db.prepare(
          "UPDATE prior_requests SET state = ?2, found = ?3, fetched = ?4, last_error = ?5, "
          "attempts = attempts + 1, done_at = ?6 WHERE id = ?1")
        .bind(1, id)
        .bind(2, state)
        .bind(3, found)
        .bind(4, fetched)
        .bind(5, error)
        .bind(6, db_.now_ms())
        .run();
  });
}

Result<std::optional<PriorStudy>> PriorLedger::study(const std::string& study_uid) {
  return db_.read([&](Connection& db) {
    auto s = db.prepare(std::string("SELECT ") + kStudyColumns +
                        " FROM prior_studies WHERE study_uid = ?1");
    s.bind(1, study_uid);
    if (!s.step()) return std::optional<PriorStudy>();
    return std::optional<PriorStudy>(study_row(s));
  });
}

Result<void> PriorLedger::record_study(const PriorStudy& r) {
  return db_.write([&](Connection& db) {
    db.prepare(
          "INSERT OR IGNORE INTO prior_studies (study_uid, request_id, patient_ref, mrn, "
          "mrn_issuer, study_date, modalities, instances, state, reason, trigger_ref, fetched_at) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)")
        .bind(1, r.study_uid)
        .bind(2, r.request_id)
        .bind(3, r.patient_ref)
        .bind(4, r.mrn)
        .bind(5, r.mrn_issuer)
        .bind(6, r.study_date)
        .bind(7, r.modalities)
        .bind(8, r.instances)
        .bind(9, r.state)
        .bind(10, r.reason)
        .bind(11, r.trigger_ref)
        .bind(12, db_.now_ms())
        .run();
  });
}

Result<std::vector<PriorRequest>> PriorLedger::requests(const std::string& mrn, int limit) {
  return db_.read([&](Connection& db) {
    std::vector<PriorRequest> out;
    auto s = db.prepare(std::string("SELECT ") + kRequestColumns +
                        " FROM prior_requests WHERE ?1 = '' OR mrn = ?1 ORDER BY id DESC "
                        "LIMIT ?2");
    s.bind(1, mrn).bind(2, limit);
    while (s.step()) out.push_back(request_row(s));
    return out;
  });
}

Result<std::vector<PriorStudy>> PriorLedger::studies(const std::string& mrn, int limit) {
  return db_.read([&](Connection& db) {
    std::vector<PriorStudy> out;
    auto s = db.prepare(std::string("SELECT ") + kStudyColumns +
                        " FROM prior_studies WHERE ?1 = '' OR mrn = ?1 ORDER BY fetched_at DESC, "
                        "study_uid LIMIT ?2");
    s.bind(1, mrn).bind(2, limit);
    while (s.step()) out.push_back(study_row(s));
    return out;
  });
}

}  // namespace dirgw::catalog
