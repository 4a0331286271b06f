// Turns the configured destinations into what forwards to them: a Sender per destination (STOW-RS
// or DIMSE C-STORE), its upload windows, its bandwidth buckets (its own and the gateway-wide
// one, with office-hours rates) and its token provider (OAuth2). The composition root calls it
// once at start; a destination with `transcode:` gets its sender wrapped in the transcoding hook
// (senders/transcode). A configuration error here (an unreadable OAuth2 secret file) stops the
// start.
#pragma once

#include <memory>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "scheduler/scheduler.h"
#include "senders/sender.h"
#include "senders/transcode/transcoding_sender.h"

namespace dirgw::daemon {

struct Destinations {
  std::vector<std::unique_ptr<senders::Sender>> senders;  // configuration order
  std::vector<scheduler::ForwardSchedule> schedules;      // same order
  // Same order; null where transcoding is off. Shared with status and metrics.
  std::vector<std::shared_ptr<senders::transcode::Counters>> transcoding;
};

// `spool_tmp`: where transcoded copies are written (the spool's tmp/, emptied at every start).
Result<Destinations> build_destinations(const config::Config& config, const Clock& clock,
                                        const std::filesystem::path& spool_tmp);

}  // namespace dirgw::daemon

namespace dirgw::daemon {

// dirgw_transcode_objects_total{destination,result} and dirgw_transcode_bytes_saved_total
// {destination}, read from the counters at scrape time; only when a destination transcodes.
void register_transcode_metrics(
    metrics::Registry& registry, const std::vector<std::string>& names,
    const std::vector<std::shared_ptr<senders::transcode::Counters>>& counters);

}  // namespace dirgw::daemon
