#include "verify/metrics.h"

namespace dirgw::verify {

VerifyMetrics::VerifyMetrics(metrics::Registry& registry,
                             const std::vector<std::string>& destinations) {
  auto& verified = registry.counter_family(
      "dirgw_instances_verified_total",
      "Instances the repository lists with the same SOP Class after they were sent",
      {"destination"});
  auto& verified_bytes = registry.counter_family(
      "dirgw_bytes_verified_total", "Bytes of the instances verified", {"destination"});
  auto& missing = registry.counter_family(
      "dirgw_instances_missing_total",
      "Instances the repository acknowledged but did not list at verification (sent again, or "
      "failed past verify.max_resends)",
      {"destination"});
  auto& mismatched = registry.counter_family(
      "dirgw_instances_verify_mismatch_total",
      "Instances the repository lists with another SOP Class (failed)", {"destination"});
  auto& errors = registry.counter_family(
      "dirgw_verification_errors_total",
      "Verification checks that could not run (QIDO-RS refused or absent, time-out); retried",
      {"destination"});
  for (const auto& d : destinations)
    destinations_.emplace(d, std::make_unique<DestinationVerifyMetrics>(DestinationVerifyMetrics{
                                 verified.with({d}), verified_bytes.with({d}), missing.with({d}),
                                 mismatched.with({d}), errors.with({d})}));
  auto& objects = registry.counter_family(
      "dirgw_spool_purged_objects_total",
      "Verified spool objects removed by retention (age: keep_after_verified passed; "
      "disk_pressure: below spool_floor)",
      {"reason"});
  auto& bytes =
      registry.counter_family("dirgw_spool_purged_bytes_total",
                              "Bytes of the spool objects removed by retention", {"reason"});
  retention_ = std::make_unique<RetentionMetrics>(
      RetentionMetrics{objects.with({"age"}), bytes.with({"age"}), objects.with({"disk_pressure"}),
                       bytes.with({"disk_pressure"})});
}

DestinationVerifyMetrics* VerifyMetrics::destination(const std::string& name) {
  auto it = destinations_.find(name);
  return it == destinations_.end() ? nullptr : it->second.get();
}

}  // namespace dirgw::verify
