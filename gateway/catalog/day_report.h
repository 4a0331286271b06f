// The daily reconciliation report's counts (issue 15, docs/report.md): for the instances received
// in a time range (one facility day), which outcome each reached per destination. Every instance
// received in the range is in exactly one outcome column per destination (classify_delivery
// decides, by a fixed precedence), so the columns add up to what was received. Read-only, on the
// read connection; the range query uses the instances_received index (schema 22).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/database.h"

namespace dirgw::catalog {

// The outcome columns, in report order. Exactly one per (instance, destination).
enum class DayOutcome {
  kIsVerified,     // the repository lists it (QIDO-RS)
  kIsSent,         // acknowledged by the repository, not (yet) verified
  kIsFailed,       // given up: refused for good, or lost by the repository too often
  kIsWithdrawn,    // consent withdrawn before it left
  kIsQuarantined,  // its study is quarantined for this destination (by reason)
  kIsHeld,        // its study is held for this destination (by reason: no-consent, new-version ...)
  kIsSuperseded,  // a newer version of the same SOP instance replaced it before it left
  kIsPending,     // still to go (ready, sending, waiting to retry, not yet stable)
};
inline constexpr DayOutcome kAllDayOutcomes[] = {
    DayOutcome::kIsVerified,   DayOutcome::kIsSent,        DayOutcome::kIsFailed,
    DayOutcome::kIsWithdrawn,  DayOutcome::kIsQuarantined, DayOutcome::kIsHeld,
    DayOutcome::kIsSuperseded, DayOutcome::kIsPending};
std::string_view to_string(DayOutcome o);

// The precedence: the delivery's own final state first (withdrawn, superseded, verified, sent,
// failed: what happened to this instance), then, for a delivery still open (pending, sending),
// the state of its study for the destination (WITHDRAWN, QUARANTINED, HELD), else pending.
DayOutcome classify_delivery(std::string_view delivery_state, std::string_view study_state);

struct DestinationDay {
  std::string destination;
  std::int64_t instances = 0, studies = 0;      // received in the range, with a delivery here
  std::map<DayOutcome, std::int64_t> outcomes;  // every column, zeros included
  std::map<std::string, std::int64_t> quarantined_by_reason, held_by_reason;  // reason codes
  std::int64_t oldest_pending_received_ms = 0;                                // 0: nothing pending
  std::int64_t outcome_total() const;
};

struct SourceCount {
  std::int64_t instances = 0, studies = 0;
};

struct DayCounts {
  std::int64_t from_ms = 0, to_ms = 0;  // [from, to): the facility day in UTC epoch ms
  std::int64_t instances = 0, studies = 0;
  // "dicom:<calling AE>", "folder:<name>", "pull:<source>", "hl7:<application>".
  std::map<std::string, SourceCount> by_source;
  std::vector<DestinationDay> destinations;  // in configuration order
};

// What came in and went out since a moment: the rates dirgw status forecasts from.
struct RecentFlow {
  std::int64_t since_ms = 0;
  std::int64_t ingest_bytes = 0;             // of the instances received since
  std::map<std::string, std::int64_t> sent;  // destination -> instances acknowledged since
};

class DayReportQueries {
 public:
  explicit DayReportQueries(Database& db) : db_(db) {}
  // One row per configured destination (even with nothing received); a delivery to a
  // destination no longer configured is not reported.
  Result<DayCounts> counts(std::int64_t from_ms, std::int64_t to_ms);
  // Instances received (bytes) and acknowledged per destination since `since_ms`; both read by
  // index (instances_received, deliveries_verify).
  Result<RecentFlow> recent_flow(std::int64_t since_ms);
  // For each of `study_uids`, the SOP instances the catalog holds of it (received on any day; a
  // new version of an instance counted once): what dirgw has of the studies a PACS counts for a
  // day (report.pacs). A study the catalog never received is absent from the map.
  Result<std::map<std::string, std::int64_t>> instances_of_studies(
      const std::vector<std::string>& study_uids);
  // The catalog's clock (a test's fake one): "now" for the report's day and pending ages.
  TimePoint now() const { return db_.clock().now(); }

 private:
  Database& db_;
};

}  // namespace dirgw::catalog
