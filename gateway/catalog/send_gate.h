// The send gate: makes "the last check before a request" and "a consent withdrawal" mutually
// exclusive. A forwarder holds the gate shared from the moment the catalog confirms that its
// batch may still go until every byte of the request has been handed to the transport; a
// withdrawal takes it exclusively before it records anything. So when a withdrawal returns, every
// request that passed the check has already left, and none that starts later can carry the
// patient's instances (docs/policy.md, "What a withdrawal guarantees").
//
// Writer-preferring: once a withdrawal waits, no new batch passes the gate, so a busy gateway
// cannot starve a withdrawal. A withdrawal waits at most for the uploads already under way and,
// for a destination with one request at a time, for the one batch begun beside the current
// request (scheduler::Forwarder::send_batch), which goes as soon as that request is answered.
#pragma once

#include <condition_variable>
#include <mutex>

namespace dirgw::catalog {

class SendGate {
 public:
  void lock_shared() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return !writer_ && waiting_writers_ == 0; });
    ++readers_;
  }
  void unlock_shared() {
    std::lock_guard lock(mutex_);
    --readers_;
    if (readers_ == 0) cv_.notify_all();
  }
  void lock() {
    std::unique_lock lock(mutex_);
    ++waiting_writers_;
    cv_.wait(lock, [this] { return !writer_ && readers_ == 0; });
    --waiting_writers_;
    writer_ = true;
  }
  void unlock() {
    std::lock_guard lock(mutex_);
    writer_ = false;
    cv_.notify_all();
  }
  // For tests that must know a withdrawal is blocked at the gate before they go on.
  int waiting_writers_for_test() {
    std::lock_guard lock(mutex_);
    return waiting_writers_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int readers_ = 0;
  int waiting_writers_ = 0;
  bool writer_ = false;
};

// A forwarder's hold on the gate for one batch; released once the request has left (or when
// the batch ends without one). Movable, released at most once.
class SendPermit {
 public:
  SendPermit() = default;
  explicit SendPermit(SendGate& gate) : gate_(&gate) { gate_->lock_shared(); }
  SendPermit(SendPermit&& o) noexcept : gate_(o.gate_) { o.gate_ = nullptr; }
  SendPermit& operator=(SendPermit&& o) noexcept {
    if (this != &o) {
      release();
      gate_ = o.gate_;
      o.gate_ = nullptr;
    }
    return *this;
  }
  SendPermit(const SendPermit&) = delete;
  SendPermit& operator=(const SendPermit&) = delete;
  ~SendPermit() { release(); }
  void release() {
    if (gate_ != nullptr) gate_->unlock_shared();
    gate_ = nullptr;
  }
  bool held() const { return gate_ != nullptr; }

 private:
  SendGate* gate_ = nullptr;
};

}  // namespace dirgw::catalog
