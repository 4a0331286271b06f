#include "verify/verifier.h"

#include <algorithm>
#include <unordered_map>

#include "log/log.h"

namespace dirgw::verify {

namespace {
// Studies checked per round; the next round follows at once while more are due.
constexpr int kStudiesPerRound = 20;
// With nothing known to be due, the catalog is looked at again after this long at most (the
// forwarders do not signal the verifier; one indexed query per period is the cost).
constexpr Millis kIdleLook{std::chrono::seconds(30)};
}  // namespace

std::vector<catalog::VerifyFinding> compare(const std::vector<catalog::VerifyInstance>& sent,
                                            const std::vector<Listed>& listed) {
  std::unordered_map<std::string, const Listed*> by_uid;
  for (const auto& l : listed) by_uid.emplace(l.sop_instance_uid, &l);
  std::vector<catalog::VerifyFinding> out;
  out.reserve(sent.size());
  for (const auto& s : sent) {
    catalog::VerifyFinding f;
    f.instance_id = s.instance_id;
    auto it = by_uid.find(s.sop_instance_uid);
    if (it == by_uid.end())
      f.verdict = catalog::VerifyVerdict::kMissing;
    else if (!it->second->sop_class_uid.empty() && it->second->sop_class_uid != s.sop_class_uid)
      f.verdict = catalog::VerifyVerdict::kMismatch;
    else
      // A repository that leaves SOP Class UID out of its answer (it is a required return key
      // at instance level, but not every repository honours includefield) is believed on the
      // UID alone.
      f.verdict = catalog::VerifyVerdict::kListed;
    out.push_back(f);
  }
  return out;
}

Verifier::Verifier(const config::Destination& destination, catalog::VerifyLedger& ledger,
                   Repository& repository, const Clock& clock, DestinationVerifyMetrics* metrics,
                   std::function<void()> on_requeued)
    : destination_(destination),
      ledger_(ledger),
      repository_(&repository),
      clock_(clock),
      metrics_(metrics),
      on_requeued_(std::move(on_requeued)),
      backoff_(destination.verify.retry, destination.verify.retry, std::random_device{}(),
               scheduler::JitterPolicy{.retry_after_max = destination.retry_after_max}) {}

Verifier::Verifier(const config::Destination& destination, catalog::VerifyLedger& ledger,
                   Committer& committer, CommitmentInbox& inbox, const Clock& clock,
                   DestinationVerifyMetrics* metrics)
    : destination_(destination),
      ledger_(ledger),
      committer_(&committer),
      inbox_(&inbox),
      clock_(clock),
      metrics_(metrics),
      backoff_(destination.verify.retry, destination.verify.retry, std::random_device{}(),
               scheduler::JitterPolicy{.retry_after_max = destination.retry_after_max}) {}

void count_findings(DestinationVerifyMetrics* metrics,
                    const std::vector<catalog::VerifyFinding>& findings,
                    const catalog::VerifyRecorded& recorded) {
  if (metrics == nullptr) return;
  int missing = 0, mismatched = 0;
  for (const auto& f : findings) {
    missing += f.verdict == catalog::VerifyVerdict::kMissing;
    mismatched += f.verdict == catalog::VerifyVerdict::kMismatch;
  }
  metrics->instances_verified.inc(static_cast<std::uint64_t>(recorded.verified));
  metrics->bytes_verified.inc(recorded.verified_bytes);
  metrics->instances_missing.inc(static_cast<std::uint64_t>(missing));
  metrics->instances_mismatched.inc(static_cast<std::uint64_t>(mismatched));
}

VerifierHealth Verifier::health() const {
  std::lock_guard lock(health_mutex_);
  return health_;
}

void Verifier::note_error(const std::string& error, TimePoint now) {
  std::lock_guard lock(health_mutex_);
  ++health_.consecutive_errors;
  health_.last_error = error;
  health_.last_error_at = to_epoch_ms(now);
}

Result<std::vector<Listed>> Verifier::listing(
    const catalog::VerifyStudy& study, const std::vector<catalog::VerifyInstance>& instances) {
  const bool own_uids = std::any_of(instances.begin(), instances.end(),
                                    [](const catalog::VerifyInstance& i) { return i.own_uids; });
  if (!own_uids) return repository_->study_instances(study.study_uid);
  // De-identified copies carry study and series UIDs of their own, which the catalog does not
  // keep: each instance is looked for by its SOP Instance UID.
  std::vector<Listed> out;
  for (const auto& i : instances) {
    auto found = repository_->find_instance(i.sop_instance_uid);
    if (!found) return found.error();
    for (auto& l : *found)
      if (l.sop_instance_uid.empty() || l.sop_instance_uid == i.sop_instance_uid) {
        l.sop_instance_uid = i.sop_instance_uid;
        out.push_back(std::move(l));
      }
  }
  return out;
}

void Verifier::note_ran(TimePoint now) {
  std::lock_guard lock(health_mutex_);
  health_.consecutive_errors = 0;
  health_.last_error.clear();
  health_.last_check_at = to_epoch_ms(now);
}

void Verifier::could_not_run(const catalog::VerifyStudy& study, const std::string& why,
                             TimePoint now, StepResult& r) {
  ++r.errors;
  if (metrics_ != nullptr) metrics_->check_errors.inc();
  note_error(why, now);
  // The repository is left alone until then: as long as it asked (Retry-After, bounded,
  // plus jitter), else verify.retry jittered down by up to half.
  const auto asked = repository_ != nullptr ? repository_->retry_after() : std::nullopt;
  paused_until_ = now + (asked ? backoff_.after_retry_after(*asked)
                               : backoff_.cooldown(destination_.verify.retry));
  const auto retry_at = to_epoch_ms(paused_until_);
  (void)ledger_.record_verification_error(destination_.name, study.study_id, why, retry_at);
  log::warn("verification could not run: will try again", {{"destination", destination_.name},
                                                           {"study_uid", study.study_uid},
                                                           {"error", why},
                                                           {"retry_at", format_utc_ms(retry_at)}});
}

// The study is due: a transaction still pending past its deadline was never answered (shown and
// asked again after verify.retry); else a new N-ACTION goes, recorded before it is sent so that a
// report, however fast, finds it. The report is recorded by the inbox, not here.
bool Verifier::request_commitment(const catalog::VerifyStudy& study,
                                  const std::vector<catalog::VerifyInstance>& instances,
                                  TimePoint now, StepResult& r) {
  const std::int64_t now_ms = to_epoch_ms(now);
  auto expired = ledger_.expire_commitments(destination_.name, study.study_id, now_ms);
  if (expired && *expired > 0) {
    could_not_run(study,
                  "storage commitment: no N-EVENT-REPORT within " +
                      std::to_string(destination_.verify.timeout.count() / 1000) +
                      "s of the N-ACTION",
                  now, r);
    return false;
  }
  catalog::CommitmentTransaction tx;
  tx.transaction_uid = new_transaction_uid();
  tx.destination = destination_.name;
  tx.study_id = study.study_id;
  tx.deadline = now_ms + destination_.verify.timeout.count();
  if (auto ok = ledger_.record_commitment_request(tx, static_cast<int>(instances.size()), now_ms);
      !ok) {
    log::error("verification: catalog error",
               {{"destination", destination_.name}, {"error", ok.error().to_string()}});
    return false;
  }
  std::vector<ingest::CommitRef> refs;
  refs.reserve(instances.size());
  for (const auto& i : instances) refs.push_back({i.sop_class_uid, i.sop_instance_uid});
  log::info("storage commitment requested", {{"destination", destination_.name},
                                             {"study_uid", study.study_uid},
                                             {"transaction_uid", tx.transaction_uid},
                                             {"instances", std::to_string(refs.size())}});
  auto asked = committer_->request(tx.transaction_uid, refs,
                                   [&] { return inbox_->answered(tx.transaction_uid); });
  if (!asked) {
    (void)ledger_.record_commitment_answer(tx.transaction_uid, "failed", 0, 0);
    could_not_run(study, "storage commitment: " + asked.error().detail, now, r);
    return false;
  }
  note_ran(now);
  return true;
}

bool Verifier::check_study(const catalog::VerifyStudy& study, TimePoint now, StepResult& r) {
  auto instances = ledger_.sent_instances(study.study_id, destination_.name);
  if (!instances) {
    log::error("verification: catalog error",
               {{"destination", destination_.name}, {"error", instances.error().to_string()}});
    return false;
  }
  if (instances->empty()) return true;
  if (committer_ != nullptr) return request_commitment(study, *instances, now, r);
  auto listed = listing(study, *instances);
  if (!listed) {
    could_not_run(study, listed.error().to_string(), now, r);
    return false;
  }
  const auto findings = compare(*instances, *listed);
  auto rec = ledger_.record_verification(destination_.name, study.study_id, findings,
                                         destination_.verify.max_resends);
  if (!rec) {
    log::error("verification: cannot record findings",
               {{"destination", destination_.name}, {"error", rec.error().to_string()}});
    return false;
  }
  note_ran(now);
  count_findings(metrics_, findings, *rec);
  r.verified += rec->verified;
  r.requeued += rec->requeued;
  r.failed += rec->failed;
  const bool short_of = rec->requeued > 0 || rec->failed > 0;
  log::write(short_of ? log::Level::kWarn : log::Level::kInfo,
             short_of ? "verification: the repository does not list every instance sent"
                      : "verification: study verified",
             {{"destination", destination_.name},
              {"study_uid", study.study_uid},
              {"verified", std::to_string(rec->verified)},
              {"requeued", std::to_string(rec->requeued)},
              {"failed", std::to_string(rec->failed)}});
  return true;
}

Verifier::StepResult Verifier::step() {
  StepResult r;
  const TimePoint now = clock_.now();
  if (now < paused_until_) {
    r.next = paused_until_;
    return r;
  }
  const std::int64_t delay = destination_.verify.delay.count();
  auto due = ledger_.due_studies(destination_.name, to_epoch_ms(now) - delay, to_epoch_ms(now),
                                 kStudiesPerRound);
  if (!due) {
    log::error("verification: catalog error",
               {{"destination", destination_.name}, {"error", due.error().to_string()}});
    r.next = now + std::chrono::seconds(5);
    return r;
  }
  for (const auto& study : *due) {
    ++r.studies;
    if (!check_study(study, now, r) && r.errors > 0) {
      // The repository cannot answer now: check_study set when to ask again.
      r.next = paused_until_;
      break;
    }
  }
  if (r.requeued > 0 && on_requeued_) on_requeued_();
  if (!r.next) {
    if (r.studies == static_cast<int>(kStudiesPerRound)) {
      r.next = now;  // more may be due
    } else {
      auto next = ledger_.next_due(destination_.name, delay);
      if (next && next->has_value()) r.next = from_epoch_ms(**next);
    }
  }
  const TimePoint idle =
      now + std::min<Millis>(kIdleLook, std::max<Millis>(Millis(1000), Millis(delay)));
  if (!r.next || *r.next > idle) r.next = idle;
  return r;
}

}  // namespace dirgw::verify
