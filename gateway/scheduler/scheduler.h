// The scheduler: decides when a study is ready and when each destination sends what.
//   Readiness  — a study with no new instance for stable_age becomes STABLE (then READY).
//   Forwarder  — per destination: picks due deliveries in batches, hands them to its Sender,
//                records each instance's outcome in the catalog (senders never touch SQLite).
// Each has a step(now) that does one round and says when it wants to run next; the threads
// only call step() and wait, so tests drive step() with a fake clock and no sleeps.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "common/clock.h"
#include "config/config.h"
#include "ingest/spool/spool.h"
#include "metrics/metrics.h"
#include "policy/stage/stage.h"
#include "scheduler/backoff.h"
#include "scheduler/wakeup.h"
#include "senders/sender.h"

namespace dirgw::scheduler {

// The sender options a destination's configuration implies.
senders::StowRsOptions stow_options(const config::Destination& d);

class Readiness {
 public:
  // Without a policy stage, studies stop at STABLE (tests drive policy themselves).
  Readiness(catalog::Catalog& catalog, const Clock& clock, Millis stable_age,
            policy::Stage* policy = nullptr)
      : catalog_(catalog), clock_(clock), stable_age_(stable_age), policy_(policy) {}
  struct StepResult {
    int promoted = 0;
    int ready = 0;                  // studies the policy stage made READY
    std::optional<TimePoint> next;  // none: nothing is RECEIVING
  };
  StepResult step();

 private:
  catalog::Catalog& catalog_;
  const Clock& clock_;
  Millis stable_age_;
  policy::Stage* policy_;
};

enum class Circuit { kClosed, kOpen, kHalfOpen };
std::string_view to_string(Circuit c);

struct ForwarderStatus {
  std::string name;
  Circuit circuit = Circuit::kClosed;
  TimePoint open_until{};
  int consecutive_failures = 0;
  double rate_per_s = 0;  // instances accepted per second over the last minute
};

class Forwarder {
 public:
  Forwarder(const config::Destination& destination, catalog::Catalog& catalog,
            const ingest::Spool& spool, senders::Sender& sender, const Clock& clock,
            std::uint64_t backoff_seed = std::random_device{}(),
            metrics::DestinationMetrics* metrics = nullptr);
  struct StepResult {
    int sent = 0, retry = 0, refused = 0;
    bool did_work = false;
    std::optional<TimePoint> next;  // when to run again if nothing wakes us first
  };
  StepResult step();
  const std::string& name() const { return destination_.name; }
  ForwarderStatus status() const;
  // Called after the last check, just before the request (tests pause here).
  void set_before_send_for_test(std::function<void()> hook) { before_send_ = std::move(hook); }

 private:
  // Circuit breaker: counts whole-request failures; thread-safe reads for status.
  void on_request_result(bool whole_failure, TimePoint now);
  // Withdrawal notifications due for this destination; returns when the next one is due.
  std::optional<TimePoint> send_notifications(TimePoint now);
  const config::Destination& destination_;
  catalog::Catalog& catalog_;
  const ingest::Spool& spool_;
  senders::Sender& sender_;
  const Clock& clock_;
  Backoff backoff_;
  mutable std::mutex status_mutex_;
  Circuit circuit_ = Circuit::kClosed;
  TimePoint open_until_{};
  Millis cooldown_{0};
  int consecutive_failures_ = 0;
  std::deque<std::pair<TimePoint, int>> recent_sent_;  // for the current rate
  metrics::DestinationMetrics* metrics_;
  std::function<void()> before_send_;
  std::vector<catalog::DeliveryUpdate> unrecorded_;  // answers the catalog could not take yet
};

// Runs Readiness and the Forwarders on their own threads.
class Scheduler {
 public:
  Scheduler(const config::Config& config, catalog::Catalog& catalog, const ingest::Spool& spool,
            std::vector<std::unique_ptr<senders::Sender>> senders, const Clock& clock,
            policy::Stage* policy, metrics::GatewayMetrics* metrics = nullptr);
  ~Scheduler();
  void start();
  void stop();
  // A new instance was catalogued.
  void instance_received() { readiness_wakeup_.notify(); }
  // Deliveries may have become due (an operator's retry or release).
  void work_available();
  std::vector<ForwarderStatus> status() const;

 private:
  void readiness_loop();
  void forwarder_loop(std::size_t index);

  catalog::Catalog& catalog_;
  const Clock& clock_;
  Readiness readiness_;
  std::vector<std::unique_ptr<senders::Sender>> senders_;
  std::vector<std::unique_ptr<Forwarder>> forwarders_;
  Wakeup readiness_wakeup_;
  std::vector<std::unique_ptr<Wakeup>> forwarder_wakeups_;
  std::vector<std::thread> threads_;
};

}  // namespace dirgw::scheduler
