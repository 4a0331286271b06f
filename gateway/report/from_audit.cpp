#include "report/from_audit.h"

#include <map>
#include <optional>
#include <set>

namespace dirgw::report {

namespace {

using catalog::DayOutcome;

struct Arrival {
  std::int64_t seq = 0, at_ms = 0;
  std::string study_uid, source;
};

struct Decision {
  DayOutcome outcome = DayOutcome::kIsPending;
  std::string code;  // reason code, for held and quarantined
};

std::string detail_text(const audit::Event& e, const char* key) {
  if (!e.detail.is_object()) return {};
  auto it = e.detail.find(key);
  return it != e.detail.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// What a study-level event says about the study's instances for its destination; nullopt: it
// says nothing about their outcome.
std::optional<Decision> decision_of(const audit::Event& e) {
  using audit::EventType;
  const std::string code = detail_text(e, "reason_code");
  switch (e.type) {
    case EventType::kStudyVerified:
      return Decision{DayOutcome::kIsVerified, ""};
    case EventType::kStudySent:
      return Decision{DayOutcome::kIsSent, ""};
    case EventType::kStudyFailed:
      return Decision{DayOutcome::kIsFailed, ""};
    case EventType::kStudyWithdrawn:
      return Decision{DayOutcome::kIsWithdrawn, ""};
    case EventType::kStudyHeld:
      return Decision{DayOutcome::kIsHeld, code};
    case EventType::kStudyReleased:
    case EventType::kDeliveryRequeued:
      return Decision{DayOutcome::kIsPending, ""};
    case EventType::kQuarantineAction: {
      const std::string action = detail_text(e, "action");
      if (action == "quarantine") return Decision{DayOutcome::kIsQuarantined, code};
      if (action == "release") return Decision{DayOutcome::kIsPending, ""};
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

bool is_duplicate(const audit::Event& e) {
  if (!e.detail.is_object()) return false;
  auto it = e.detail.find("duplicate");
  return it != e.detail.end() && it->is_boolean() && it->get<bool>();
}

}  // namespace

catalog::DayCounts counts_from_audit(const std::vector<audit::Event>& events, std::int64_t from_ms,
                                     std::int64_t to_ms,
                                     const std::vector<std::string>& destinations) {
  catalog::DayCounts out;
  out.from_ms = from_ms;
  out.to_ms = to_ms;
  std::vector<Arrival> arrivals;
  // (study, destination) -> its decision events in trail order: (seq, decision).
  std::map<std::pair<std::string, std::string>, std::vector<std::pair<std::int64_t, Decision>>>
      decisions;
  for (const auto& e : events) {
    if (e.type == audit::EventType::kObjectReceived) {
      if (e.at_ms >= from_ms && e.at_ms < to_ms && !is_duplicate(e))
        arrivals.push_back({e.seq, e.at_ms, e.study_uid, detail_text(e, "source")});
      continue;
    }
    if (auto d = decision_of(e)) decisions[{e.study_uid, e.destination}].emplace_back(e.seq, *d);
  }
  std::map<std::string, std::set<std::string>> studies_by_source;
  std::set<std::string> studies;
  for (const auto& a : arrivals) {
    ++out.by_source[a.source].instances;
    studies_by_source[a.source].insert(a.study_uid);
    studies.insert(a.study_uid);
  }
  for (const auto& [source, set] : studies_by_source)
    out.by_source[source].studies = static_cast<std::int64_t>(set.size());
  out.instances = static_cast<std::int64_t>(arrivals.size());
  out.studies = static_cast<std::int64_t>(studies.size());
  for (const auto& dest : destinations) {
    catalog::DestinationDay d;
    d.destination = dest;
    for (auto o : catalog::kAllDayOutcomes) d.outcomes[o] = 0;
    for (const auto& a : arrivals) {
      Decision last;
      if (auto it = decisions.find({a.study_uid, dest}); it != decisions.end())
        for (const auto& [seq, decision] : it->second)
          if (seq > a.seq) last = decision;
      ++d.outcomes[last.outcome];
      ++d.instances;
      const std::string code = last.code.empty() ? "unspecified" : last.code;
      if (last.outcome == DayOutcome::kIsQuarantined) ++d.quarantined_by_reason[code];
      if (last.outcome == DayOutcome::kIsHeld) ++d.held_by_reason[code];
      if (last.outcome == DayOutcome::kIsPending &&
          (d.oldest_pending_received_ms == 0 || a.at_ms < d.oldest_pending_received_ms))
        d.oldest_pending_received_ms = a.at_ms;
    }
    d.studies = out.studies;
    out.destinations.push_back(std::move(d));
  }
  return out;
}

}  // namespace dirgw::report
