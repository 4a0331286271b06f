// Internals of the pre-scan (prescan.h): a deflated dataset (PS3.5 A.5) inflated as a stream,
// every inflated byte counted against a limit.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

#include "ingest/prescan/byte_source.h"

namespace dirgw::ingest::prescan_detail {

// Raw deflate (PS3.5 A.5: RFC 1951 without zlib header) inflated on the fly; every inflated byte,
// skipped or read, counts against the limit.
class InflateSource final : public Source {
 public:
  InflateSource(Source& raw, std::uint64_t raw_offset, std::uint64_t max_out)
      : raw_(raw), raw_offset_(raw_offset), max_out_(max_out), in_(new char[kBufSize]) {}
  ~InflateSource() override {
    if (initialized_) inflateEnd(&zs_);
  }
  InflateSource(const InflateSource&) = delete;
  InflateSource& operator=(const InflateSource&) = delete;

  Result<void> init() {
    zs_ = z_stream{};
    if (inflateInit2(&zs_, -MAX_WBITS) != Z_OK) {
      return make_error(ErrorCode::kInternal, "zlib inflateInit2 failed");
    }
    initialized_ = true;
    return {};
  }

  Result<std::size_t> read(char* out, std::size_t n) override {
    if (done_ || n == 0) return std::size_t{0};
    const auto want = static_cast<uInt>(std::min<std::size_t>(n, UINT_MAX));
    zs_.next_out = reinterpret_cast<Bytef*>(out);
    zs_.avail_out = want;
    while (zs_.avail_out == want) {
      if (zs_.avail_in == 0 && !raw_eof_) {
        auto got = raw_.read(in_.get(), kBufSize);
        if (!got) return got.error();
        raw_eof_ = *got == 0;
        zs_.next_in = reinterpret_cast<Bytef*>(in_.get());
        zs_.avail_in = static_cast<uInt>(*got);
      }
      // Called even without new input: zlib may still hold output from earlier input.
      const int rc = inflate(&zs_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        done_ = true;
        const auto last = static_cast<uInt>(want - zs_.avail_out);
        const uLong crc = crc32(crc_, reinterpret_cast<const Bytef*>(out), last);
        if (auto trailing = check_trailing(crc, total_out_ + last); !trailing)
          return trailing.error();
        break;
      }
      if (rc == Z_BUF_ERROR && zs_.avail_in == 0) {
        if (raw_eof_) {
          return reject("deflated dataset ends before the end of its deflate stream at offset " +
                        std::to_string(raw_pos()));
        }
        continue;
      }
      if (rc != Z_OK)
        return reject("corrupt deflate stream at offset " + std::to_string(raw_pos()));
    }
    const std::size_t produced = want - zs_.avail_out;
    crc_ = crc32(crc_, reinterpret_cast<const Bytef*>(out), static_cast<uInt>(produced));
    total_out_ += produced;
    if (total_out_ > max_out_) {
      return reject("inflated dataset larger than max_inflated_size at offset " +
                    std::to_string(raw_pos()) + " of the file");
    }
    return produced;
  }

  Result<std::uint64_t> skip(std::uint64_t n) override {
    if (!scratch_) scratch_.reset(new char[kBufSize]);
    std::uint64_t skipped = 0;
    while (skipped < n) {
      auto got = read(scratch_.get(), std::min<std::uint64_t>(kBufSize, n - skipped));
      if (!got) return got.error();
      if (*got == 0) break;
      skipped += *got;
    }
    return skipped;
  }

 private:
  std::uint64_t raw_pos() const { return raw_offset_ + zs_.total_in; }

  // PS3.5 A.5 allows one NUL byte to pad the deflated stream to even length. Some writers
  // leave a gzip trailer after the stream instead (RFC 1952: the CRC-32 and the size modulo
  // 2^32 of the inflated data, little endian), which DCMTK ignores; it is accepted when both
  // match what was inflated, with or without the NUL. Anything else after the end of the
  // stream is refused.
  Result<void> check_trailing(uLong crc, std::uint64_t inflated) {
    constexpr std::size_t kGzipTrailer = 8;
    // Room for a trailer, its pad, and one byte more: enough to tell "too much" apart.
    unsigned char tail[kGzipTrailer + 2];
    std::size_t extra = std::min<std::size_t>(zs_.avail_in, sizeof tail);
    std::memcpy(tail, zs_.next_in, extra);
    while (extra < sizeof tail) {
      auto got = raw_.read(reinterpret_cast<char*>(tail) + extra, sizeof tail - extra);
      if (!got) return got.error();
      if (*got == 0) break;
      extra += *got;
    }
    const bool more = extra > kGzipTrailer + 1;
    const bool pad_only = extra == 0 || (extra == 1 && tail[0] == 0);
    const bool gzip_trailer =
        (extra == kGzipTrailer || (extra == kGzipTrailer + 1 && tail[kGzipTrailer] == 0)) &&
        get32(tail, false) == static_cast<std::uint32_t>(crc) &&
        get32(tail + 4, false) == static_cast<std::uint32_t>(inflated);
    if (more || !(pad_only || gzip_trailer)) {
      return reject("data after the end of the deflate stream at offset " +
                    std::to_string(raw_pos()));
    }
    return {};
  }

  Source& raw_;
  std::uint64_t raw_offset_;
  std::uint64_t max_out_;
  std::unique_ptr<char[]> in_;
  std::unique_ptr<char[]> scratch_;
  z_stream zs_{};
  bool initialized_ = false;
  bool done_ = false;
  bool raw_eof_ = false;
  std::uint64_t total_out_ = 0;
  uLong crc_ = crc32(0L, Z_NULL, 0);
};

}  // namespace dirgw::ingest::prescan_detail
