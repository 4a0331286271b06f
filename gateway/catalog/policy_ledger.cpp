#include "catalog/policy_ledger.h"

#include <map>
#include <set>

#include "catalog/internal.h"

namespace dirgw::catalog {

PolicyDecision consent_decision(const std::string& destination, ConsentState consent, bool opt_in) {
  PolicyDecision d;
  d.destination = destination;
  d.opt_in = opt_in;
  if (consent == ConsentState::kWithdrawn) {
    d.state = StudyState::kWithdrawn;
    d.reason = "consent withdrawn";
    d.code = reason::kConsentWithdrawn;
  } else if (opt_in && consent != ConsentState::kGranted) {
    d.state = StudyState::kHeld;
    d.reason = "no consent recorded";
    d.code = reason::kNoConsent;
  } else {
    d.state = StudyState::kReady;
  }
  return d;
}

namespace {

// Read on every run, so a re-run (a release from quarantine, a late instance) never drops the
// conflict; it ends when the operator deletes one side.
std::vector<std::string> identity_conflicts(Connection& db, std::int64_t study_id) {
  std::vector<std::string> out;
  auto conflict = db.prepare(
      "SELECT DISTINCT i.sop_instance_uid FROM instances i JOIN instances j "
      "ON j.sop_instance_uid = i.sop_instance_uid AND j.id != i.id WHERE i.study_id = ?1 "
      "AND (j.study_id != i.study_id OR (i.patient_identity != '' AND j.patient_identity != "
      "'' AND i.patient_identity != j.patient_identity)) ORDER BY i.sop_instance_uid");
  conflict.bind(1, study_id);
  while (conflict.step()) out.push_back(conflict.text(0));
  return out;
}

void record_identifiers(Connection& db, std::int64_t study_id,
                        const std::vector<PatientKey>& identifiers) {
  for (const auto& k : identifiers)
    db.prepare(
          "INSERT OR IGNORE INTO study_identifiers(study_id, kind, issuer, value) "
          "VALUES (?1, ?2, ?3, ?4)")
        .bind(1, study_id)
        .bind(2, k.kind)
        .bind(3, k.issuer)
        .bind(4, k.value)
        .run();
}

void record_derived(Connection& db, std::int64_t now, const std::vector<DerivedObject>& derived) {
  for (const auto& o : derived) {
    db.prepare("INSERT OR IGNORE INTO objects(sha256, size, created_at) VALUES (?1, ?2, ?3)")
        .bind(1, o.sha256)
        .bind(2, static_cast<std::int64_t>(o.size))
        .bind(3, now)
        .run();
    auto ins = db.prepare(
        "INSERT OR REPLACE INTO derived_objects(instance_id, destination, sha256, size, kind, "
        "sop_instance_uid) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    ins.bind(1, o.instance_id)
        .bind(2, o.destination)
        .bind(3, o.sha256)
        .bind(4, static_cast<std::int64_t>(o.size))
        .bind(5, o.kind);
    if (o.sop_instance_uid.empty())
      ins.bind_null(6);
    else
      ins.bind(6, o.sop_instance_uid);
    ins.run();
  }
}

// send_while_receiving: instances of the study already sent while it was RECEIVING, when the
// study-level decision does not make it READY. They stay recorded as sent (the repository holds
// them); the trail says so before the decision's own event, which governs the study.
void note_sent_early(Connection& db, const Clock& clock, std::int64_t study_id,
                     const PolicyDecision& d) {
  auto st = db.prepare(
      "SELECT count(*) FROM deliveries WHERE study_id = ?1 AND destination = ?2 AND early = 1 "
      "AND state IN ('sent', 'verified', 'sending')");
  st.bind(1, study_id).bind(2, d.destination);
  const std::int64_t n = st.step() ? st.int64(0) : 0;
  if (n == 0) return;
  audit_study_event(
      db, clock, study_id, d.destination, audit::EventType::kStudySent,
      std::string(audit::kSuccess),
      nlohmann::json{{"note", "sent while receiving, before the study-level decision"},
                     {"instances", n},
                     {"decision", std::string(to_string(d.state))},
                     {"reason_code", d.code}});
}

// After the study-level decision: what was cleared early and is still pending is held back
// unless the study goes (a late instance of a quarantined study must not let them go early); a
// READY study whose instances all went while it was receiving is SENT at once.
void after_decision(Connection& db, const Clock& clock, std::int64_t study_id,
                    const PolicyDecision& d) {
  if (d.state != StudyState::kReady) {
    db.prepare(
          "UPDATE deliveries SET early = 2 WHERE study_id = ?1 AND destination = ?2 AND "
          "state = 'pending' AND early != 2")
        .bind(1, study_id)
        .bind(2, d.destination)
        .run();
    return;
  }
  auto st = db.prepare(
      "SELECT open_count, sending_count FROM study_destinations WHERE study_id = ?1 AND "
      "destination = ?2 AND EXISTS (SELECT 1 FROM deliveries WHERE study_id = ?1 AND "
      "destination = ?2 AND early = 1)");
  st.bind(1, study_id).bind(2, d.destination);
  if (!st.step()) return;  // nothing went early: as before, the forwarder moves it on
  // Nothing left to send, or an early batch still on the wire: its state from its counters.
  if (st.int64(0) == 0 || st.int64(1) > 0) settle_study(db, clock, study_id, d.destination, true);
}

}  // namespace

Result<std::vector<PolicyWork>> PolicyLedger::policy_work(int limit) {
  return db_.locked([&](Connection& db) -> Result<std::vector<PolicyWork>> {
    std::vector<PolicyWork> out;
    auto st = db.prepare(
        "SELECT s.id, s.study_uid, group_concat(sd.destination, char(10)), s.first_received_at, "
        "EXISTS (SELECT 1 FROM hl7_reports r WHERE r.study_uid = s.study_uid AND r.state = 'done' "
        "AND r.status IN ('final', 'corrected')) FROM studies s "
        "JOIN study_destinations sd ON sd.study_id = s.id WHERE sd.state = 'STABLE' "
        "GROUP BY s.id ORDER BY s.last_received_at LIMIT ?1");
    st.bind(1, limit);
    while (st.step()) {
      PolicyWork w;
      w.study_id = st.int64(0);
      w.study_uid = st.text(1);
      w.first_received_at = st.int64(3);
      w.final_report = st.int64(4) != 0;
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
      auto inst = db.prepare(
          "SELECT id, sop_instance_uid, object_sha256, received_at, calling_ae FROM instances "
          "WHERE study_id = ?1 ORDER BY id");
      inst.bind(1, w.study_id);
      while (inst.step())
        w.instances.push_back(
            {inst.int64(0), inst.text(1), inst.text(2), inst.int64(3), inst.text(4)});
      w.identity_conflicts = identity_conflicts(db, w.study_id);
      auto reviews = db.prepare(
          "SELECT destination, through_instance_id FROM deid_reviews WHERE study_id = ?1");
      reviews.bind(1, w.study_id);
      while (reviews.step()) w.burned_in_reviewed[reviews.text(0)] = reviews.int64(1);
    }
    return out;
  });
}

Result<std::vector<PolicyDecision>> PolicyLedger::record_policy(
    std::int64_t study_id, const std::vector<PatientKey>& identifiers,
    const std::vector<Finding>& findings, const std::vector<PolicyDecision>& decisions,
    const std::vector<DerivedObject>& derived) {
  const std::int64_t now = db_.now_ms();
  return db_.write([&](Connection& db) -> Result<std::vector<PolicyDecision>> {
    record_identifiers(db, study_id, identifiers);
    db.prepare("DELETE FROM policy_findings WHERE study_id = ?1").bind(1, study_id).run();
    for (const auto& f : findings)
      db.prepare(
            "INSERT INTO policy_findings(study_id, sop_instance_uid, code, tag, message, at) "
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
          .bind(1, study_id)
          .bind(2, f.sop_instance_uid)
          .bind(3, f.code)
          .bind(4, f.tag)
          .bind(5, f.message)
          .bind(6, now)
          .run();
    record_derived(db, now, derived);
    // Consent is read here, in the transaction that commits the decision: a withdrawal either
    // committed before (and is seen) or comes after (and finds this study by its identifiers).
    const std::int64_t patient = find_patient(db, identifiers);
    std::vector<PolicyDecision> out;
    for (const auto& proposed : decisions) {
      PolicyDecision d = proposed;
      if (d.state == StudyState::kReady) {
        d = consent_decision(d.destination, consent_of(db, patient, d.destination), d.opt_in);
        d.report_note = proposed.report_note;
      }
      if (!d.report_note.empty())
        db.prepare(
              "UPDATE study_destinations SET report_note = ?3 WHERE study_id = ?1 AND "
              "destination = ?2")
            .bind(1, study_id)
            .bind(2, d.destination)
            .bind(3, d.report_note)
            .run();
      if (d.state != StudyState::kReady) note_sent_early(db, db_.clock(), study_id, d);
      if (d.state == StudyState::kWithdrawn) {
        withdraw(db, db_.clock(), study_id, d.destination, d.reason);
      } else {
        transition(db, db_.clock(), study_id, d.destination, d.state, Cause::kPolicy, d.reason,
                   d.code);
      }
      after_decision(db, db_.clock(), study_id, d);
      out.push_back(std::move(d));
    }
    return out;
  });
}

Result<std::vector<EarlyWork>> PolicyLedger::early_work(
    const std::vector<std::string>& destinations, int limit) {
  return db_.locked([&](Connection& db) -> Result<std::vector<EarlyWork>> {
    // study id -> destinations with unchecked pending deliveries while it is RECEIVING
    std::map<std::int64_t, std::set<std::string>> studies;
    for (const auto& dest : destinations) {
      auto st = db.prepare(
          "SELECT DISTINCT d.study_id FROM deliveries d JOIN study_destinations sd ON "
          "sd.study_id = d.study_id AND sd.destination = d.destination WHERE d.destination = ?1 "
          "AND d.early = 0 AND d.state = 'pending' AND sd.state = 'RECEIVING' LIMIT ?2");
      st.bind(1, dest).bind(2, limit);
      while (st.step()) studies[st.int64(0)].insert(dest);
    }
    std::vector<EarlyWork> out;
    for (const auto& [study_id, dests] : studies) {
      if (static_cast<int>(out.size()) >= limit) break;
      EarlyWork w;
      w.study_id = study_id;
      auto s = db.prepare("SELECT study_uid, first_received_at FROM studies WHERE id = ?1");
      s.bind(1, study_id);
      if (!s.step()) continue;
      w.study_uid = s.text(0);
      w.first_received_at = s.int64(1);
      std::map<std::int64_t, PolicyWork::Instance> unchecked;
      for (const auto& dest : dests) {
        auto held = db.prepare(
            "SELECT 1 FROM deliveries WHERE study_id = ?1 AND destination = ?2 AND early = 2 "
            "AND state = 'pending' LIMIT 1");
        held.bind(1, study_id).bind(2, dest);
        (held.step() ? w.blocked : w.destinations).push_back(dest);
        auto inst = db.prepare(
            "SELECT i.id, i.sop_instance_uid, i.object_sha256, i.received_at, i.calling_ae "
            "FROM deliveries d JOIN instances i ON i.id = d.instance_id WHERE d.study_id = ?1 "
            "AND d.destination = ?2 AND d.early = 0 AND d.state = 'pending'");
        inst.bind(1, study_id).bind(2, dest);
        while (inst.step())
          unchecked.try_emplace(inst.int64(0),
                                PolicyWork::Instance{inst.int64(0), inst.text(1), inst.text(2),
                                                     inst.int64(3), inst.text(4)});
      }
      for (auto& [id, i] : unchecked) w.instances.push_back(std::move(i));
      w.identity_conflicts = identity_conflicts(db, study_id);
      out.push_back(std::move(w));
    }
    return out;
  });
}

Result<EarlyOutcome> PolicyLedger::record_early(std::int64_t study_id,
                                                const std::vector<PatientKey>& identifiers,
                                                const std::vector<EarlyDecision>& decisions,
                                                const std::vector<DerivedObject>& derived) {
  const std::int64_t now = db_.now_ms();
  return db_.write([&](Connection& db) -> Result<EarlyOutcome> {
    EarlyOutcome out;
    // Before anything may go: from here on a withdrawal finds the study by its identifiers.
    record_identifiers(db, study_id, identifiers);
    record_derived(db, now, derived);
    const std::int64_t patient = find_patient(db, identifiers);
    for (const auto& d : decisions) {
      auto st = db.prepare(
          "SELECT state = 'RECEIVING', EXISTS (SELECT 1 FROM deliveries WHERE study_id = ?1 AND "
          "destination = ?2 AND early = 2 AND state = 'pending') FROM study_destinations "
          "WHERE study_id = ?1 AND destination = ?2");
      st.bind(1, study_id).bind(2, d.destination);
      // Held, withdrawn or stable meanwhile: the study-level path decides.
      if (!st.step() || st.int64(0) == 0) continue;
      const bool blocked = st.int64(1) != 0;
      // Consent read here, in the transaction that clears the instances (as record_policy).
      const bool consent =
          consent_decision(d.destination, consent_of(db, patient, d.destination), d.opt_in).state ==
          StudyState::kReady;
      const bool go = !blocked && consent && d.held.empty();
      int changed = 0;
      for (const auto* ids : {&d.cleared, &d.held})
        for (const auto id : *ids) {
          db.prepare(
                "UPDATE deliveries SET early = ?3 WHERE instance_id = ?1 AND destination = ?2 "
                "AND state = 'pending' AND early = 0")
              .bind(1, id)
              .bind(2, d.destination)
              .bind(3, go ? 1 : 2)
              .run();
          changed += db.changes();
        }
      (go ? out.cleared : out.held) += changed;
      if (!go && !blocked && changed > 0) out.newly_blocked.push_back(d.destination);
    }
    return out;
  });
}

Result<ReportHoldRelease> PolicyLedger::release_report_holds(
    const std::map<std::string, std::int64_t>& max_wait_ms) {
  const std::int64_t now = db_.now_ms();
  return db_.write([&](Connection& db) -> Result<ReportHoldRelease> {
    ReportHoldRelease out;
    auto st = db.prepare(
        "SELECT sd.study_id, sd.destination, s.first_received_at, EXISTS (SELECT 1 FROM "
        "hl7_reports r WHERE r.study_uid = s.study_uid AND r.state = 'done' AND r.status IN "
        "('final', 'corrected')) FROM study_destinations sd JOIN studies s ON s.id = sd.study_id "
        "WHERE sd.state = 'HELD' AND sd.reason_code = ?1");
    st.bind(1, reason::kWaitingReport);
    std::vector<std::pair<std::int64_t, std::string>> go;
    while (st.step()) {
      auto wait = max_wait_ms.find(st.text(1));
      // A destination no longer waiting for reports (configuration changed) lets it go too.
      const std::int64_t until = wait == max_wait_ms.end() ? 0 : st.int64(2) + wait->second;
      if (st.int64(3) != 0 || now >= until)
        go.emplace_back(st.int64(0), st.text(1));
      else if (out.next_at == 0 || until < out.next_at)
        out.next_at = until;
    }
    for (const auto& [study_id, dest] : go)
      if (transition(db, db_.clock(), study_id, dest, StudyState::kStable, Cause::kPolicy, ""))
        ++out.released;
    return out;
  });
}

Result<std::vector<Finding>> PolicyLedger::findings(const std::string& study_uid) {
  return db_.read([&](Connection& db) -> Result<std::vector<Finding>> {
    std::vector<Finding> out;
    auto st = db.prepare(
        "SELECT f.sop_instance_uid, f.code, f.tag, f.message FROM policy_findings f "
        "JOIN studies s ON s.id = f.study_id WHERE s.study_uid = ?1 ORDER BY f.id");
    st.bind(1, study_uid);
    while (st.step()) out.push_back({st.text(0), st.text(1), st.text(2), st.text(3)});
    return out;
  });
}

Result<std::vector<std::string>> PolicyLedger::forget_unreferenced_derived(
    const std::vector<std::string>& shas) {
  if (shas.empty()) return std::vector<std::string>();
  return db_.write([&](Connection& db) -> Result<std::vector<std::string>> {
    std::vector<std::string> out;
    for (const auto& sha : shas) {
      auto used = db.prepare("SELECT 1 FROM derived_objects WHERE sha256 = ?1 LIMIT 1");
      used.bind(1, sha);
      if (used.step()) continue;
      // The same bytes received as an original keep their row (their file is in objects/).
      db.prepare(
            "DELETE FROM objects WHERE sha256 = ?1 AND NOT EXISTS (SELECT 1 FROM instances WHERE "
            "object_sha256 = ?1)")
          .bind(1, sha)
          .run();
      out.push_back(sha);
    }
    return out;
  });
}

}  // namespace dirgw::catalog
