#include "daemon/ops_metrics.h"

#include "daemon/host_checks.h"

namespace dirgw::daemon {

void register_ops_metrics(metrics::Registry& registry, const config::Config& config,
                          std::function<std::optional<bool>()> audit_forwarding_ok) {
  // Read at scrape time (a rotated certificate shows at once); a file that cannot be read is
  // left out, and dirgw status warns about it (host_checks).
  registry.gauge_callback(
      "dirgw_certificate_expiry_timestamp_seconds",
      "notAfter of each certificate dirgw presents (Unix time), by use and destination.",
      {"use", "destination"}, [certs = configured_certificates(config)] {
        std::vector<metrics::Sample> out;
        for (const auto& c : certs)
          if (auto t = certificate_not_after(c.path))
            out.push_back({{c.use, c.name}, static_cast<double>(*t)});
        return out;
      });
  const double floor = static_cast<double>(config.retention.spool_floor);
  registry.gauge_callback("dirgw_spool_floor_bytes",
                          "retention.spool_floor: free bytes below which ingest is refused.",
                          [floor] { return floor; });
  registry.gauge_callback(
      "dirgw_audit_forwarding_up",
      "1 while audit forwarding delivers, 0 while it fails; absent when it is off.", {},
      [ok = std::move(audit_forwarding_ok)] {
        std::vector<metrics::Sample> out;
        if (auto v = ok ? ok() : std::nullopt) out.push_back({{}, *v ? 1.0 : 0.0});
        return out;
      });
}

}  // namespace dirgw::daemon
