// Checks of the host the daemon runs on, shown as warnings by `dirgw status`: is the system
// clock synchronised (audit times and upload windows depend on it), and do the destinations'
// client certificates expire soon. Read-only; nothing here changes the host.
#pragma once

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

// Both of the above, clock first.
std::vector<std::string> host_warnings(const config::Config& config, const Clock& clock);

}  // namespace dirgw::daemon
