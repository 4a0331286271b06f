// The scheduler: decides when a study is ready and when each destination sends what.
//   Readiness  — a study with no new instance for stable_age becomes STABLE (then READY).
//   Forwarder  — per destination: picks due deliveries in batches, hands them to its Sender,
//                records each instance's outcome in the catalog (senders never touch SQLite).
//                With `concurrency: N`, N lanes (threads) call step() on the same Forwarder:
//                picking a batch and marking it in flight is serialised, the requests are not.
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
#include "scheduler/backoff.h"
#include "scheduler/bandwidth.h"
#include "scheduler/pacing.h"
#include "scheduler/wakeup.h"
#include "scheduler/windows.h"
#include "senders/dimse/dimse_sender.h"
#include "senders/sender.h"

namespace dirgw::scheduler {

// The sender options a destination's configuration implies.
senders::StowRsOptions stow_options(const config::Destination& d);
// For `type: dimse` (the C-STORE sender, storage commitment); no bandwidth buckets.
senders::DimseOptions dimse_options(const config::Destination& d);

// The policy stage as the scheduler sees it: one round of decisions over STABLE studies. The
// daemon wires the real stage in; the scheduler knows nothing of consent or validation.
struct PolicyRound {
  int studies = 0;  // studies looked at
  int ready = 0;    // made READY
  int failed = 0;   // decisions that could not be recorded (those studies stay STABLE)
  // When policy wants to run again although nothing arrived (a study's wait for its report
  // ends; epoch ms, 0: no such time).
  std::int64_t next_at = 0;
  // send_while_receiving: instances of RECEIVING studies cleared to go now (wakes forwarders).
  int early = 0;
};
using PolicyStep = std::function<PolicyRound()>;

class Readiness {
 public:
  // Without a policy step, studies stop at STABLE (tests drive policy themselves).
  Readiness(catalog::IngestLedger& ingest, const Clock& clock, Millis stable_age,
            PolicyStep policy = {})
      : ingest_(ingest), clock_(clock), stable_age_(stable_age), policy_(std::move(policy)) {}
  struct StepResult {
    int promoted = 0;
    int ready = 0;                  // studies the policy stage made READY
    int early = 0;                  // instances cleared to go while their study is RECEIVING
    bool policy_failing = false;    // decisions cannot be recorded: backing off
    std::optional<TimePoint> next;  // none: nothing is RECEIVING
  };
  StepResult step();

 private:
  catalog::IngestLedger& ingest_;
  const Clock& clock_;
  Millis stable_age_;
  PolicyStep policy_;
  int policy_failures_ = 0;  // rounds in a row that recorded nothing
};

// A bandwidth cap that may differ inside and outside office hours: apply() sets the bucket's
// rate for `now` (every forwarder step calls it; a change takes effect for running transfers).
struct RateSwitch {
  std::shared_ptr<TokenBucket> bucket;
  std::optional<OfficeHours> office_hours;  // none: `outside` always
  std::uint64_t inside = 0, outside = 0;    // bytes/s, 0: unlimited
  void apply(TimePoint now) const;
};

// When and how fast a destination is sent to, beyond its Sender (daemon/destinations.h builds
// it from the configuration). Default: always open, uncapped.
struct ForwardSchedule {
  std::optional<WindowSet> windows;                     // none: always open
  bool stat_bypass = true;                              // STAT studies go outside the windows too
  std::shared_ptr<TokenBucket> bucket, gateway_bucket;  // for status (may be null)
  std::vector<RateSwitch> rates;                        // office-hours switches to apply
  std::string auth = "none";  // none | bearer | oauth2, "+mtls" with a client certificate
  std::shared_ptr<senders::TokenProvider> tokens;  // shared with withdrawal notifications
};

enum class Circuit { kClosed, kOpen, kHalfOpen };
std::string_view to_string(Circuit c);

// After a throttled answer (a 429, or a whole request answered with Retry-After), a destination
// with several lanes sends one request at a time for this long after the last such answer (or
// after the hold it asked for, if that ends later): behind a repository that rate-limits many
// gateways, two lanes each would take shares of its rate less evenly (docs/scheduling.md).
inline constexpr std::chrono::seconds kOneLaneAfterThrottle{60};

struct ForwarderStatus {
  std::string name;
  Circuit circuit = Circuit::kClosed;
  TimePoint open_until{};
  int consecutive_failures = 0;
  double rate_per_s = 0;     // instances accepted per second over the last minute
  bool auth_failed = false;  // the last request failed authentication (401/403, no token)
  std::optional<TimePoint> held_until;  // the repository asked to wait (Retry-After) until then
  std::optional<double> paced_rate;     // requests/s allowed after throttling; none: not pacing
  // Throttled lately (429, or Retry-After) with concurrency > 1: one request at a time until then.
  std::optional<TimePoint> one_lane_until;
  bool scheduled = false;  // has upload windows
  bool window_open = true;
  std::optional<TimePoint> next_open;  // when closed: when the next window opens
  bool stat_bypass = true;
  std::uint64_t cap = 0, gateway_cap = 0;  // bytes/s now in force, 0: none
  std::string auth = "none";
};

class Forwarder {
 public:
  Forwarder(const config::Destination& destination, catalog::Catalog& catalog,
            const ingest::Spool& spool, senders::Sender& sender, const Clock& clock,
            std::uint64_t backoff_seed = std::random_device{}(),
            metrics::DestinationMetrics* metrics = nullptr, senders::Notifier* notifier = nullptr);
  struct StepResult {
    int sent = 0, retry = 0, refused = 0;
    bool did_work = false;
    std::optional<TimePoint> next;  // when to run again if nothing wakes us first
  };
  // Thread-safe: a destination's lanes call it at the same time (the Sender must then be one
  // that takes concurrent sends, senders::make_sender_pool).
  StepResult step();
  // When the lane stops: the answers still waiting are recorded, and a batch begun for the next
  // step goes back to 'pending'.
  void settle_next_batch();
  const std::string& name() const { return destination_.name; }
  ForwarderStatus status() const;
  // Before the first step: windows, caps, auth (daemon/destinations.h). Default: always open.
  void set_schedule(ForwardSchedule schedule) { schedule_ = std::move(schedule); }
  // Called after the last check, just before the request (tests pause here).
  void set_before_send_for_test(std::function<void()> hook) { before_send_ = std::move(hook); }

