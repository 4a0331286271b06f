// The daily report rebuilt from the audit trail alone (issue 15: every policy decision and
// delivery outcome is an audit event). The catalog's report (catalog/day_report.h) is the one
// people read; this one is the proof that the trail tells the same story, and a check on both.
//
// Instances are the day's object_received events (not the duplicates), with their source; each
// instance, per destination, takes the outcome of the last decision or delivery event of its
// study for that destination recorded after it arrived: study_verified -> verified, study_sent
// -> sent, study_failed -> failed, study_withdrawn -> withdrawn, quarantine_action "quarantine"
// -> quarantined, study_held -> held, study_released / delivery_requeued / quarantine release
// -> pending; none -> pending. Events are per study, so an outcome that splits a study (some
// instances accepted and some refused in one round, a newer version superseding a pending one)
// is shown whole: docs/report.md says where the two reports can differ.
#pragma once

#include <string>
#include <vector>

#include "audit/audit.h"
#include "catalog/day_report.h"

namespace dirgw::report {

// `events`: the trail from `from_ms` on (at least), oldest first.
catalog::DayCounts counts_from_audit(const std::vector<audit::Event>& events, std::int64_t from_ms,
                                     std::int64_t to_ms,
                                     const std::vector<std::string>& destinations);

}  // namespace dirgw::report
