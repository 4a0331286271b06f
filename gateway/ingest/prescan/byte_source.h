// Internals of the pre-scan (prescan.h): where its bytes come from. A file or a buffer read at
// offsets, a forward-only stream over a range of it, and a buffered reader that tracks the
// logical offset. Everything is read through a fixed buffer; values are skipped, not read.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string_view>

#include "common/files.h"
#include "common/result.h"
#include "ingest/prescan/encoding.h"

namespace dirgw::ingest::prescan_detail {

// Where the Reader hands the bytes it consumes while set (Reader::set_tap).
class Tap {
 public:
  virtual ~Tap() = default;
  virtual void take(const char* data, std::size_t n) = 0;
};

class RandomAccess {
 public:
  virtual ~RandomAccess() = default;
  virtual std::uint64_t size() const = 0;
  // Reads up to n bytes at offset; 0 at end of data.
  virtual Result<std::size_t> read_at(std::uint64_t offset, char* out, std::size_t n) = 0;
};

class MemoryAccess final : public RandomAccess {
 public:
  explicit MemoryAccess(std::string_view bytes) : bytes_(bytes) {}
  std::uint64_t size() const override { return bytes_.size(); }
  Result<std::size_t> read_at(std::uint64_t offset, char* out, std::size_t n) override {
    if (offset >= bytes_.size()) return std::size_t{0};
    const std::size_t take = std::min<std::uint64_t>(n, bytes_.size() - offset);
    std::memcpy(out, bytes_.data() + offset, take);
    return take;
  }

 private:
  std::string_view bytes_;
};

class FileAccess final : public RandomAccess {
 public:
  FileAccess(UniqueFd fd, std::uint64_t size) : fd_(std::move(fd)), size_(size) {}
  std::uint64_t size() const override { return size_; }
  Result<std::size_t> read_at(std::uint64_t offset, char* out, std::size_t n) override {
    if (offset >= size_) return std::size_t{0};
    n = std::min<std::uint64_t>(n, size_ - offset);
    for (;;) {
      const ssize_t got = ::pread(fd_.get(), out, n, static_cast<off_t>(offset));
      if (got >= 0) return static_cast<std::size_t>(got);
      if (errno != EINTR) return make_error(ErrorCode::kIo, "read: " + errno_text(errno));
    }
  }

 private:
  UniqueFd fd_;
  std::uint64_t size_;
};

// A forward-only stream.
class Source {
 public:
  virtual ~Source() = default;
  // Reads up to n bytes; 0 at end of data.
  virtual Result<std::size_t> read(char* out, std::size_t n) = 0;
  // Skips up to n bytes; returns how many were skipped (fewer only at end of data).
  virtual Result<std::uint64_t> skip(std::uint64_t n) = 0;
};

class RangeSource final : public Source {
 public:
  RangeSource(RandomAccess& ra, std::uint64_t offset) : ra_(ra), offset_(offset) {}
  Result<std::size_t> read(char* out, std::size_t n) override {
    auto got = ra_.read_at(offset_, out, n);
    if (got) offset_ += *got;
    return got;
  }
  Result<std::uint64_t> skip(std::uint64_t n) override {
    const std::uint64_t left = offset_ < ra_.size() ? ra_.size() - offset_ : 0;
    const std::uint64_t take = std::min(n, left);
    offset_ += take;
    return take;
  }

 private:
  RandomAccess& ra_;
  std::uint64_t offset_;
};

// Buffered reader over a Source, tracking the logical offset.
class Reader {
 public:
  Reader(Source& src, std::uint64_t base) : src_(src), buf_(new char[kBufSize]), pos_(base) {}

  std::uint64_t pos() const { return pos_; }
  const std::optional<Error>& error() const { return err_; }
  // While set, every byte read or skipped is also handed to `tap` (the content digest of
  // content_key_file(); skipped bytes are then read, not skipped). nullptr: none.
  void set_tap(Tap* tap) { tap_ = tap; }

  // Makes n (<= kBufSize) bytes available; false at end of data or on error.
  bool fill(std::size_t n) {
    if (end_ - beg_ >= n) return true;
    if (err_ || eof_) return false;
    if (beg_ > 0) {
      std::memmove(buf_.get(), buf_.get() + beg_, end_ - beg_);
      end_ -= beg_;
      beg_ = 0;
    }
    while (end_ < n) {
      auto got = src_.read(buf_.get() + end_, kBufSize - end_);
      if (!got) {
        err_ = got.error();
        return false;
      }
      if (*got == 0) {
        eof_ = true;
        return false;
      }
      end_ += *got;
    }
    return true;
  }

  const unsigned char* peek(std::size_t n) {
    return fill(n) ? reinterpret_cast<const unsigned char*>(buf_.get() + beg_) : nullptr;
  }

  bool read(void* out, std::size_t n) {
    if (!fill(n)) return false;
    std::memcpy(out, buf_.get() + beg_, n);
    if (tap_ != nullptr) tap_->take(buf_.get() + beg_, n);
    beg_ += n;
    pos_ += n;
    return true;
  }

  bool skip(std::uint64_t n) {
    if (tap_ != nullptr) return skip_tapped(n);
    const std::uint64_t take = std::min<std::uint64_t>(n, end_ - beg_);
    beg_ += take;
    pos_ += take;
    n -= take;
    if (n == 0) return true;
    if (err_ || eof_) return false;
    auto skipped = src_.skip(n);
    if (!skipped) {
      err_ = skipped.error();
      return false;
    }
    pos_ += *skipped;
    if (*skipped < n) {
      eof_ = true;
      return false;
    }
    return true;
  }

  bool at_end() { return !fill(1); }

 private:
  bool skip_tapped(std::uint64_t n) {
    while (n > 0) {
      if (end_ == beg_ && !fill(1)) return false;
      const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(n, end_ - beg_));
      tap_->take(buf_.get() + beg_, take);
      beg_ += take;
      pos_ += take;
      n -= take;
    }
    return true;
  }

  Source& src_;
  std::unique_ptr<char[]> buf_;
  std::size_t beg_ = 0;
  std::size_t end_ = 0;
  std::uint64_t pos_;
  bool eof_ = false;
  std::optional<Error> err_;
  Tap* tap_ = nullptr;
};

}  // namespace dirgw::ingest::prescan_detail
