// Turns the configured destinations into what forwards to them: a Sender per destination (STOW-RS
// or DIMSE C-STORE), its upload windows, its bandwidth buckets (its own and the gateway-wide
// one, with office-hours rates) and its token provider (OAuth2). The composition root calls it
// once at start; a configuration error here (an unreadable OAuth2 secret file) stops the start.
#pragma once

#include <memory>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "config/config.h"
#include "scheduler/scheduler.h"
#include "senders/sender.h"

namespace dirgw::daemon {

struct Destinations {
  std::vector<std::unique_ptr<senders::Sender>> senders;  // configuration order
  std::vector<scheduler::ForwardSchedule> schedules;      // same order
};

Result<Destinations> build_destinations(const config::Config& config, const Clock& clock);

}  // namespace dirgw::daemon
