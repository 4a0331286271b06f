// Proof of delivery (issue 15, docs/verification.md): after a study is SENT to a destination,
// ask the repository what it holds and record, instance by instance, what it found:
//   listed with the same SOP Class   -> the delivery is 'verified'; all of a study: VERIFIED
//   not listed                       -> 'pending' again, and the forwarder sends it (READY),
//                                       up to verify.max_resends times, then FAILED
//   listed with another SOP Class    -> 'failed' (a person must look)
// A check that cannot run (QIDO-RS refused or absent, time-out, 5xx) is recorded on the study,
// shown by dirgw status / dirgw study, and tried again after verify.retry: never assumed.
// step() does one round for one destination; the Service (service.h) runs the rounds.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "catalog/verify_ledger.h"
#include "common/clock.h"
#include "config/config.h"
#include "scheduler/backoff.h"
#include "verify/commitment.h"
#include "verify/metrics.h"
#include "verify/repository.h"

namespace dirgw::verify {

struct VerifierHealth {
  int consecutive_errors = 0;  // checks in a row that could not run
  std::string last_error;      // why the last one could not run ("" after one that ran)
  std::int64_t last_error_at = 0;
  std::int64_t last_check_at = 0;  // the last check that ran
};

class Verifier {
 public:
  // on_requeued: instances were queued again (the daemon wakes the forwarders).
  Verifier(const config::Destination& destination, catalog::VerifyLedger& ledger,
           Repository& repository, const Clock& clock, DestinationVerifyMetrics* metrics = nullptr,
           std::function<void()> on_requeued = {});
  // verify: storage-commitment: each due study is asked with an N-ACTION (its Transaction UID
  // recorded first); `inbox` records the report whenever it comes. A transaction unanswered
  // past verify.timeout is a check that could not run.
  Verifier(const config::Destination& destination, catalog::VerifyLedger& ledger,
           Committer& committer, CommitmentInbox& inbox, const Clock& clock,
           DestinationVerifyMetrics* metrics = nullptr);

  struct StepResult {
    int studies = 0, verified = 0, requeued = 0, failed = 0, errors = 0;
    std::optional<TimePoint> next;  // when a check is due next (none: nothing waits)
  };
  StepResult step();
  const std::string& name() const { return destination_.name; }
  VerifierHealth health() const;

 private:
  // One study: ask, compare, record. False when the check could not run.
  bool check_study(const catalog::VerifyStudy& study, TimePoint now, StepResult& r);
  // What the repository lists for these instances, by SOP Instance UID.
  Result<std::vector<Listed>> listing(const catalog::VerifyStudy& study,
                                      const std::vector<catalog::VerifyInstance>& instances);
  void note_error(const std::string& error, TimePoint now);
  void note_ran(TimePoint now);
  // The check could not run: recorded on the study, shown, the destination left alone.
  void could_not_run(const catalog::VerifyStudy& study, const std::string& why, TimePoint now,
                     StepResult& r);
  // verify: storage-commitment: one N-ACTION for the study's sent instances.
  bool request_commitment(const catalog::VerifyStudy& study,
                          const std::vector<catalog::VerifyInstance>& instances, TimePoint now,
                          StepResult& r);

  const config::Destination& destination_;
  catalog::VerifyLedger& ledger_;
  Repository* repository_ = nullptr;
  Committer* committer_ = nullptr;
  CommitmentInbox* inbox_ = nullptr;
  const Clock& clock_;
  DestinationVerifyMetrics* metrics_;
  std::function<void()> on_requeued_;
  scheduler::Backoff backoff_;  // jitter on every pause, Retry-After honoured
  TimePoint paused_until_{};    // after a check that could not run: the repository is left alone
  mutable std::mutex health_mutex_;
  VerifierHealth health_;
};

// Adds what one check found to the destination's counters (null: none).
void count_findings(DestinationVerifyMetrics* metrics,
                    const std::vector<catalog::VerifyFinding>& findings,
                    const catalog::VerifyRecorded& recorded);

// Pure: the findings for `sent` from what the repository lists.
std::vector<catalog::VerifyFinding> compare(const std::vector<catalog::VerifyInstance>& sent,
                                            const std::vector<Listed>& listed);

}  // namespace dirgw::verify