 private:
  // Circuit breaker: counts whole-request failures; thread-safe reads for status.
  void on_request_result(bool whole_failure, TimePoint now, bool auth_failed = false);
  // The circuit's say on the next batch: how many instances (a half-open probe risks one, and
  // only one lane probes: `probing` is set for it), or none while it is open (r.next: when it
  // may probe) or while another lane's probe is out (a sibling wakes us when it ends). After a
  // Retry-After hold the first lane to go is such a probe too, with a whole batch.
  std::optional<int> batch_limit(TimePoint now, StepResult& r, bool& probing);
  // Picks the due batch and marks it in flight (catalog::DeliveryLedger::begin_send), or says
  // why not through r: one lane at a time, so two lanes never pick the same instances. A batch
  // it returns counts in lanes_sending_ (the caller takes it out when the request is answered).
  // `staggered`: with several lanes, the batch is cut to a share of the limits (lanes_sending_).
  std::optional<catalog::SendBatch> pick_batch(TimePoint now, bool stat_only, int max_count,
                                               bool staggered, StepResult& r);
  // Sends a begun batch and records the answers (or keeps them in unrecorded_). With one request
  // at a time (may_pipeline), a helper thread makes the catalog's one commit of this batch while
  // its request is in flight: the previous request's answers, and the last check of the next
  // batch (catalog::DeliveryLedger::commit_batch). This request's answers then wait in
  // unrecorded_ for the next batch's commit, and the next batch in next_batch_ for the next step;
  // with no next batch, the answers are recorded at once, as with several lanes.
  void send_batch(catalog::SendBatch begun, StepResult& r);
  // The helper's part: picks the next batch and makes the commit (see send_batch).
  struct Prepared {
    std::optional<catalog::SendBatch> next;
    std::vector<catalog::DeliveryUpdate> answers;  // given back when the commit failed
  };
  Prepared prepare_next(std::vector<catalog::DeliveryUpdate> answers, bool pick, TimePoint now);
  // One lane, and nothing (windows, a hold, the circuit, pacing) that could stop the next batch:
  // the next batch may be prepared during the current request.
  bool may_pipeline(TimePoint now) const;
  // The batch begun with the last commit, if any (taken out of next_batch_).
  std::optional<catalog::SendBatch> take_next_batch();
  // Records the answers still waiting and puts a begun batch that will not go back to 'pending',
  // in one commit; false while the catalog refuses (both are then kept for the next step).
  bool settle(std::optional<catalog::SendBatch> batch);
  // A de-identifying destination is never sent an original: due instances without their
  // de-identified copy fail with a reason (e.g. released from a de-identification quarantine).
  void refuse_identified(std::vector<catalog::DueItem>& due);
  // The repository's answer, instance by instance, as the catalog records it (give-up age,
  // authentication failures), counted into r.
  std::vector<catalog::DeliveryUpdate> updates_for(const std::vector<catalog::DueItem>& items,
                                                   const senders::Outcome& outcome, TimePoint after,
                                                   std::int64_t retry_at, StepResult& r) const;
  // Self-pacing: tells the pacer how the repository answered (429/503: throttled).
  void pace(const senders::Outcome& outcome, bool whole_failure, TimePoint after,
            std::int64_t retry_at);
  // Log, rate, circuit, metrics and the next wake-up after a recorded answer.
  void after_request(const senders::Outcome& outcome, std::size_t instances, std::int64_t ms,
                     TimePoint after, std::int64_t retry_at, StepResult& r);
  // Withdrawal notifications due for this destination; returns when the next one is due.
  std::optional<TimePoint> send_notifications(TimePoint now);
  // The upload windows' say: nullopt when nothing may go now (r.next: when a window opens);
  // true when only STAT studies may (closed, stat_bypass); false when anything may.
  std::optional<bool> window_gate(TimePoint now, StepResult& r) const;
  // Nothing due now: when to look again (the next retry, or the next window for a STAT-only
  // step).
  void next_due(TimePoint now, bool stat_only, StepResult& r) const;
  const config::Destination& destination_;
  ForwardSchedule schedule_;
  catalog::Catalog& catalog_;
  const ingest::Spool& spool_;
  senders::Sender& sender_;
  const Clock& clock_;
  std::mutex pick_mutex_;  // picking + begin_send, unrecorded_; before status_mutex_
  // Lanes whose batch is picked and not yet answered. Read and raised under pick_mutex_.
  // Lanes that start together with equal batches share the link equally, finish together and
  // then all wait for their answers while the link idles; so a lane starting while k others
  // are sending takes (k + 1) / concurrency of a batch: from idle, the lanes' requests end at
  // different times and each one's gap (answer, next request) is covered by the others' bytes.
  // Once all are busy every batch is whole again.
  std::atomic<int> lanes_sending_{0};
  std::mutex notify_mutex_;  // one lane sends withdrawal notifications at a time
  Backoff backoff_;          // under status_mutex_ (its random state)
  mutable std::mutex status_mutex_;
  bool probe_in_flight_ = false;  // half-open: one lane's probe is out
  Circuit circuit_ = Circuit::kClosed;
  TimePoint open_until_{};
  Millis cooldown_{0};
  TimePoint held_until_{};  // a Retry-After answer: no lane sends before then
  // Throttled (a 429, or a whole request answered with Retry-After), with several lanes: one
  // request at a time until then (kOneLaneAfterThrottle after the last such answer), the others
  // waiting for its answer (the probe's mechanism, with a whole batch). The lanes neither come
  // back at once when a hold ends nor take a double share of a repository that keeps throttling.
  TimePoint one_lane_until_{};
  Pacer pacer_;  // under status_mutex_: self-pacing after a 429/503
  int consecutive_failures_ = 0;
  bool auth_failed_ = false;
  std::deque<std::pair<TimePoint, int>> recent_sent_;  // for the current rate
  metrics::DestinationMetrics* metrics_;
  senders::Notifier* notifier_;  // withdrawal notifications; none: the destination takes none
  std::function<void()> before_send_;
  // Under pick_mutex_: answers not recorded yet (left for the next batch's commit, or refused by
  // the catalog), and the batch that commit began, which the next step sends.
  std::vector<catalog::DeliveryUpdate> unrecorded_;
  std::optional<catalog::SendBatch> next_batch_;
};

// Runs Readiness and the Forwarders on their own threads: `concurrency` lanes per destination.
// `senders`: one per destination; for a destination with concurrency > 1, one that takes
// concurrent sends (senders::make_sender_pool).
class Scheduler {
 public:
  Scheduler(const config::Config& config, catalog::Catalog& catalog, const ingest::Spool& spool,
            std::vector<std::unique_ptr<senders::Sender>> senders, const Clock& clock,
            PolicyStep policy, metrics::GatewayMetrics* metrics = nullptr,
            std::vector<ForwardSchedule> schedules = {});
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
  void forwarder_loop(std::size_t index, std::size_t lane);
  // Wakes every lane of destination `index` but `except` (after a request: a lane waiting for a
  // sibling's half-open probe, or for work it left, looks again).
  void wake_lanes(std::size_t index, std::size_t except);

  catalog::Catalog& catalog_;
  const Clock& clock_;
  Readiness readiness_;
  std::vector<std::unique_ptr<senders::Sender>> senders_;
  std::vector<std::unique_ptr<senders::Notifier>> notifiers_;
  std::vector<std::unique_ptr<Forwarder>> forwarders_;
  Wakeup readiness_wakeup_;
  // Per destination, one per lane (config::Destination::concurrency): a Wakeup wakes one waiter.
  std::vector<std::vector<std::unique_ptr<Wakeup>>> forwarder_wakeups_;
  std::vector<std::thread> threads_;
};

}  // namespace dirgw::scheduler
