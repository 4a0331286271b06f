// A destination's senders for its concurrent lanes (sender.h, make_sender_pool): each member is
// used by one send() at a time, so its libcurl handle or DCMTK network is never shared.
#include <condition_variable>
#include <mutex>

#include "senders/sender.h"

namespace dirgw::senders {

namespace {

class SenderPool final : public Sender {
 public:
  explicit SenderPool(std::vector<std::unique_ptr<Sender>> members) : members_(std::move(members)) {
    for (auto& m : members_) idle_.push_back(m.get());
  }

  using Sender::send;
  Outcome send(const std::vector<Item>& batch, const SendContext& context) override {
    Sender* member = nullptr;
    {
      std::unique_lock lock(mutex_);
      idle_cv_.wait(lock, [this] { return !idle_.empty(); });
      member = idle_.back();
      idle_.pop_back();
    }
    // Given back even if send() throws, which a Sender must not do: a lost member would make
    // every later send wait for ever.
    struct GiveBack {
      SenderPool& pool;
      Sender* member;
      ~GiveBack() {
        {
          std::lock_guard lock(pool.mutex_);
          pool.idle_.push_back(member);
        }
        pool.idle_cv_.notify_one();
      }
    } give_back{*this, member};
    return member->send(batch, context);
  }

 private:
  std::vector<std::unique_ptr<Sender>> members_;
  std::mutex mutex_;
  std::condition_variable idle_cv_;
  std::vector<Sender*> idle_;
};

}  // namespace

std::unique_ptr<Sender> make_sender_pool(std::vector<std::unique_ptr<Sender>> members) {
  if (members.size() == 1) return std::move(members.front());
  return std::make_unique<SenderPool>(std::move(members));
}

}  // namespace dirgw::senders
