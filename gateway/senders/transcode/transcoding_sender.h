// The transcoding hook: a Sender that wraps a destination's sender (STOW-RS or DIMSE) and, per
// instance, offers a verified JPEG-LS Lossless copy (jpeg_ls.h) in place of the stored object.
// The scheduler and the catalog never see the copies: the items it is given keep their spool
// paths, the copies are temporaries removed when send() returns, and the Outcome is the inner
// sender's, instance by instance. Counters say what it did, since the daemon started.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "senders/sender.h"
#include "senders/transcode/codec_worker.h"
#include "senders/transcode/jpeg_ls.h"

namespace dirgw::senders::transcode {

// Per destination, since start. Read by `dirgw status` and the metrics endpoint.
struct Counters {
  std::atomic<std::uint64_t> transcoded{0};     // copies the destination accepted
  std::atomic<std::uint64_t> skipped{0};        // sent as stored: not eligible, codec refused
  std::atomic<std::uint64_t> verify_failed{0};  // copy decoded differently: the original went
  std::atomic<std::uint64_t> refused{0};  // destination refused JPEG-LS: the original went (DIMSE)
  std::atomic<std::uint64_t> original_bytes{0};  // stored size of the accepted copies' originals
  std::atomic<std::uint64_t> sent_bytes{0};      // size of the accepted copies
};

struct CountersSnapshot {
  std::uint64_t transcoded = 0, skipped = 0, verify_failed = 0, refused = 0;
  std::uint64_t original_bytes = 0, sent_bytes = 0;
  std::uint64_t bytes_saved() const {
    return original_bytes > sent_bytes ? original_bytes - sent_bytes : 0;
  }
};
CountersSnapshot snapshot(const Counters& counters);

// `codec`: where the codec runs (codec_worker.h; the default, an empty command, is this process).
std::unique_ptr<Sender> make_transcoding_sender(std::unique_ptr<Sender>&& inner, Options options,
                                                std::shared_ptr<Counters> counters,
                                                CodecSettings codec = {});

}  // namespace dirgw::senders::transcode
