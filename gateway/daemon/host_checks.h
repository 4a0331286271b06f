// Checks of the host the daemon runs on, shown as warnings by `dirgw status`: is the system
// clock synchronised (audit times and upload windows depend on it), and do the destinations'
// client certificates expire soon. Read-only; nothing here changes the host.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "config/config.h"

namespace dirgw::daemon {

// From ntp_adjtime()'s return value and timex.status: the warning, if the clock is not in sync.
std::optional<std::string> clock_sync_warning(int adjtime_state, int timex_status);
// Asks the kernel (ntp_adjtime, read-only).
std::optional<std::string> clock_sync_warning();

// Client certificates of the destinations that are unreadable, not PEM, expired or expiring
// within 30 days of `now`.
std::vector<std::string> certificate_warnings(const std::vector<config::Destination>& destinations,
                                              TimePoint now);

// Every certificate the configuration names that dirgw presents: the DICOM receiver's,
// destinations' client certificates (STOW-RS, DICOM TLS), the audit forwarder's.
struct ConfiguredCertificate {
  std::string use;   // "dicom_receiver", "destination", "destination_dimse", "audit_syslog"
  std::string name;  // the destination's name, else ""
  std::filesystem::path path;
};
std::vector<ConfiguredCertificate> configured_certificates(const config::Config& config);
// The first PEM certificate's notAfter, seconds since the epoch; none if unreadable or not PEM.
std::optional<std::int64_t> certificate_not_after(const std::filesystem::path& pem);

// Both of the above, clock first.
std::vector<std::string> host_warnings(const config::Config& config, const Clock& clock);

}  // namespace dirgw::daemon
