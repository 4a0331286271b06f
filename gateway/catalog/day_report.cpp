#include "catalog/day_report.h"

#include <set>

namespace dirgw::catalog {

std::string_view to_string(DayOutcome o) {
  switch (o) {
    case DayOutcome::kIsVerified:
      return "verified";
    case DayOutcome::kIsSent:
      return "sent";
    case DayOutcome::kIsFailed:
      return "failed";
    case DayOutcome::kIsWithdrawn:
      return "withdrawn";
    case DayOutcome::kIsQuarantined:
      return "quarantined";
    case DayOutcome::kIsHeld:
      return "held";
    case DayOutcome::kIsSuperseded:
      return "superseded";
    case DayOutcome::kIsPending:
      return "pending";
  }
  return "pending";
}

DayOutcome classify_delivery(std::string_view delivery_state, std::string_view study_state) {
  if (delivery_state == "withdrawn") return DayOutcome::kIsWithdrawn;
  if (delivery_state == "superseded") return DayOutcome::kIsSuperseded;
  if (delivery_state == "verified") return DayOutcome::kIsVerified;
  if (delivery_state == "sent") return DayOutcome::kIsSent;
  if (delivery_state == "failed") return DayOutcome::kIsFailed;
  // Still open (pending, sending): where its study stands for this destination says why.
  if (study_state == "WITHDRAWN") return DayOutcome::kIsWithdrawn;
  if (study_state == "QUARANTINED") return DayOutcome::kIsQuarantined;
  if (study_state == "HELD") return DayOutcome::kIsHeld;
  return DayOutcome::kIsPending;
}

std::int64_t DestinationDay::outcome_total() const {
  std::int64_t n = 0;
  for (const auto& [o, count] : outcomes) n += count;
  return n;
}

namespace {

void count_received(Connection& db, std::int64_t from_ms, std::int64_t to_ms, DayCounts& out) {
  auto st = db.prepare(
      "SELECT source, count(*), count(DISTINCT study_id) FROM instances "
      "WHERE received_at >= ?1 AND received_at < ?2 GROUP BY source ORDER BY source");
  st.bind(1, from_ms).bind(2, to_ms);
  while (st.step()) out.by_source[st.text(0)] = {st.int64(1), st.int64(2)};
  auto all = db.prepare(
      "SELECT count(*), count(DISTINCT study_id) FROM instances "
      "WHERE received_at >= ?1 AND received_at < ?2");
  all.bind(1, from_ms).bind(2, to_ms);
  if (all.step()) {
    out.instances = all.int64(0);
    out.studies = all.int64(1);
  }
}

DestinationDay count_destination(Connection& db, std::int64_t from_ms, std::int64_t to_ms,
                                 const std::string& destination) {
  DestinationDay d;
  d.destination = destination;
  for (auto o : kAllDayOutcomes) d.outcomes[o] = 0;
  auto st = db.prepare(
      "SELECT d.state, coalesce(sd.state, ''), coalesce(sd.reason_code, ''), i.study_id, "
      "i.received_at FROM instances i JOIN deliveries d ON d.instance_id = i.id "
      "AND d.destination = ?3 LEFT JOIN study_destinations sd ON sd.study_id = i.study_id "
      "AND sd.destination = d.destination WHERE i.received_at >= ?1 AND i.received_at < ?2");
  st.bind(1, from_ms).bind(2, to_ms).bind(3, destination);
  std::set<std::int64_t> studies;
  while (st.step()) {
    const auto outcome = classify_delivery(st.text(0), st.text(1));
    ++d.outcomes[outcome];
    ++d.instances;
    studies.insert(st.int64(3));
    const std::string code = st.text(2).empty() ? "unspecified" : st.text(2);
    if (outcome == DayOutcome::kIsQuarantined) ++d.quarantined_by_reason[code];
    if (outcome == DayOutcome::kIsHeld) ++d.held_by_reason[code];
    if (outcome == DayOutcome::kIsPending &&
        (d.oldest_pending_received_ms == 0 || st.int64(4) < d.oldest_pending_received_ms))
      d.oldest_pending_received_ms = st.int64(4);
  }
  d.studies = static_cast<std::int64_t>(studies.size());
  return d;
}

// The figures of studies whose rows were pruned (row_pruner.h, schema 24): final outcomes only,
// added to what the catalog still holds for the day.
void add_pruned(Connection& db, std::int64_t from_ms, std::int64_t to_ms, DayCounts& out) {
  auto st = db.prepare(
      "SELECT kind, name, outcome, sum(instances), sum(studies) FROM pruned_counts "
      "WHERE bucket >= ?1 AND bucket < ?2 GROUP BY kind, name, outcome");
  st.bind(1, from_ms).bind(2, to_ms);
  while (st.step()) {
    const std::string kind = st.text(0), name = st.text(1), outcome = st.text(2);
    const std::int64_t instances = st.int64(3), studies = st.int64(4);
    if (kind == "total") {
      out.instances += instances;
      out.studies += studies;
    } else if (kind == "source") {
      out.by_source[name].instances += instances;
      out.by_source[name].studies += studies;
    } else if (kind == "destination") {
      for (auto& d : out.destinations) {
        if (d.destination != name) continue;
        d.studies += studies;
        for (auto o : kAllDayOutcomes)
          if (to_string(o) == outcome) {
            d.outcomes[o] += instances;
            d.instances += instances;
          }
      }
    }
  }
}

}  // namespace

Result<DayCounts> DayReportQueries::counts(std::int64_t from_ms, std::int64_t to_ms) {
  return db_.read([&](Connection& db) -> Result<DayCounts> {
    DayCounts out;
    out.from_ms = from_ms;
    out.to_ms = to_ms;
    count_received(db, from_ms, to_ms, out);
    for (const auto& name : db_.destinations())
      out.destinations.push_back(count_destination(db, from_ms, to_ms, name));
    add_pruned(db, from_ms, to_ms, out);
    return out;
  });
}

Result<RecentFlow> DayReportQueries::recent_flow(std::int64_t since_ms) {
  return db_.read([&](Connection& db) -> Result<RecentFlow> {
    RecentFlow out;
    out.since_ms = since_ms;
    auto in = db.prepare("SELECT coalesce(sum(size), 0) FROM instances WHERE received_at >= ?1");
    in.bind(1, since_ms);
    if (in.step()) out.ingest_bytes = in.int64(0);
    for (const auto& name : db_.destinations()) {
      auto st = db.prepare(
          "SELECT count(*) FROM deliveries WHERE destination = ?1 AND state IN ('sent', "
          "'verified') AND sent_at >= ?2");
      st.bind(1, name).bind(2, since_ms);
      out.sent[name] = st.step() ? st.int64(0) : 0;
    }
    return out;
  });
}

Result<std::map<std::string, std::int64_t>> DayReportQueries::instances_of_studies(
    const std::vector<std::string>& study_uids) {
  return db_.read([&](Connection& db) -> Result<std::map<std::string, std::int64_t>> {
    std::map<std::string, std::int64_t> out;
    auto st = db.prepare(
        "SELECT count(DISTINCT i.sop_instance_uid) FROM studies s "
        "JOIN instances i ON i.study_id = s.id WHERE s.study_uid = ?1");
    for (const auto& uid : study_uids) {
      st.reset();
      st.bind(1, uid);
      if (st.step() && st.int64(0) > 0) out[uid] = st.int64(0);
    }
    return out;
  });
}

}  // namespace dirgw::catalog
