#include "catalog/group_commit.h"

#include <algorithm>
#include <exception>

namespace dirgw::catalog {

Result<RecordOutcome> GroupCommit::record(const NewInstance& instance,
                                          NewVersionPolicy new_versions) {
  Waiter me{&instance, new_versions, std::nullopt};
  std::unique_lock lock(mutex_);
  queue_.push_back(&me);
  while (!me.outcome) {
    if (!leading_) {
      lead(lock);
    } else {
      done_.wait(lock);
    }
  }
  return std::move(*me.outcome);
}

// Called with the lock held; returns with it held. Commits one group (the oldest queued callers,
// at most max_batch_), so that a caller queued first is never starved by a stream of later ones.
void GroupCommit::lead(std::unique_lock<std::mutex>& lock) {
  leading_ = true;
  const std::size_t n = std::min(queue_.size(), max_batch_);
  std::vector<Waiter*> group(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
  queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
  lock.unlock();
  // One policy per group: callers of the same sink share it; a mixed queue is split by policy.
  std::vector<const NewInstance*> batch;
  std::vector<Waiter*> same, other;
  for (Waiter* w : group)
    (w->new_versions == group.front()->new_versions ? same : other).push_back(w);
  for (Waiter* w : same) batch.push_back(w->instance);
  std::vector<Result<RecordOutcome>> results;
  try {
    results = ledger_.record_instances(batch, same.front()->new_versions);
  } catch (const std::exception& e) {
    // Whatever it was, the callers must not wait for ever: each gets the error, nothing is
    // acknowledged (the transaction rolled back when the exception left it).
    results.assign(batch.size(), Result<RecordOutcome>(make_error(ErrorCode::kCatalog, e.what())));
  }
  if (after_commit_for_test_) after_commit_for_test_(batch.size());
  lock.lock();
  for (std::size_t i = 0; i < same.size(); ++i) same[i]->outcome = std::move(results[i]);
  // Callers with the other policy go first in the next group.
  queue_.insert(queue_.begin(), other.begin(), other.end());
  ++stats_.commits;
  stats_.instances += same.size();
  leading_ = false;
  done_.notify_all();
}

GroupCommit::Stats GroupCommit::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace dirgw::catalog
