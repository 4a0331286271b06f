#include "scheduler/scheduler.h"

#include <algorithm>
#include <future>
#include <set>

#include "log/log.h"

namespace dirgw::scheduler {

Readiness::StepResult Readiness::step() {
  StepResult r;
  const TimePoint now = clock_.now();
  auto promoted = ingest_.promote_stable(to_epoch_ms(now - stable_age_));
  if (!promoted) {
    log::error("readiness: catalog error", {{"error", promoted.error().to_string()}});
    r.next = now + std::chrono::seconds(5);
    return r;
  }
  r.promoted = *promoted;
  std::int64_t policy_next = 0;
  if (policy_) {
    // Round after round while decisions get recorded; a round that records nothing (the catalog
    // refuses every write) ends the loop and backs off instead of spinning on the catalog.
    for (;;) {
      const PolicyRound p = policy_();
      r.ready += p.ready;
      r.early += p.early;
      policy_next = p.next_at;
      if (p.studies == 0) {
        policy_failures_ = 0;
        break;
      }
      if (p.failed == p.studies) {
        ++policy_failures_;
        r.policy_failing = true;
        break;
      }
      policy_failures_ = 0;
    }
  }
  auto oldest = ingest_.oldest_receiving();
  if (oldest && oldest->has_value()) r.next = from_epoch_ms(**oldest) + stable_age_;
  if (policy_next != 0 && (!r.next || from_epoch_ms(policy_next) < *r.next))
    r.next = from_epoch_ms(policy_next);
  if (r.policy_failing) {
    const Millis backoff(std::min<std::int64_t>(1000LL << std::min(policy_failures_, 6), 60'000));
    if (!r.next || *r.next > now + backoff) r.next = now + backoff;
  }
  return r;
}

Forwarder::Forwarder(const config::Destination& destination, catalog::Catalog& catalog,
                     const ingest::Spool& spool, senders::Sender& sender, const Clock& clock,
                     std::uint64_t backoff_seed, metrics::DestinationMetrics* metrics,
                     senders::Notifier* notifier)
    : destination_(destination),
      catalog_(catalog),
      spool_(spool),
      sender_(sender),
      clock_(clock),
      backoff_(destination.retry_initial, destination.retry_max, backoff_seed,
               JitterPolicy{.retry_after_max = destination.retry_after_max}),
      pacer_(PacingPolicy{.enabled = destination.pacing.enabled,
                          .decrease = destination.pacing.decrease,
                          .increase = destination.pacing.increase,
                          .release_after = destination.pacing.release_after},
             backoff_seed + 1),
      metrics_(metrics),
      notifier_(notifier) {}

senders::StowRsOptions stow_options(const config::Destination& d) {
  senders::StowRsOptions o;
  o.base_url = d.url;
  o.ca_file = d.auth.ca;
  o.client_cert = d.auth.client_cert;
  o.client_key = d.auth.client_key;
  o.bearer_token_file = d.auth.bearer_token_file;
  o.verify_peer = d.auth.verify_peer;
  o.connect_timeout = d.connect_timeout;
  o.request_timeout = d.request_timeout;
  return o;
}

senders::DimseOptions dimse_options(const config::Destination& d) {
  senders::DimseOptions o;
  o.host = d.dimse.host;
  o.port = static_cast<std::uint16_t>(d.dimse.port);
  o.called_ae = d.dimse.ae_title;
  o.calling_ae = d.dimse.calling_ae;
  o.connect_timeout = d.connect_timeout;
  o.tls.enabled = d.dimse.tls;
  o.tls.ca_file = d.dimse.ca;
  o.tls.client_cert = d.dimse.client_cert;
  o.tls.client_key = d.dimse.client_key;
  o.tls.verify_peer = d.dimse.verify_peer;
  o.tls.verify_hostname = d.dimse.verify_hostname;
  o.decompress = d.dimse.decompress == "never"      ? senders::DimseOptions::Decompress::kNever
                 : d.dimse.decompress == "lossless" ? senders::DimseOptions::Decompress::kLossless
                                                    : senders::DimseOptions::Decompress::kAlways;
  return o;
}

std::optional<TimePoint> Forwarder::send_notifications(TimePoint now) {
  if (notifier_ == nullptr) return std::nullopt;
  // Another lane is at it: it sends what is due and keeps the next deadline.
  std::unique_lock one_lane(notify_mutex_, std::try_to_lock);
  if (!one_lane.owns_lock()) return std::nullopt;
  auto due = catalog_.delivery.due_notifications(destination_.name, to_epoch_ms(now));
  if (due) {
    for (const auto& n : *due) {
      auto out = notifier_->notify(n.body);
      std::unique_lock lock(status_mutex_);
      const auto next = to_epoch_ms(clock_.now() + backoff_.next(n.attempts + 1, out.retry_after));
      lock.unlock();
      (void)catalog_.delivery.record_notification(n.id, out.ok, out.ok ? "" : out.message,
                                                  out.ok ? 0 : next);
      log::info(out.ok ? "withdrawal notification delivered"
                       : "withdrawal notification not delivered: will retry",
                {{"destination", destination_.name}, {"detail", out.message}});
    }
  }
  auto next = catalog_.delivery.next_notification(destination_.name);
  if (next && next->has_value()) return from_epoch_ms(**next);
  return std::nullopt;
}

std::string_view to_string(Circuit c) {
  switch (c) {
    case Circuit::kClosed:
      return "closed";
    case Circuit::kOpen:
      return "open";
    case Circuit::kHalfOpen:
      return "half-open";
  }
  return "?";
}

void RateSwitch::apply(TimePoint now) const {
  if (!bucket || !office_hours) return;
  const std::uint64_t want = office_hours->pick(now, inside, outside);
  if (bucket->rate() != want) bucket->set_rate(want);
}

ForwarderStatus Forwarder::status() const {
  const TimePoint now = clock_.now();
  ForwarderStatus st;
  {
    std::lock_guard lock(status_mutex_);
    const TimePoint since = now - std::chrono::minutes(1);
    int sent = 0;
    for (const auto& [at, n] : recent_sent_)
      if (at >= since) sent += n;
    st.name = destination_.name;
    st.circuit = circuit_;
    st.open_until = open_until_;
    st.consecutive_failures = consecutive_failures_;
    st.rate_per_s = sent / 60.0;
    st.auth_failed = auth_failed_;
    if (now < held_until_) st.held_until = held_until_;
    if (now < one_lane_until_) st.one_lane_until = one_lane_until_;
    st.paced_rate = pacer_.rate(now);
  }
  st.scheduled = schedule_.windows.has_value();
  if (schedule_.windows) {
    st.window_open = schedule_.windows->open_at(now);
    if (!st.window_open) st.next_open = schedule_.windows->next_open(now);
  }
  st.stat_bypass = schedule_.stat_bypass;
  if (schedule_.bucket) st.cap = schedule_.bucket->rate();
  if (schedule_.gateway_bucket) st.gateway_cap = schedule_.gateway_bucket->rate();
  st.auth = schedule_.auth;
  return st;
}

std::optional<bool> Forwarder::window_gate(TimePoint now, StepResult& r) const {
  if (!schedule_.windows || schedule_.windows->open_at(now)) return false;
  if (schedule_.stat_bypass) return true;
  r.next = schedule_.windows->next_open(now);
  return std::nullopt;
}

void Forwarder::on_request_result(bool whole_failure, TimePoint now, bool auth_failed) {
  std::lock_guard lock(status_mutex_);
  auth_failed_ = auth_failed;
  if (!whole_failure) {
    if (circuit_ != Circuit::kClosed)
      log::info("destination answers again: circuit closed", {{"destination", destination_.name}});
    circuit_ = Circuit::kClosed;
    consecutive_failures_ = 0;
    cooldown_ = Millis(0);
    return;
  }
  ++consecutive_failures_;
  // An authentication failure opens the circuit at once: every request would fail alike.
  if (auth_failed)
    consecutive_failures_ = std::max(consecutive_failures_, destination_.circuit_failures);
  if (circuit_ == Circuit::kHalfOpen || consecutive_failures_ >= destination_.circuit_failures) {
    cooldown_ = circuit_ == Circuit::kHalfOpen
                    ? std::min(cooldown_ * 2,
                               std::max(destination_.retry_max, destination_.circuit_cooldown))
                    : destination_.circuit_cooldown;
    circuit_ = Circuit::kOpen;
    // Jittered: gateways whose circuits opened in the same outage probe at different times, and
    // so do not all come back at once when the repository recovers.
    open_until_ = now + backoff_.cooldown(cooldown_);
    log::warn("destination keeps failing: circuit open, will probe with one instance",
              {{"destination", destination_.name},
               {"failures_in_a_row", std::to_string(consecutive_failures_)},
               {"probe_at", format_utc(open_until_)}});
  }
}

std::optional<int> Forwarder::batch_limit(TimePoint now, StepResult& r, bool& probing) {
  std::lock_guard lock(status_mutex_);
  if (now < held_until_) {  // the repository said when to come back (Retry-After)
    r.next = held_until_;
    return std::nullopt;
  }
  if (circuit_ == Circuit::kOpen) {
    if (now < open_until_) {
      r.next = open_until_;
      return std::nullopt;
    }
    circuit_ = Circuit::kHalfOpen;
  }
  // Throttled lately: requests go no faster than the paced rate (docs/scaling.md).
  const auto due = pacer_.wait_until(now);
  if (metrics_ != nullptr) metrics_->paced_rate.set(pacer_.rate(now).value_or(0.0));
  if (due) {
    r.next = *due;
    return std::nullopt;
  }
  if (circuit_ == Circuit::kHalfOpen || now < one_lane_until_) {
    if (probe_in_flight_) {
      // A sibling lane wakes us when its probe has an answer; look again soon in any case.
      r.next = now + std::chrono::seconds(1);
      return std::nullopt;
    }
    probe_in_flight_ = probing = true;
    if (circuit_ == Circuit::kHalfOpen) return 1;  // a probe risks one instance
    // else throttled lately: one request at a time, a whole batch; the other lanes wait for
    // its answer.
  }
  return destination_.batch_max_instances;
}

std::vector<catalog::DeliveryUpdate> Forwarder::updates_for(
    const std::vector<catalog::DueItem>& items, const senders::Outcome& outcome, TimePoint after,
    std::int64_t retry_at, StepResult& r) const {
  std::vector<catalog::DeliveryUpdate> updates;
  updates.reserve(items.size());
  // An answer without evidence counts against an instance only when the repository answered per
  // instance: it was alone in the request (as the circuit's probes send), or others in it were
  // acknowledged. Orthanc answers a request holding a hostile object without evidence for all of
  // them; its neighbours must not be quarantined for it.
  const bool per_instance =
      items.size() == 1 ||
      std::any_of(outcome.instances.begin(), outcome.instances.end(),
                  [](const auto& ir) { return ir.status == senders::InstanceStatus::kAccepted; });
  for (std::size_t i = 0; i < items.size(); ++i) {
    catalog::DeliveryUpdate u;
    u.instance_id = items[i].instance_id;
    const senders::InstanceResult* ir =
        i < outcome.instances.size() ? &outcome.instances[i] : nullptr;
    senders::InstanceStatus st = ir != nullptr ? ir->status
                                 : outcome.kind == senders::OutcomeKind::kPermanent
                                     ? senders::InstanceStatus::kPermanent
                                     : senders::InstanceStatus::kRetry;
    std::string why = ir != nullptr && !ir->reason.empty() ? ir->reason : outcome.message;
    // 401/403 (or no token to be had) says nothing about the studies: the destination pauses
    // (circuit open, "authentication failed" in status) and the backlog waits, never fails.
    if (outcome.auth_failed) {
      st = senders::InstanceStatus::kRetry;
      why = "authentication failed: " + outcome.message;
    }
    const auto& d = items[i];
    const std::int64_t failing_since =
        d.first_failure_at != 0 ? d.first_failure_at : to_epoch_ms(after);
    // Taken without evidence of storage once more than verify.max_resends times: the same limit
    // as an instance verification keeps finding missing; a person must look (issue 17, item 10).
    if (st == senders::InstanceStatus::kRetry && ir != nullptr && ir->unconfirmed && per_instance &&
        d.attempts + 1 > destination_.verify.max_resends) {
      st = senders::InstanceStatus::kPermanent;
      u.unconfirmed = true;
      why = "the repository answered " + std::to_string(d.attempts + 1) +
            " times without evidence of storing it: quarantined (" + why + ")";
    } else if (st == senders::InstanceStatus::kRetry && !outcome.auth_failed &&
               to_epoch_ms(after) - failing_since >= destination_.give_up_after.count()) {
      st = senders::InstanceStatus::kPermanent;
      why = "gave up after failing for " +
            std::to_string(destination_.give_up_after.count() / 1000) + "s: " + why;
    }
    switch (st) {
      case senders::InstanceStatus::kAccepted:
        u.result = catalog::DeliveryResult::kDelivered;
        ++r.sent;
        break;
      case senders::InstanceStatus::kPermanent:
        u.result = catalog::DeliveryResult::kRefused;
        u.error = why;
        ++r.refused;
        break;
      case senders::InstanceStatus::kRetry:
        u.result = catalog::DeliveryResult::kRetry;
        u.error = why;
        u.next_attempt_at = retry_at;
        ++r.retry;
        break;
    }
    updates.push_back(std::move(u));
  }
  return updates;
}

void Forwarder::pace(const senders::Outcome& outcome, bool whole_failure, TimePoint after,
                     std::int64_t retry_at) {
  // A 429, or a 503 with Retry-After, asks for less; the next request waits for the hold and
  // then the paced rate. A 503 without Retry-After is a repository down, not throttling: the
  // circuit deals with it, and pacing would only slow the recovery.
  const bool throttled = whole_failure && (outcome.http_status == 429 ||
                                           (outcome.http_status == 503 && outcome.retry_after));
  const Pacer::Answer answer = throttled       ? Pacer::Answer::kThrottled
                               : whole_failure ? Pacer::Answer::kFailed
                                               : Pacer::Answer::kAdmitted;
  std::lock_guard lock(status_mutex_);
  pacer_.on_answer(after, answer, std::max(held_until_, from_epoch_ms(retry_at)));
  if (metrics_ != nullptr) metrics_->paced_rate.set(pacer_.rate(after).value_or(0.0));
}

void Forwarder::after_request(const senders::Outcome& outcome, std::size_t instances,
                              std::int64_t ms, TimePoint after, std::int64_t retry_at,
                              StepResult& r) {
  log::info("batch forwarded", {{"destination", destination_.name},
                                {"instances", std::to_string(instances)},
                                {"sent", std::to_string(r.sent)},
                                {"retry", std::to_string(r.retry)},
                                {"refused", std::to_string(r.refused)},
                                {"http_status", std::to_string(outcome.http_status)},
                                {"ms", std::to_string(ms)},
                                {"detail", outcome.message}});
  {
    std::lock_guard lock(status_mutex_);
    if (r.sent > 0) recent_sent_.emplace_back(after, r.sent);
    while (!recent_sent_.empty() && recent_sent_.front().first < after - std::chrono::minutes(1))
      recent_sent_.pop_front();
  }
  const bool whole_failure = r.sent == 0 && r.refused == 0 && r.retry > 0;
  // A Retry-After holds the whole destination (every lane) until the batch's retry time: the
  // repository said when, with jitter added (Backoff::after_retry_after). A 429 is a repository
  // that answers: it throttles, it is not down, so it does not count towards the circuit.
  const bool throttled = outcome.http_status == 429;
  bool to_one_lane = false;
  {
    std::lock_guard lock(status_mutex_);
    if (outcome.retry_after && whole_failure)
      held_until_ = std::max(held_until_, from_epoch_ms(retry_at));
    if (whole_failure && (throttled || outcome.retry_after) && destination_.concurrency > 1) {
      to_one_lane = after >= one_lane_until_;
      one_lane_until_ =
          std::max(one_lane_until_, std::max(held_until_, after) + kOneLaneAfterThrottle);
    }
  }
  if (to_one_lane)
    log::info("destination throttled: one request at a time until a minute passes without it",
              {{"destination", destination_.name},
               {"http_status", std::to_string(outcome.http_status)},
               {"concurrency", std::to_string(destination_.concurrency)}});
  pace(outcome, whole_failure, after, retry_at);
  if (!throttled) on_request_result(whole_failure, after, outcome.auth_failed);
  if (metrics_ != nullptr) {
    if (outcome.retry_after && whole_failure) metrics_->requests_held.inc();
    metrics_->instances_sent.inc(static_cast<std::uint64_t>(r.sent));
    metrics_->instances_failed.inc(static_cast<std::uint64_t>(r.refused));
    metrics_->instances_retried.inc(static_cast<std::uint64_t>(r.retry));
    metrics_->bytes_sent.inc(outcome.bytes_sent);
    metrics_->stow_request_duration.observe(std::chrono::milliseconds(ms));
    metrics_->circuit_open.set(status().circuit == Circuit::kOpen ? 1 : 0);
  }
  if (r.retry > 0) r.next = from_epoch_ms(retry_at);
  std::lock_guard lock(status_mutex_);
  if (circuit_ == Circuit::kOpen && (!r.next || *r.next < open_until_)) r.next = open_until_;
}

void Forwarder::refuse_identified(std::vector<catalog::DueItem>& due) {
  std::vector<catalog::DeliveryUpdate> refused;
  std::erase_if(due, [&](const catalog::DueItem& d) {
    if (d.derived) return false;
    refused.push_back({d.instance_id, catalog::DeliveryResult::kRefused,
                       "no de-identified copy: an identified original is never sent to a "
                       "de-identifying destination",
                       0});
    return true;
  });
  if (refused.empty()) return;
  log::warn("forwarder: instances without a de-identified copy refused",
            {{"destination", destination_.name}, {"instances", std::to_string(refused.size())}});
  if (auto rec = catalog_.delivery.record_deliveries(destination_.name, refused); !rec)
    log::error("forwarder: cannot record refusals",
               {{"destination", destination_.name}, {"error", rec.error().to_string()}});
}

namespace {

// The sender's view of a batch: each instance's spool file (the derived copy where there is one).
std::vector<senders::Item> batch_of(const std::vector<catalog::DueItem>& items,
                                    const ingest::Spool& spool) {
  std::vector<senders::Item> batch;
  batch.reserve(items.size());
  for (const auto& d : items)
    batch.push_back({d.sop_instance_uid, d.sop_class_uid,
                     d.derived ? spool.derived_path(d.sha256) : spool.object_path(d.sha256),
                     d.size});
  return batch;
}

}  // namespace

void Forwarder::next_due(TimePoint now, bool stat_only, StepResult& r) const {
  auto next = catalog_.delivery.next_due(destination_.name, stat_only);
  if (next && next->has_value()) r.next = from_epoch_ms(**next);
  if (stat_only) {
    const auto opens = schedule_.windows->next_open(now);
    if (opens && (!r.next || *opens < *r.next)) r.next = opens;
  }
}

std::optional<catalog::SendBatch> Forwarder::pick_batch(TimePoint now, bool stat_only,
                                                        int max_count, bool staggered,
                                                        StepResult& r) {
  std::lock_guard one_lane(pick_mutex_);
  std::uint64_t max_bytes = destination_.batch_max_bytes;
  const int lanes = destination_.concurrency;
  if (staggered && lanes > 1) {
    // (k + 1) / lanes of each limit, k the lanes sending now (lanes_sending_).
    const int share = std::min(lanes_sending_.load() + 1, lanes);
    max_count = std::max(1, (max_count * share + lanes - 1) / lanes);
    max_bytes = std::max<std::uint64_t>(
        1, max_bytes / static_cast<std::uint64_t>(lanes) * static_cast<std::uint64_t>(share));
  }
  auto due = catalog_.delivery.due_deliveries(destination_.name, to_epoch_ms(now), max_count,
                                              max_bytes, stat_only);
  if (due && destination_.deidentify.enabled) refuse_identified(*due);
  if (due && due->empty()) {
    next_due(now, stat_only, r);
    return std::nullopt;
  }
  // The last check (consent, holds) and marking the batch in flight are one catalog step, and
  // the permit it returns keeps a withdrawal waiting until the request has left. Deliveries
  // marked 'sending' are no longer due: the next lane picks other instances.
  auto begun = due ? catalog_.delivery.begin_send(destination_.name, std::move(*due))
                   : Result<catalog::SendBatch>(due.error());
  if (!begun) {
    log::error("forwarder: catalog error",
               {{"destination", destination_.name}, {"error", begun.error().to_string()}});
    r.next = now + std::chrono::seconds(5);
    return std::nullopt;
  }
  r.did_work = true;
  if (begun->dropped > 0)
    log::info("instances dropped from a batch: their study may no longer be sent",
              {{"destination", destination_.name}, {"dropped", std::to_string(begun->dropped)}});
  if (begun->items.empty()) return std::nullopt;
  ++lanes_sending_;
  return std::move(*begun);
}

bool Forwarder::may_pipeline(TimePoint now) const {
  if (destination_.concurrency > 1) return false;
  if (schedule_.windows && !schedule_.windows->open_at(now)) return false;
  std::lock_guard lock(status_mutex_);
  return circuit_ == Circuit::kClosed && now >= held_until_ && !pacer_.rate(now);
}

std::optional<catalog::SendBatch> Forwarder::take_next_batch() {
  std::lock_guard one_lane(pick_mutex_);
  std::optional<catalog::SendBatch> next = std::move(next_batch_);
  next_batch_.reset();
  return next;
}

bool Forwarder::settle(std::optional<catalog::SendBatch> batch) {
  std::vector<catalog::DeliveryUpdate> answers;
  {
    std::lock_guard one_lane(pick_mutex_);
    answers.swap(unrecorded_);
  }
  if (answers.empty() && !batch) return true;
  auto done = catalog_.delivery.commit_batch(
      destination_.name, answers, {}, batch ? batch->items : std::vector<catalog::DueItem>{});
  if (done) return true;
  // Kept and recorded first thing next time: the deliveries stay 'sending' (so nothing is sent
  // twice meanwhile) and a withdrawal's notification waits for these answers.
  log::error("forwarder: cannot record outcome, will record it again",
             {{"destination", destination_.name}, {"error", done.error().to_string()}});
  std::lock_guard one_lane(pick_mutex_);
  unrecorded_.insert(unrecorded_.begin(), std::make_move_iterator(answers.begin()),
                     std::make_move_iterator(answers.end()));
  if (batch && !next_batch_) next_batch_ = std::move(*batch);
  return false;
}

void Forwarder::settle_next_batch() { settle(take_next_batch()); }

Forwarder::Prepared Forwarder::prepare_next(std::vector<catalog::DeliveryUpdate> answers, bool pick,
                                            TimePoint now) {
  Prepared p;
  std::vector<catalog::DueItem> due;
  if (pick) {
    auto found = catalog_.delivery.due_deliveries(destination_.name, to_epoch_ms(now),
                                                  destination_.batch_max_instances,
                                                  destination_.batch_max_bytes);
    if (found && destination_.deidentify.enabled) refuse_identified(*found);
    if (found) due = std::move(*found);
  }
  if (answers.empty() && due.empty()) return p;
  auto committed = catalog_.delivery.commit_batch(destination_.name, answers, std::move(due), {});
  if (!committed) {
    log::error("forwarder: catalog error",
               {{"destination", destination_.name}, {"error", committed.error().to_string()}});
    p.answers = std::move(answers);
    return p;
  }
  if (committed->dropped > 0)
    log::info(
        "instances dropped from a batch: their study may no longer be sent",
        {{"destination", destination_.name}, {"dropped", std::to_string(committed->dropped)}});
  if (!committed->items.empty()) p.next = std::move(*committed);
  return p;
}

void Forwarder::send_batch(catalog::SendBatch begun, StepResult& r) {
  const std::vector<catalog::DueItem>& items = begun.items;
  const std::vector<senders::Item> batch = batch_of(items, spool_);
  int max_attempts = 0;
  for (const auto& d : items) max_attempts = std::max(max_attempts, d.attempts);
  if (before_send_) before_send_();
  senders::SendContext context;
  catalog::SendPermit& permit = begun.permit;
  context.request_sent = [&permit] { permit.release(); };
  // One request at a time: the catalog's commit runs beside the request, on a helper thread.
  std::future<Prepared> preparing;
  if (const TimePoint now = clock_.now(); may_pipeline(now)) {
    std::vector<catalog::DeliveryUpdate> answers;
    {
      std::lock_guard one_lane(pick_mutex_);
      answers.swap(unrecorded_);
    }
    preparing = std::async(std::launch::async, [this, answers = std::move(answers), now]() mutable {
      return prepare_next(std::move(answers), true, now);
    });
  }
  {
    std::lock_guard lock(status_mutex_);
    pacer_.on_request(clock_.now());
  }
  const auto started = std::chrono::steady_clock::now();
  senders::Outcome outcome = sender_.send(batch, context);
  permit.release();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count();
  Prepared ahead = preparing.valid() ? preparing.get() : Prepared{};
  // One backoff for the whole batch, so that its instances go again together.
  const TimePoint after = clock_.now();
  std::unique_lock lock(status_mutex_);
  const std::int64_t retry_at =
      to_epoch_ms(after + backoff_.next(max_attempts + 1, outcome.retry_after));
  lock.unlock();
  auto updates = updates_for(items, outcome, after, retry_at, r);
  // An answer that took something (accepted or refused) lets the next batch go as begun, and
  // these answers wait for its commit; after a batch that failed whole, the next one goes back
  // to 'pending' with these answers recorded now: the destination is in trouble.
  bool deferred = false;
  {
    std::lock_guard one_lane(pick_mutex_);
    unrecorded_.insert(unrecorded_.begin(), std::make_move_iterator(ahead.answers.begin()),
                       std::make_move_iterator(ahead.answers.end()));
    unrecorded_.insert(unrecorded_.end(), updates.begin(), updates.end());
    if (ahead.next && r.sent + r.refused > 0 && !next_batch_) {
      next_batch_ = std::move(*ahead.next);
      ahead.next.reset();
      deferred = true;
    }
  }
  if (!deferred && !settle(std::move(ahead.next))) {
    r.next = after + std::chrono::seconds(5);
    return;
  }
  after_request(outcome, batch.size(), ms, after, retry_at, r);
}

Forwarder::StepResult Forwarder::step() {
  StepResult r;
  const TimePoint now = clock_.now();
  const auto notify_next = send_notifications(now);
  struct NextNotification {
    StepResult& r;
    std::optional<TimePoint> at;
    ~NextNotification() {
      if (at && (!r.next || *at < *r.next)) r.next = at;
    }
  } keep_notification_deadline{r, notify_next};
  // A batch begun by the last commit goes now, unless something changed since (a window
  // closed, a hold, the circuit): it is then pending again and the usual pick decides.
  auto ready = take_next_batch();
  if (!ready && !settle(std::nullopt)) {
    r.next = now + std::chrono::seconds(5);
    return r;
  }
  const auto put_back = [&] {
    if (!ready) return;
    if (!settle(std::move(ready)) && !r.next) r.next = now + std::chrono::seconds(5);
    ready.reset();
  };
  for (const auto& rate : schedule_.rates) rate.apply(now);
  const auto stat_only = window_gate(now, r);
  if (!stat_only) {  // outside the windows: studies wait, SCHEDULED
    put_back();
    return r;
  }
  bool probing = false;
  struct ProbeEnd {  // after the probe's answer is recorded (or when there was none to send)
    Forwarder& f;
    const bool& probing;
    ~ProbeEnd() {
      if (!probing) return;
      std::lock_guard lock(f.status_mutex_);
      f.probe_in_flight_ = false;
    }
  } probe_end{*this, probing};
  const auto max_count = batch_limit(now, r, probing);
  if (!max_count || *stat_only || probing ||
      (ready && static_cast<int>(ready->items.size()) > *max_count))
    put_back();
  if (!max_count) return r;
  if (ready) {
    r.did_work = true;
    send_batch(std::move(*ready), r);
    return r;
  }
  // A probe, or the one request while throttled, goes as the circuit decided: never cut.
  auto begun = pick_batch(now, *stat_only, *max_count, !probing, r);
  if (begun) {
    struct Answered {
      std::atomic<int>& sending;
      ~Answered() { --sending; }
    } answered{lanes_sending_};
    send_batch(std::move(*begun), r);
  }
  return r;
}

Scheduler::Scheduler(const config::Config& config, catalog::Catalog& catalog,
                     const ingest::Spool& spool,
                     std::vector<std::unique_ptr<senders::Sender>> senders, const Clock& clock,
                     PolicyStep policy, metrics::GatewayMetrics* metrics,
                     std::vector<ForwardSchedule> schedules)
    : catalog_(catalog),
      clock_(clock),
      readiness_(catalog.ingest, clock, config.policy.stable_age, std::move(policy)),
      senders_(std::move(senders)) {
  for (std::size_t i = 0; i < config.destinations.size(); ++i) {
    const auto& d = config.destinations[i];
    ForwardSchedule schedule = i < schedules.size() ? std::move(schedules[i]) : ForwardSchedule{};
    // Notifications use the destination's TLS settings and, with OAuth2, the same tokens.
    senders::StowRsOptions notify_options = stow_options(d);
    notify_options.token_provider = schedule.tokens;
    notifiers_.push_back(
        d.withdrawal_notify_url.empty()
            ? nullptr
            : senders::make_http_notifier(std::move(notify_options), d.withdrawal_notify_url));
    forwarders_.push_back(std::make_unique<Forwarder>(
        d, catalog, spool, *senders_[i], clock, std::random_device{}(),
        metrics != nullptr ? &metrics->destination(d.name) : nullptr, notifiers_.back().get()));
    forwarders_.back()->set_schedule(std::move(schedule));
    auto& lanes = forwarder_wakeups_.emplace_back();
    for (int lane = 0; lane < std::max(1, d.concurrency); ++lane)
      lanes.push_back(std::make_unique<Wakeup>());
  }
}

Scheduler::~Scheduler() { stop(); }

void Scheduler::start() {
  threads_.emplace_back(&Scheduler::readiness_loop, this);
  for (std::size_t i = 0; i < forwarders_.size(); ++i)
    for (std::size_t lane = 0; lane < forwarder_wakeups_[i].size(); ++lane)
      threads_.emplace_back(&Scheduler::forwarder_loop, this, i, lane);
}

void Scheduler::stop() {
  readiness_wakeup_.stop();
  for (auto& lanes : forwarder_wakeups_)
    for (auto& w : lanes) w->stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

void Scheduler::work_available() {
  readiness_wakeup_.notify();
  for (auto& lanes : forwarder_wakeups_)
    for (auto& w : lanes) w->notify();
}

void Scheduler::wake_lanes(std::size_t index, std::size_t except) {
  auto& lanes = forwarder_wakeups_[index];
  for (std::size_t lane = 0; lane < lanes.size(); ++lane)
    if (lane != except) lanes[lane]->notify();
}

std::vector<ForwarderStatus> Scheduler::status() const {
  std::vector<ForwarderStatus> out;
  for (const auto& f : forwarders_) out.push_back(f->status());
  return out;
}

void Scheduler::readiness_loop() {
  do {
    auto r = readiness_.step();
    if (r.promoted > 0) log::info("studies stable", {{"count", std::to_string(r.promoted)}});
    if (r.ready > 0 || r.early > 0)
      for (auto& lanes : forwarder_wakeups_)
        for (auto& w : lanes) w->notify();
    if (!readiness_wakeup_.wait(r.next)) return;
  } while (true);
}

void Scheduler::forwarder_loop(std::size_t index, std::size_t lane) {
  Forwarder& f = *forwarders_[index];
  Wakeup& wake = *forwarder_wakeups_[index][lane];
  struct SettleOnStop {
    Forwarder& f;
    ~SettleOnStop() { f.settle_next_batch(); }
  } settle_on_stop{f};
  for (;;) {
    if (wake.stopped()) return;
    auto r = f.step();
    if (r.did_work && forwarder_wakeups_[index].size() > 1) wake_lanes(index, lane);
    // After a batch that got answers, go straight on; when the whole batch must be retried the
    // destination is in trouble: sleep until the retry is due (or new work wakes us).
    if (r.did_work && r.sent + r.refused > 0) continue;
    if (!wake.wait(r.next)) return;
  }
}

}  // namespace dirgw::scheduler
