// A wake-up signal between stages: no polling loops, the catalog stays the truth. A stage
// sleeps until its next deadline or until another stage says there is new work.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>

namespace dirgw::scheduler {

class Wakeup {
 public:
  void notify() {
    {
      std::lock_guard lock(mutex_);
      pending_ = true;
    }
    cv_.notify_all();
  }
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopped_ = true;
    }
    cv_.notify_all();
  }
  bool stopped() const {
    std::lock_guard lock(mutex_);
    return stopped_;
  }
  // Waits until notified, stopped or the deadline (none: wait for a notification). Returns
  // false when stopped.
  bool wait(std::optional<std::chrono::system_clock::time_point> deadline) {
    std::unique_lock lock(mutex_);
    auto ready = [&] { return pending_ || stopped_; };
    if (deadline)
      cv_.wait_until(lock, *deadline, ready);
    else
      cv_.wait(lock, ready);
    pending_ = false;
    return !stopped_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool pending_ = false;
  bool stopped_ = false;
};

}  // namespace dirgw::scheduler
