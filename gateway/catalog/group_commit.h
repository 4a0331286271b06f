// Group commit on the acknowledgement path: the instances received by every association at the
// same time share one catalog transaction and one COMMIT (one WAL flush). No thread of its own:
// the first caller that finds no commit running becomes the leader, commits what is queued
// (itself included) and hands each caller its own result; the instances that arrived while that
// COMMIT was flushing go in the next one, led by one of their callers. Each caller returns only
// once its own instance is committed: nothing is answered early.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include "catalog/ingest_ledger.h"

namespace dirgw::catalog {

class GroupCommit {
 public:
  explicit GroupCommit(IngestLedger& ledger, std::size_t max_batch = 64)
      : ledger_(ledger), max_batch_(max_batch) {}

  // Records one instance (as IngestLedger::record_instance) in the next group's transaction.
  Result<RecordOutcome> record(const NewInstance& instance, NewVersionPolicy new_versions);

  // Test-only: called by the leader after a group's COMMIT returned and before any of its callers
  // learns the outcome (the fault test kills the daemon there).
  void set_after_commit_for_test(std::function<void(std::size_t batch)> hook) {
    after_commit_for_test_ = std::move(hook);
  }

  struct Stats {
    std::uint64_t commits = 0;
    std::uint64_t instances = 0;
  };
  Stats stats() const;

 private:
  struct Waiter {
    const NewInstance* instance;
    NewVersionPolicy new_versions;
    std::optional<Result<RecordOutcome>> outcome;
  };
  void lead(std::unique_lock<std::mutex>& lock);

  IngestLedger& ledger_;
  const std::size_t max_batch_;
  std::function<void(std::size_t)> after_commit_for_test_;
  mutable std::mutex mutex_;
  std::condition_variable done_;
  std::vector<Waiter*> queue_;
  bool leading_ = false;
  Stats stats_;
};

}  // namespace dirgw::catalog
