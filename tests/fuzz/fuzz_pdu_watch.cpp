// libFuzzer target: the watch over what a DIMSE peer sends (ingest/dimse_scp/pdu_watch.h), the
// first code of ours that untrusted network bytes reach, as the SCP uses it and as a client uses
// it (check_answers: A-ASSOCIATE-AC parsed, answers' data sets held and pre-scanned). The first
// input byte picks the limit and the way the rest is split into reads; the rest is the stream.
//
// Checks, in both modes: fed byte by byte or in reads of any size, the watch reaches the same
// verdict (trips, or gives up on the framing, or neither, and holds or not) at the same byte; a
// trip's reason is our words; once tripped it stays tripped.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "fuzz_check.h"
#include "ingest/dimse_scp/pdu_watch.h"

namespace {

struct Verdict {
  std::optional<std::size_t> tripped_at;  // offset of the read that tripped
  bool watching = true;
  bool holding = false;
  std::string why;
};

Verdict run(const std::uint8_t* data, std::size_t size, std::size_t limit, std::size_t chunk,
            bool answers) {
  dirgw::ingest::PduWatch w(limit, answers);
  Verdict v;
  for (std::size_t i = 0; i < size; i += chunk) {
    const std::size_t n = size - i < chunk ? size - i : chunk;
    // One byte at a time inside a read, so that "where" is the byte, whatever the split.
    for (std::size_t j = 0; j < n; ++j) {
      auto r = w.feed(data + i + j, 1);
      if (!r) {
        v.tripped_at = i + j;
        v.why = r.error().detail;
        FUZZ_CHECK(w.tripped(), "a failed feed leaves the watch tripped");
        FUZZ_CHECK(!w.feed(data, 1), "a tripped watch stays tripped");
        v.watching = w.watching();
        return v;
      }
    }
  }
  v.watching = w.watching();
  v.holding = w.holding();
  return v;
}

Verdict run_whole_reads(const std::uint8_t* data, std::size_t size, std::size_t limit,
                        std::size_t chunk, bool answers) {
  dirgw::ingest::PduWatch w(limit, answers);
  Verdict v;
  for (std::size_t i = 0; i < size; i += chunk) {
    const std::size_t n = size - i < chunk ? size - i : chunk;
    auto r = w.feed(data + i, n);
    if (!r) {
      v.tripped_at = i;
      v.why = r.error().detail;
      v.watching = w.watching();
      return v;
    }
  }
  v.watching = w.watching();
  v.holding = w.holding();
  return v;
}

void check_mode(const std::uint8_t* data, std::size_t size, std::size_t limit, std::size_t chunk,
                bool answers) {
  const Verdict bytewise = run(data, size, limit, 1, answers);
  const Verdict split = run(data, size, limit, chunk, answers);
  FUZZ_CHECK(bytewise.tripped_at == split.tripped_at, "same trip point whatever the reads");
  FUZZ_CHECK(bytewise.watching == split.watching, "same framing verdict whatever the reads");
  FUZZ_CHECK(bytewise.holding == split.holding, "same hold whatever the reads");
  FUZZ_CHECK(bytewise.why == split.why, "same reason whatever the reads");
  if (bytewise.tripped_at) {
    FUZZ_CHECK(dirgw::fuzz::printable_ascii(bytewise.why), "the reason is our words");
    FUZZ_CHECK(!bytewise.why.empty(), "a trip says why");
  }
  if (!answers) FUZZ_CHECK(!bytewise.holding, "only a client's watch holds");
  // Whole reads: the trip is reported by the read that holds the byte that tripped it.
  const Verdict whole = run_whole_reads(data, size, limit, chunk, answers);
  FUZZ_CHECK(whole.tripped_at.has_value() == bytewise.tripped_at.has_value(),
             "whole reads trip exactly when byte reads do");
  if (whole.tripped_at) {
    FUZZ_CHECK(*whole.tripped_at <= *bytewise.tripped_at &&
                   *bytewise.tripped_at < *whole.tripped_at + chunk,
               "the read that trips holds the tripping byte");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t limit = 16u << (data[0] & 0x0F);  // 16 B .. 512 KiB
  const std::size_t chunk = 1u + (data[0] >> 4) * 97u;
  ++data;
  --size;

  check_mode(data, size, limit, chunk, /*answers=*/false);
  check_mode(data, size, limit, chunk, /*answers=*/true);
  return 0;
}
