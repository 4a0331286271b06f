#include "catalog/queries.h"

#include <map>
#include <set>

#include "catalog/internal.h"

namespace dirgw::catalog {

int Queries::schema_version() {
  auto v = db_.read([](Connection& db) {
    auto st = db.prepare("PRAGMA user_version");
    st.step();
    return static_cast<int>(st.int64(0));
  });
  return v ? *v : 0;
}

namespace {

// One destination's part of status, from the counters of schema 27 and partial indexes: what it
// reads grows with what it shows (the backlog's first row, studies in error), not with the
// catalog. The plans are asserted by tests/unit/catalog/query_plans_test.cpp.
DestinationStatus destination_status(Connection& db, const std::string& name) {
  DestinationStatus d;
  d.name = name;
  // Instances per state are the study's deliveries to this destination, superseded versions left
  // out: a SENT study counts what was (or will be) sent, not every version.
  auto st = db.prepare(
      "SELECT state, studies, deliveries FROM study_destination_counts "
      "WHERE destination = ?1 AND studies > 0 ORDER BY state");
  st.bind(1, name);
  while (st.step()) d.states.push_back({st.text(0), st.int64(1), st.int64(2)});
  // A quarantined study's instances wait for a person, not for the destination.
  // Of them, those of a HELD study (consent, operator, report): they do not drain while held,
  // so the forecast leaves them out (docs/report.md#forecasts).
  auto pend = db.prepare(
      "SELECT coalesce(sum(open), 0), coalesce(sum(open_bytes), 0), "
      "coalesce(sum(CASE WHEN state = 'HELD' THEN open END), 0) FROM "
      "study_destination_counts WHERE destination = ?1 AND state != 'QUARANTINED'");
  pend.bind(1, name);
  pend.step();
  d.pending_instances = pend.int64(0);
  d.pending_bytes = pend.int64(1);
  d.held_instances = pend.int64(2);
  // Instance ids grow as instances arrive: the first open delivery by id is the oldest.
  auto oldest = db.prepare(
      "SELECT i.received_at FROM deliveries d JOIN instances i ON i.id = d.instance_id "
      "WHERE d.destination = ?1 AND d.state IN ('pending', 'sending') "
      "AND NOT EXISTS (SELECT 1 FROM study_destinations sd WHERE sd.study_id = d.study_id "
      "AND sd.destination = d.destination AND sd.state = 'QUARANTINED') "
      "ORDER BY d.instance_id LIMIT 1");
  oldest.bind(1, name);
  d.oldest_pending_at = oldest.step() ? oldest.int64(0) : 0;
  auto ds = db.prepare(
      "SELECT coalesce(last_success_at, 0), coalesce(last_error_at, 0), last_error "
      "FROM destination_status WHERE destination = ?1");
  ds.bind(1, name);
  if (ds.step()) {
    d.last_success_at = ds.int64(0);
    d.last_error_at = ds.int64(1);
    d.last_error = ds.text(2);
  }
  auto waiting = db.prepare(
      "SELECT count(*) FROM study_destinations WHERE destination = ?1 AND state = 'HELD' "
      "AND reason_code = ?2");
  waiting.bind(1, name).bind(2, reason::kWaitingReport);
  waiting.step();
  d.waiting_report = waiting.int64(0);
  auto without = db.prepare(
      "SELECT count(*) FROM study_destinations WHERE destination = ?1 "
      "AND report_note LIKE 'sent without report%'");
  without.bind(1, name);
  without.step();
  d.without_report = without.int64(0);
  return d;
}

}  // namespace

Result<Status> Queries::status() {
  return db_.read([&](Connection& db) -> Result<Status> {
    Status s;
    {
      auto st = db.prepare("PRAGMA user_version");
      st.step();
      s.schema_version = static_cast<int>(st.int64(0));
    }
    // Counter tables kept by triggers (schema 27): status reads a few rows whatever the
    // catalog's size, never the studies, deliveries or objects it counts.
    {
      auto st = db.prepare(
          "SELECT coalesce(sum(studies), 0), coalesce(sum(instances), 0), "
          "coalesce(sum(bytes), 0) FROM study_counts");
      st.step();
      s.studies = st.int64(0);
      s.instances = st.int64(1);
      s.bytes = st.int64(2);
    }
    {
      auto st = db.prepare(
          "SELECT state, studies, instances FROM study_counts WHERE studies > 0 ORDER BY state");
      while (st.step()) s.ingest_states.push_back({st.text(0), st.int64(1), st.int64(2)});
    }
    for (const auto& name : db_.destinations())
      s.destinations.push_back(destination_status(db, name));
    {
      // Not count(*), a walk of the whole table: refusals are only ever added at the end and
      // pruned from the start (row_pruner.cpp), so their ids are contiguous.
      auto st = db.prepare(
          "SELECT coalesce((SELECT max(id) FROM refusals) - (SELECT min(id) FROM refusals) + 1, "
          "0)");
      st.step();
      s.refusals = st.int64(0);
      auto last = db.prepare(
          "SELECT at, source, calling_ae, peer, reason, reason_code FROM refusals "
          "ORDER BY id DESC LIMIT 1");
      if (last.step())
        s.last_refusal = Refusal{last.int64(0), last.text(1), last.text(2),
                                 last.text(3),  last.text(4), last.text(5)};
      auto rec = db.prepare(
          "SELECT at, temporaries, adopted, quarantined, missing FROM reconciliations "
          "ORDER BY id DESC LIMIT 1");
      if (rec.step())
        s.last_reconciliation = Reconciliation{
            rec.int64(0), static_cast<int>(rec.int64(1)), static_cast<int>(rec.int64(2)),
            static_cast<int>(rec.int64(3)), static_cast<int>(rec.int64(4))};
    }
    return s;
  });
}

Result<std::vector<StudySummary>> Queries::studies(const std::string& state_filter, int limit,
                                                   const std::string& destination_filter) {
  return db_.read([&](Connection& db) -> Result<std::vector<StudySummary>> {
    auto st = db.prepare(
        "SELECT s.id, s.study_uid, s.state, s.instance_count, s.byte_count, s.first_received_at, "
        "s.last_received_at, s.priority FROM studies s "
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
      s.priority = static_cast<int>(st.int64(7));
      out.push_back(std::move(s));
    }
    for (std::size_t i = 0; i < ids.size(); ++i) {
      auto sd = db.prepare(
          "SELECT destination, state FROM study_destinations WHERE study_id = ?1 "
          "ORDER BY destination");
      sd.bind(1, ids[i]);
      while (sd.step()) out[i].destination_states.emplace_back(sd.text(0), sd.text(1));
    }
    return out;
  });
}

Result<std::optional<StudyDetail>> Queries::study(const std::string& study_uid) {
  return db_.read([&](Connection& db) -> Result<std::optional<StudyDetail>> {
    auto st = db.prepare(
        "SELECT id, state, instance_count, byte_count, first_received_at, last_received_at, "
        "priority FROM studies WHERE study_uid = ?1");
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
    d.summary.priority = static_cast<int>(st.int64(6));
    auto sd = db.prepare(
        "SELECT destination, state, reason, round, updated_at, coalesce(sent_at, 0), "
        "verify_error, coalesce(verified_at, 0), report_note "
        "FROM study_destinations WHERE study_id = ?1 ORDER BY destination");
    sd.bind(1, id);
    while (sd.step()) {
      d.destinations.push_back({sd.text(0), sd.text(1), sd.text(2), static_cast<int>(sd.int64(3)),
                                sd.int64(4), sd.int64(5), sd.text(6), sd.int64(7), sd.text(8)});
      d.summary.destination_states.emplace_back(sd.text(0), sd.text(1));
    }
    auto rounds = db.prepare(
        "SELECT d.destination, d.round, count(*), sum(d.state IN ('sent', 'verified')), "
        "sum(d.state = 'failed'), "
        "sum(d.state IN ('pending', 'sending')), coalesce(min(d.sent_at), 0), "
        "coalesce(max(d.sent_at), 0) "
        "FROM deliveries d JOIN instances i ON i.id = d.instance_id WHERE i.study_id = ?1 "
        "GROUP BY d.destination, d.round ORDER BY d.destination, d.round");
    rounds.bind(1, id);
    while (rounds.step())
      d.rounds.push_back({rounds.text(0), static_cast<int>(rounds.int64(1)), rounds.int64(2),
                          rounds.int64(3), rounds.int64(4), rounds.int64(5), rounds.int64(6),
                          rounds.int64(7)});
    auto inst = db.prepare(
        "SELECT id, sop_instance_uid, sop_class_uid, series_uid, modality, transfer_syntax, "
        "object_sha256, flags, calling_ae, size, received_at, source, "
        "(SELECT purged_at IS NOT NULL FROM objects o WHERE o.sha256 = object_sha256) "
        "FROM instances WHERE study_id = ?1 ORDER BY id");
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
      i.source = inst.text(11);
      i.purged = !inst.is_null(12) && inst.int64(12) != 0;
      d.instances.push_back(std::move(i));
    }
    auto del = db.prepare(
        "SELECT destination, state, last_error, attempts, round, next_attempt_at, "
        "coalesce(sent_at, 0), coalesce(verified_at, 0), resends FROM deliveries "
        "WHERE instance_id = ?1 ORDER BY destination");
    for (std::size_t k = 0; k < ids.size(); ++k) {
      del.reset();
      del.bind(1, ids[k]);
      while (del.step())
        d.instances[k].deliveries.push_back(
            {del.text(0), del.text(1), del.text(2), static_cast<int>(del.int64(3)),
             static_cast<int>(del.int64(4)), del.int64(5), del.int64(6), del.int64(7),
             static_cast<int>(del.int64(8))});
    }
    return std::optional<StudyDetail>(std::move(d));
  });
}

Result<std::vector<StudySummary>> Queries::quarantined(int limit) {
  return studies("QUARANTINED", limit);
}

}  // namespace dirgw::catalog
