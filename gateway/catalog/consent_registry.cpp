#include "catalog/consent_registry.h"

#include <map>
#include <set>

#include "catalog/internal.h"

namespace dirgw::catalog {

namespace {

// The patient the identifiers name (created on first mention), with every identifier linked.
std::int64_t patient_for(Connection& db, const std::vector<PatientKey>& identifiers,
                         std::int64_t now) {
  std::int64_t patient = find_patient(db, identifiers);
  if (patient == 0) {
    db.prepare("INSERT INTO patients(created_at) VALUES (?1)").bind(1, now).run();
    patient = db.last_insert_rowid();
  }
  for (const auto& k : identifiers)
    db.prepare(
          "INSERT OR IGNORE INTO patient_identifiers(patient_id, kind, issuer, value) "
          "VALUES (?1, ?2, ?3, ?4)")
        .bind(1, patient)
        .bind(2, k.kind)
        .bind(3, k.issuer)
        .bind(4, k.value)
        .run();
  return patient;
}

// Withdraws, or releases studies held for want of consent, on every study carrying any
// identifier of the patient, for the change's scope.
void apply_to_studies(Connection& db, const Clock& clock, const ConsentChange& c,
                      std::int64_t patient, ConsentEffect& effect) {
  std::set<std::int64_t> studies;
  auto st = db.prepare(
      "SELECT DISTINCT si.study_id FROM study_identifiers si JOIN patient_identifiers pi "
      "ON pi.kind = si.kind AND pi.issuer = si.issuer AND pi.value = si.value "
      "WHERE pi.patient_id = ?1");
  st.bind(1, patient);
  while (st.step()) studies.insert(st.int64(0));
  for (auto study_id : studies) {
    auto rows = db.prepare(
        "SELECT destination, state, reason_code FROM study_destinations WHERE study_id = ?1 "
        "AND (?2 = '*' OR destination = ?2)");
    rows.bind(1, study_id).bind(2, c.scope);
    std::vector<std::tuple<std::string, std::string, std::string>> dests;
    while (rows.step()) dests.emplace_back(rows.text(0), rows.text(1), rows.text(2));
    for (const auto& [dest, state, code] : dests) {
      if (!c.grant) {
        if (withdraw(db, clock, study_id, dest, "consent withdrawn")) ++effect.studies_withdrawn;
      } else if (state == "HELD" && code == reason::kNoConsent &&
                 consent_of(db, patient, dest) == ConsentState::kGranted) {
        if (transition(db, clock, study_id, dest, StudyState::kReady, Cause::kPolicy, ""))
          ++effect.studies_released;
      }
    }
  }
}

}  // namespace

Result<ConsentEffect> ConsentRegistry::record_consent(const ConsentChange& c) {
  if (c.identifiers.empty())
    return make_error(ErrorCode::kInvalidArgument, "a consent change needs a patient identifier");
  // A withdrawal waits until every request that passed its last check has left (send_gate.h).
  std::unique_lock<SendGate> gate(db_.send_gate(), std::defer_lock);
  if (!c.grant) gate.lock();
  const std::int64_t now = c.at != 0 ? c.at : db_.now_ms();
  return db_.write([&](Connection& db) -> Result<ConsentEffect> {
    ConsentEffect effect;
    const std::int64_t patient = patient_for(db, c.identifiers, now);
    effect.patient_id = patient;
    db.prepare(
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
    apply_to_studies(db, db_.clock(), c, patient, effect);
    if (c.grant) return effect;
    for (const auto& dest : c.notify) {
      if (c.scope != "*" && c.scope != dest) continue;
      // Written out at once unless a batch of the patient's is still in flight to `dest`: then
      // it waits for the answer, so that it lists that batch too.
      db.prepare(
            "INSERT INTO notifications(destination, created_at, body, state, patient_id, "
            "scope) VALUES (?1, ?2, '', 'waiting', ?3, ?4)")
          .bind(1, dest)
          .bind(2, now)
          .bind(3, patient)
          .bind(4, c.scope)
          .run();
      finish_waiting_notifications(db, db_.clock(), dest);
      ++effect.notifications;
    }
    return effect;
  });
}

Result<ConsentState> ConsentRegistry::consent_for(const std::vector<PatientKey>& identifiers,
                                                  const std::string& destination) {
  return db_.read([&](Connection& db) -> Result<ConsentState> {
    return consent_of(db, find_patient(db, identifiers), destination);
  });
}

Result<std::optional<PatientConsent>> ConsentRegistry::patient_consent(const PatientKey& key) {
  return db_.read([&](Connection& db) -> Result<std::optional<PatientConsent>> {
    const std::int64_t patient = find_patient(db, {key});
    if (patient == 0) return std::optional<PatientConsent>();
    PatientConsent pc;
    pc.patient_id = patient;
    auto ids = db.prepare(
        "SELECT kind, issuer, value FROM patient_identifiers WHERE patient_id = ?1 ORDER BY kind");
    ids.bind(1, patient);
    while (ids.step()) pc.identifiers.push_back({ids.text(0), ids.text(1), ids.text(2)});
    auto ev = db.prepare(
        "SELECT at, decision, scope, source, operator, reference FROM consent_events "
        "WHERE patient_id = ?1 ORDER BY at, id");
    ev.bind(1, patient);
    while (ev.step())
      pc.history.push_back(
          {ev.int64(0), ev.text(1), ev.text(2), ev.text(3), ev.text(4), ev.text(5)});
    auto st = db.prepare(
        "SELECT DISTINCT s.study_uid FROM study_identifiers si JOIN patient_identifiers pi "
        "ON pi.kind = si.kind AND pi.issuer = si.issuer AND pi.value = si.value "
        "JOIN studies s ON s.id = si.study_id WHERE pi.patient_id = ?1 ORDER BY s.study_uid");
    st.bind(1, patient);
    while (st.step()) pc.study_uids.push_back(st.text(0));
    return std::optional<PatientConsent>(std::move(pc));
  });
}

Result<void> ConsentRegistry::put_mrn_health_number(const std::string& mrn_issuer,
                                                    const std::string& mrn,
                                                    const std::string& health_number,
                                                    const std::string& source) {
  return db_.locked([&](Connection& db) -> Result<void> {
    db.prepare(
          "INSERT INTO mrn_health_numbers(mrn_issuer, mrn, health_number, source, updated_at) "
          "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(mrn_issuer, mrn) DO UPDATE SET "
          "health_number = ?3, source = ?4, updated_at = ?5")
        .bind(1, mrn_issuer)
        .bind(2, mrn)
        .bind(3, health_number)
        .bind(4, source)
        .bind(5, to_epoch_ms(db_.clock().now()))
        .run();
    return {};
  });
}

Result<std::optional<std::string>> ConsentRegistry::health_number_for(const std::string& mrn_issuer,
                                                                      const std::string& mrn) {
  return db_.locked([&](Connection& db) -> Result<std::optional<std::string>> {
    auto st = db.prepare(
        "SELECT health_number FROM mrn_health_numbers WHERE mrn_issuer = ?1 AND mrn = ?2");
    st.bind(1, mrn_issuer).bind(2, mrn);
    if (!st.step()) return std::optional<std::string>();
    return std::optional<std::string>(st.text(0));
  });
}

}  // namespace dirgw::catalog
