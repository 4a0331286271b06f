// Test helper: the stable-age step followed by a policy that admits every STABLE study.
#pragma once

#include "catalog/catalog.h"

namespace dirgw::testing {

inline int promote_ready(catalog::Catalog& c, std::int64_t cutoff_ms) {
  auto promoted = c.ingest.promote_stable(cutoff_ms);
  auto work = c.policy.policy_work(1000);
  for (const auto& w : *work) {
    std::vector<catalog::PolicyDecision> decisions;
    for (const auto& d : w.destinations) decisions.push_back({d, catalog::StudyState::kReady, ""});
    (void)c.policy.record_policy(w.study_id, {}, {}, decisions, {});
  }
  return *promoted;
}

}  // namespace dirgw::testing
