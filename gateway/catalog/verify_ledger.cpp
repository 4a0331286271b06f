#include "catalog/verify_ledger.h"

#include <map>
#include <set>

#include "catalog/internal.h"

namespace dirgw::catalog {

namespace {

// Deliveries that no longer need the object: verified where it went, or never to go.
constexpr const char* kDoneStates = "('verified', 'withdrawn', 'superseded')";

// The instance's object is verified once every delivery of every instance holding it is done.
void note_object_verified(Connection& db, std::int64_t instance_id, std::int64_t now) {
  db.prepare(std::string("UPDATE objects SET verified_at = ?2 WHERE verified_at IS NULL AND "
                         "sha256 = (SELECT object_sha256 FROM instances WHERE id = ?1) AND "
                         "NOT EXISTS (SELECT 1 FROM deliveries d JOIN instances i ON i.id = "
                         "d.instance_id WHERE i.object_sha256 = objects.sha256 AND d.state NOT "
                         "IN ") +
             kDoneStates + ")")
      .bind(1, instance_id)
      .bind(2, now)
      .run();
}

struct StudyCounts {
  std::int64_t open = 0, failed = 0, sent = 0;
};

StudyCounts counts(Connection& db, std::int64_t study_id, const std::string& destination) {
  StudyCounts c;
  auto st = db.prepare(
      "SELECT open_count, failed_count, (SELECT count(*) FROM deliveries d WHERE d.study_id = "
      "?1 AND d.destination = ?2 AND d.state = 'sent') FROM study_destinations WHERE "
      "study_id = ?1 AND destination = ?2");
  st.bind(1, study_id).bind(2, destination);
  if (st.step()) c = {st.int64(0), st.int64(1), st.int64(2)};
  return c;
}

}  // namespace

Result<std::vector<VerifyStudy>> VerifyLedger::due_studies(const std::string& destination,
                                                           std::int64_t sent_before,
                                                           std::int64_t now, int limit) {
  return db_.locked([&](Connection& db) -> Result<std::vector<VerifyStudy>> {
    auto st = db.prepare(
        "SELECT d.study_id, s.study_uid FROM deliveries d "
        "JOIN study_destinations sd ON sd.study_id = d.study_id AND sd.destination = "
        "d.destination JOIN studies s ON s.id = d.study_id "
        "WHERE d.destination = ?1 AND d.state = 'sent' AND sd.state = 'SENT' "
        "GROUP BY d.study_id HAVING max(d.sent_at) <= ?2 AND max(d.verify_next_at) <= ?3 "
        "ORDER BY max(d.sent_at), d.study_id LIMIT ?4");
    st.bind(1, destination).bind(2, sent_before).bind(3, now).bind(4, limit);
    std::vector<VerifyStudy> out;
    while (st.step()) out.push_back({st.int64(0), st.text(1)});
    return out;
  });
}

Result<std::optional<std::int64_t>> VerifyLedger::next_due(const std::string& destination,
                                                           std::int64_t delay_ms) {
  return db_.locked([&](Connection& db) -> Result<std::optional<std::int64_t>> {
    auto st = db.prepare(
        "SELECT min(due) FROM (SELECT max(max(d.sent_at) + ?2, max(d.verify_next_at)) AS due "
        "FROM deliveries d JOIN study_destinations sd ON sd.study_id = d.study_id AND "
        "sd.destination = d.destination WHERE d.destination = ?1 AND d.state = 'sent' AND "
        "sd.state = 'SENT' GROUP BY d.study_id)");
    st.bind(1, destination).bind(2, delay_ms);
    st.step();
    if (st.is_null(0)) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(st.int64(0));
  });
}

Result<std::vector<VerifyInstance>> VerifyLedger::sent_instances(std::int64_t study_id,
                                                                 const std::string& destination) {
  return db_.locked([&](Connection& db) -> Result<std::vector<VerifyInstance>> {
    auto st = db.prepare(
        "SELECT d.instance_id, coalesce(dob.sop_instance_uid, i.sop_instance_uid), "
        "i.sop_class_uid, i.series_uid, coalesce(dob.size, i.size), "
        "dob.sop_instance_uid IS NOT NULL FROM deliveries d "
        "JOIN instances i ON i.id = d.instance_id "
        "LEFT JOIN derived_objects dob ON dob.instance_id = d.instance_id AND dob.destination = "
        "d.destination WHERE d.study_id = ?1 AND d.destination = ?2 AND d.state = 'sent' "
        "ORDER BY i.series_uid, i.id");
    st.bind(1, study_id).bind(2, destination);
    std::vector<VerifyInstance> out;
    while (st.step()) {
      VerifyInstance v;
      v.instance_id = st.int64(0);
      v.sop_instance_uid = st.text(1);
      v.sop_class_uid = st.text(2);
      v.series_uid = st.text(3);
      v.size = static_cast<std::uint64_t>(st.int64(4));
      v.own_uids = st.int64(5) != 0;
      out.push_back(std::move(v));
    }
    return out;
  });
}

// Over 80 lines: one transaction that applies each finding and then moves the study from what
// the findings left (verified, sent again, failed), with its audit events; the steps share the
// counts gathered on the way.
Result<VerifyRecorded> VerifyLedger::record_verification(const std::string& destination,
                                                         std::int64_t study_id,
                                                         const std::vector<VerifyFinding>& findings,
                                                         int max_resends) {
  const std::int64_t now = db_.now_ms();
  return db_.write([&](Connection& db) -> Result<VerifyRecorded> {
    VerifyRecorded r;
    nlohmann::json requeued_uids = nlohmann::json::array();
    for (const auto& f : findings) {
      auto cur = db.prepare(
          "SELECT d.resends, coalesce(dob.size, i.size), i.sop_instance_uid FROM deliveries d "
          "JOIN instances i ON i.id = d.instance_id LEFT JOIN derived_objects dob ON "
          "dob.instance_id = d.instance_id AND dob.destination = d.destination "
          "WHERE d.instance_id = ?1 AND d.destination = ?2 AND d.state = 'sent'");
      cur.bind(1, f.instance_id).bind(2, destination);
      if (!cur.step()) continue;  // changed meanwhile (withdrawn, superseded): left alone
      const std::int64_t resends = cur.int64(0);
      const std::int64_t size = cur.int64(1);
      const std::string uid = cur.text(2);
      std::string state = "verified", error;
      if (f.verdict == VerifyVerdict::kMismatch) {
        state = "failed";
        error = "the repository lists this SOP Instance UID with another SOP Class";
      } else if (f.verdict == VerifyVerdict::kMissing && resends < max_resends) {
        state = "pending";
        error = "not listed by the repository at verification: sent again";
      } else if (f.verdict == VerifyVerdict::kMissing) {
        state = "failed";
        error = "not listed by the repository after " + std::to_string(resends + 1) +
                " sends: quarantined (dirgw quarantine release sends it again)";
      }
      db.prepare(
            "UPDATE deliveries SET state = ?3, last_error = ?4, verify_attempts = "
            "verify_attempts + 1, verified_at = CASE WHEN ?3 = 'verified' THEN ?5 END, "
            "resends = resends + (?3 = 'pending'), unconfirmed = (?3 = 'failed' AND ?6), "
            "next_attempt_at = CASE WHEN ?3 = 'pending' "
            "THEN ?5 ELSE next_attempt_at END, verify_next_at = 0 "
            "WHERE instance_id = ?1 AND destination = ?2")
          .bind(1, f.instance_id)
          .bind(2, destination)
          .bind(3, state)
          .bind(4, error)
          .bind(5, now)
          .bind(6, f.verdict == VerifyVerdict::kMissing ? 1 : 0)
          .run();
      if (state == "verified") {
        ++r.verified;
        r.verified_bytes += static_cast<std::uint64_t>(size);
        note_object_verified(db, f.instance_id, now);
      } else if (state == "pending") {
        ++r.requeued;
        requeued_uids.push_back(uid);
      } else {
        ++r.failed;
      }
    }
    db.prepare(
          "UPDATE study_destinations SET verify_error = '' WHERE study_id = ?1 AND destination "
          "= ?2")
        .bind(1, study_id)
        .bind(2, destination)
        .run();
    const StudyCounts c = counts(db, study_id, destination);
    if (r.requeued > 0) {
      audit_study_event(db, db_.clock(), study_id, destination, audit::EventType::kDeliveryRequeued,
                        audit::failure("missing from the repository"),
                        {{"instances", r.requeued}, {"sop_instance_uids", requeued_uids}});
      if (transition(
              db, db_.clock(), study_id, destination, StudyState::kReady, Cause::kVerified,
              std::to_string(r.requeued) + " instance(s) not listed by the repository: sent again"))
        r.study_state = StudyState::kReady;
    } else if (c.failed > 0 && c.open == 0) {
      const std::string why =
          std::to_string(c.failed) + " instance(s) lost by the repository or listed otherwise";
      if (transition(db, db_.clock(), study_id, destination, StudyState::kFailed, Cause::kVerified,
                     why)) {
        r.study_state = StudyState::kFailed;
        // Lost too often: held for a person (issue 17, item 10); listed otherwise: FAILED.
        if (quarantine_if_unconfirmed(db, db_.clock(), study_id, destination, Cause::kVerified))
          r.study_state = StudyState::kQuarantined;
        else
          audit_study_event(db, db_.clock(), study_id, destination, audit::EventType::kStudyFailed,
                            audit::failure(why), nlohmann::json::object());
      }
    } else if (c.open == 0 && c.sent == 0 && c.failed == 0) {
      if (transition(db, db_.clock(), study_id, destination, StudyState::kVerified,
                     Cause::kVerified, "")) {
        db.prepare(
              "UPDATE study_destinations SET verified_at = ?3 WHERE study_id = ?1 AND "
              "destination = ?2")
            .bind(1, study_id)
            .bind(2, destination)
            .bind(3, now)
            .run();
        r.study_state = StudyState::kVerified;
        audit_study_event(db, db_.clock(), study_id, destination, audit::EventType::kStudyVerified,
                          std::string(audit::kSuccess), {{"instances", r.verified}});
      }
    }
    return r;
  });
}

Result<void> VerifyLedger::record_verification_error(const std::string& destination,
                                                     std::int64_t study_id,
                                                     const std::string& error,
                                                     std::int64_t retry_at) {
  return db_.write([&](Connection& db) -> Result<void> {
    db.prepare(
          "UPDATE deliveries SET verify_next_at = ?3, verify_attempts = verify_attempts + 1 "
          "WHERE study_id = ?1 AND destination = ?2 AND state = 'sent'")
        .bind(1, study_id)
        .bind(2, destination)
        .bind(3, retry_at)
        .run();
    db.prepare(
          "UPDATE study_destinations SET verify_error = ?3 WHERE study_id = ?1 AND destination = "
          "?2")
        .bind(1, study_id)
        .bind(2, destination)
        .bind(3, error)
        .run();
    return {};
  });
}

Result<std::vector<PurgeCandidate>> VerifyLedger::purgeable(std::int64_t verified_before,
                                                            int limit) {
  return db_.locked([&](Connection& db) -> Result<std::vector<PurgeCandidate>> {
    std::vector<PurgeCandidate> out;
    auto st = db.prepare(
        "SELECT sha256, size, verified_at, content_key IS NOT NULL FROM objects WHERE purged_at "
        "IS NULL AND verified_at IS NOT NULL AND verified_at <= ?1 ORDER BY verified_at, sha256 "
        "LIMIT ?2");
    st.bind(1, verified_before).bind(2, limit);
    while (st.step())
      out.push_back({st.text(0),
                     static_cast<std::uint64_t>(st.int64(1)),
                     st.int64(2),
                     {},
                     st.int64(3) != 0,
                     {}});
    for (auto& c : out) {
      auto d = db.prepare(
          "SELECT DISTINCT dob.sha256 FROM derived_objects dob JOIN instances i ON i.id = "
          "dob.instance_id WHERE i.object_sha256 = ?1");
      d.bind(1, c.sha256);
      while (d.step()) c.derived.push_back(d.text(0));
    }
    return out;
  });
}

Result<std::optional<std::int64_t>> VerifyLedger::oldest_unpurged() {
  return db_.locked([&](Connection& db) -> Result<std::optional<std::int64_t>> {
    auto st = db.prepare(
        "SELECT min(verified_at) FROM objects WHERE purged_at IS NULL AND verified_at IS NOT "
        "NULL");
    st.step();
    if (st.is_null(0)) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(st.int64(0));
  });
}

// Over 80 lines: the last check per object, the marks, then each touched study's state and its
// audit event, in one transaction so that a file is removed only for what was recorded.
Result<PurgeSummary> VerifyLedger::record_purged(const std::vector<PurgeCandidate>& objects,
                                                 const std::string& reason) {
  const std::int64_t now = db_.now_ms();
  return db_.write([&](Connection& db) -> Result<PurgeSummary> {
    PurgeSummary out;
    std::map<std::int64_t, std::pair<std::int64_t, std::int64_t>> per_study;  // objects, bytes
    for (const auto& c : objects) {
      auto still = db.prepare(std::string("SELECT 1 FROM deliveries d JOIN instances i ON i.id = "
                                          "d.instance_id WHERE i.object_sha256 = ?1 AND d.state "
                                          "NOT IN ") +
                              kDoneStates + " LIMIT 1");
      still.bind(1, c.sha256);
      if (still.step()) continue;  // something became due again: never purge it
      auto mark = db.prepare(
          "UPDATE objects SET purged_at = ?2, content_key = coalesce(content_key, ?3) WHERE "
          "sha256 = ?1 AND purged_at IS NULL");
      mark.bind(1, c.sha256).bind(2, now);
      if (c.content_key.empty()) {
        mark.bind_null(3);
      } else {
        mark.bind(3, c.content_key);
      }
      mark.run();
      if (db.changes() == 0) continue;
      for (const auto& d : c.derived)
        db.prepare("UPDATE objects SET purged_at = ?2 WHERE sha256 = ?1 AND purged_at IS NULL")
            .bind(1, d)
            .bind(2, now)
            .run();
      out.marked.push_back(c);
      out.bytes += static_cast<std::int64_t>(c.size);
      auto studies = db.prepare("SELECT DISTINCT study_id FROM instances WHERE object_sha256 = ?1");
      studies.bind(1, c.sha256);
      while (studies.step()) {
        auto& [n, bytes] = per_study[studies.int64(0)];
        ++n;
        bytes += static_cast<std::int64_t>(c.size);
      }
    }
    for (const auto& [study_id, totals] : per_study) {
      auto left = db.prepare(
          "SELECT 1 FROM instances i JOIN objects o ON o.sha256 = i.object_sha256 WHERE "
          "i.study_id = ?1 AND o.purged_at IS NULL LIMIT 1");
      left.bind(1, study_id);
      if (!left.step()) {
        for (const auto& dest : db_.destinations())
          transition(db, db_.clock(), study_id, dest, StudyState::kPurged, Cause::kRetention,
                     "spool files removed after verification");
      }
      audit_study_event(db, db_.clock(), study_id, "", audit::EventType::kObjectsPurged,
                        std::string(audit::kSuccess),
                        {{"objects", totals.first}, {"bytes", totals.second}, {"reason", reason}});
    }
    return out;
  });
}

}  // namespace dirgw::catalog
