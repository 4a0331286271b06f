// Metrics that no pipeline stage owns, for the operations alert rules
// (packaging/prometheus/dirgw-alerts.yml, docs/metrics.md): when the configured certificates
// expire, the spool's floor beside its free space, whether audit forwarding delivers.
#pragma once

#include <functional>
#include <optional>

#include "config/config.h"
#include "metrics/metrics.h"

namespace dirgw::daemon {

// audit_forwarding_ok: true while the audit forwarder delivers, false while it fails; none when
// audit forwarding is off (the gauge is then absent).
void register_ops_metrics(metrics::Registry& registry, const config::Config& config,
                          std::function<std::optional<bool>()> audit_forwarding_ok);

}  // namespace dirgw::daemon
