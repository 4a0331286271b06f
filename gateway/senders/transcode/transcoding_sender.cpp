#include "senders/transcode/transcoding_sender.h"

#include <unistd.h>

#include <vector>

#include "log/log.h"

namespace dirgw::senders::transcode {

namespace {

// The batch's copies, removed when the send is over whatever happened.
class Copies {
 public:
  Copies() = default;
  Copies(const Copies&) = delete;
  Copies& operator=(const Copies&) = delete;
  ~Copies() {
    for (const auto& p : paths_) ::unlink(p.c_str());
  }
  void add(const std::filesystem::path& p) { paths_.push_back(p); }

 private:
  std::vector<std::filesystem::path> paths_;
};

class TranscodingSender final : public Sender {
 public:
  TranscodingSender(std::unique_ptr<Sender>&& inner, Options options,
                    std::shared_ptr<Counters> counters, CodecSettings codec)
      : inner_(std::move(inner)),
        options_(std::move(options)),
        counters_(std::move(counters)),
        codec_(std::move(codec)) {}

  Outcome send(const std::vector<Item>& batch, const SendContext& context) override {
    Copies copies;
    std::vector<Item> items = batch;
    std::vector<bool> copied(batch.size(), false);
    for (std::size_t i = 0; i < items.size(); ++i) copied[i] = prepare(items[i], copies);
    Outcome out = inner_->send(items, context);
    for (std::size_t i = 0; i < batch.size() && i < out.instances.size(); ++i) {
      const InstanceResult& r = out.instances[i];
      if (!copied[i] || r.status != InstanceStatus::kAccepted) continue;
      if (r.sent_original) {
        counters_->refused.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      counters_->transcoded.fetch_add(1, std::memory_order_relaxed);
      counters_->original_bytes.fetch_add(batch[i].size, std::memory_order_relaxed);
      counters_->sent_bytes.fetch_add(items[i].size, std::memory_order_relaxed);
    }
    return out;
  }
  using Sender::send;

 private:
  // Replaces the item's file with a verified copy when there is one; true if it did.
  bool prepare(Item& item, Copies& copies) {
    Attempt a = codec_.jpeg_ls(item.path, options_);
    switch (a.kind) {
      case Attempt::Kind::kTranscoded:
        copies.add(a.copy->path);
        item.original_path = item.path;
        item.original_size = item.size;
        item.path = a.copy->path;
        item.size = a.copy->size;
        if (options_.syntax_parameter) item.transfer_syntax = std::string(kJpegLsLossless);
        log::debug("transcoded", {{"sop_instance_uid", item.sop_instance_uid},
                                  {"original_bytes", std::to_string(item.original_size)},
                                  {"copy_bytes", std::to_string(item.size)}});
        return true;
      case Attempt::Kind::kVerifyFailed:
        counters_->verify_failed.fetch_add(1, std::memory_order_relaxed);
        log::warn("transcoded copy failed verification; the original is sent",
                  {{"sop_instance_uid", item.sop_instance_uid}, {"reason", a.reason}});
        return false;
      case Attempt::Kind::kCodecFailed:
        counters_->skipped.fetch_add(1, std::memory_order_relaxed);
        log::error("codec process failed on an object; the original is sent",
                   {{"sop_instance_uid", item.sop_instance_uid}, {"reason", a.reason}});
        return false;
      case Attempt::Kind::kError:
        counters_->skipped.fetch_add(1, std::memory_order_relaxed);
        log::warn("transcoding failed; the original is sent",
                  {{"sop_instance_uid", item.sop_instance_uid}, {"reason", a.reason}});
        return false;
      case Attempt::Kind::kSkipped:
        counters_->skipped.fetch_add(1, std::memory_order_relaxed);
        log::debug("not transcoded",
                   {{"sop_instance_uid", item.sop_instance_uid}, {"reason", a.reason}});
        return false;
    }
    return false;
  }

  std::unique_ptr<Sender> inner_;
  Options options_;
  std::shared_ptr<Counters> counters_;
  CodecWorker codec_;  // this lane's: one send() at a time
};

}  // namespace

CountersSnapshot snapshot(const Counters& c) {
  CountersSnapshot s;
  s.transcoded = c.transcoded.load(std::memory_order_relaxed);
  s.skipped = c.skipped.load(std::memory_order_relaxed);
  s.verify_failed = c.verify_failed.load(std::memory_order_relaxed);
  s.refused = c.refused.load(std::memory_order_relaxed);
  s.original_bytes = c.original_bytes.load(std::memory_order_relaxed);
  s.sent_bytes = c.sent_bytes.load(std::memory_order_relaxed);
  return s;
}

std::unique_ptr<Sender> make_transcoding_sender(std::unique_ptr<Sender>&& inner, Options options,
                                                std::shared_ptr<Counters> counters,
                                                CodecSettings codec) {
  return std::make_unique<TranscodingSender>(std::move(inner), std::move(options),
                                             std::move(counters), std::move(codec));
}

}  // namespace dirgw::senders::transcode
