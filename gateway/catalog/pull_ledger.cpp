#include "catalog/pull_ledger.h"

namespace dirgw::catalog {

namespace {

PullStudyRow study_row(const sqlite::Statement& s) {
  PullStudyRow r;
  r.source = s.text(0);
  r.study_uid = s.text(1);
  r.reported = s.int64(2);
  r.held = s.int64(3);
  r.state = s.text(4);
  r.pulls = static_cast<int>(s.int64(5));
  r.failures = static_cast<int>(s.int64(6));
  r.next_try_at = s.int64(7);
  r.last_error = s.text(8);
  r.first_seen_at = s.int64(9);
  r.pulled_at = s.int64(10);
  r.not_found = static_cast<int>(s.int64(11));
  return r;
}

constexpr const char* kStudyColumns =
    "source, study_uid, reported, held, state, pulls, failures, next_try_at, last_error, "
    "first_seen_at, pulled_at, not_found";

}  // namespace

Result<PullSourceRow> PullLedger::source(const std::string& name) {
  return db_.read([&](Connection& db) {
    PullSourceRow r;
    r.name = name;
    auto s = db.prepare(
        "SELECT last_poll_at, last_ok_at, next_poll_at, failures, last_error FROM pull_sources "
        "WHERE name = ?1");
    s.bind(1, name);
    if (s.step()) {
      r.last_poll_at = s.int64(0);
      r.last_ok_at = s.int64(1);
      r.next_poll_at = s.int64(2);
      r.failures = static_cast<int>(s.int64(3));
      r.last_error = s.text(4);
    }
    return r;
  });
}

Result<void> PullLedger::save_source(const PullSourceRow& r) {
  return db_.write([&](Connection& db) {
    db.prepare(
          "INSERT INTO pull_sources (name, last_poll_at, last_ok_at, next_poll_at, failures, "
          "last_error) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO UPDATE SET "
          "last_poll_at = ?2, last_ok_at = ?3, next_poll_at = ?4, failures = ?5, last_error = ?6")
        .bind(1, r.name)
        .bind(2, r.last_poll_at)
        .bind(3, r.last_ok_at)
        .bind(4, r.next_poll_at)
        .bind(5, r.failures)
        .bind(6, r.last_error)
        .run();
  });
}

Result<std::optional<PullStudyRow>> PullLedger::study(const std::string& source,
                                                      const std::string& study_uid) {
  return db_.read([&](Connection& db) -> std::optional<PullStudyRow> {
    auto s = db.prepare(std::string("SELECT ") + kStudyColumns +
                        " FROM pull_studies WHERE source = ?1 AND study_uid = ?2");
    s.bind(1, source).bind(2, study_uid);
    if (!s.step()) return std::nullopt;
    return study_row(s);
  });
}

Result<void> PullLedger::save_study(const PullStudyRow& r) {
  return db_.write([&](Connection& db) {
    db.prepare(std::string("INSERT OR REPLACE INTO pull_studies (") + kStudyColumns +
               ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)")
        .bind(1, r.source)
        .bind(2, r.study_uid)
        .bind(3, r.reported)
        .bind(4, r.held)
        .bind(5, r.state)
        .bind(6, r.pulls)
        .bind(7, r.failures)
        .bind(8, r.next_try_at)
        .bind(9, r.last_error)
        .bind(10, r.first_seen_at)
        .bind(11, r.pulled_at)
        .bind(12, r.not_found)
        .run();
  });
}

Result<std::int64_t> PullLedger::held_instances(const std::string& study_uid) {
  return db_.read([&](Connection& db) {
    auto s = db.prepare(
        "SELECT COUNT(DISTINCT i.sop_instance_uid) FROM instances i JOIN studies s "
        "ON s.id = i.study_id WHERE s.study_uid = ?1");
    s.bind(1, study_uid);
    return s.step() ? s.int64(0) : std::int64_t{0};
  });
}

Result<PullSummary> PullLedger::summary(const std::string& source, int limit) {
  return db_.read([&](Connection& db) {
    PullSummary out;
    auto c = db.prepare(
        "SELECT SUM(state = 'complete'), SUM(state = 'incomplete'), SUM(state = 'gone'), "
        "SUM(state = 'skipped') FROM pull_studies WHERE source = ?1");
    c.bind(1, source);
    if (c.step()) {
      out.complete = c.int64(0);
      out.incomplete = c.int64(1);
      out.gone = c.int64(2);
      out.skipped = c.int64(3);
    }
    auto s = db.prepare(std::string("SELECT ") + kStudyColumns +
                        " FROM pull_studies WHERE source = ?1 AND state = 'incomplete' "
                        "ORDER BY first_seen_at LIMIT ?2");
    s.bind(1, source).bind(2, limit);
    while (s.step()) out.incomplete_studies.push_back(study_row(s));
    return out;
  });
}

}  // namespace dirgw::catalog
