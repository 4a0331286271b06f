// The verification and retention metrics (docs/metrics.md): registered by this module on the
// daemon's registry, one labelled series per destination (verification) or reason (retention),
// all present from the start at 0.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "metrics/metrics.h"

namespace dirgw::verify {

struct DestinationVerifyMetrics {
  metrics::Counter& instances_verified;
  metrics::Counter& bytes_verified;
  metrics::Counter& instances_missing;  // not listed by the repository: queued again (or failed)
  metrics::Counter& instances_mismatched;
  metrics::Counter& check_errors;  // checks that could not run
};

struct RetentionMetrics {
  metrics::Counter& objects_age;
  metrics::Counter& bytes_age;
  metrics::Counter& objects_pressure;
  metrics::Counter& bytes_pressure;
};

class VerifyMetrics {
 public:
  VerifyMetrics(metrics::Registry& registry, const std::vector<std::string>& destinations);
  DestinationVerifyMetrics* destination(const std::string& name);
  RetentionMetrics& retention() { return *retention_; }

 private:
  std::unordered_map<std::string, std::unique_ptr<DestinationVerifyMetrics>> destinations_;
  std::unique_ptr<RetentionMetrics> retention_;
};

}  // namespace dirgw::verify
