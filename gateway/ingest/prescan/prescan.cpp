#include "ingest/prescan/prescan.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>

#include "common/files.h"

namespace dirgw::ingest {
namespace {

constexpr std::uint64_t kNoEnd = UINT64_MAX;
constexpr std::uint32_t kUndefinedLength = 0xFFFFFFFFu;
constexpr std::size_t kBufSize = std::size_t{64} * 1024;
constexpr std::uint64_t kPreambleAndPrefix = 132;
constexpr std::size_t kMaxUid = 64;  // PS3.5 6.2: UI is at most 64 bytes
constexpr std::size_t kMaxCs = 16;

constexpr std::uint32_t kTagItem = 0xFFFEE000u;
constexpr std::uint32_t kTagItemDelim = 0xFFFEE00Du;
constexpr std::uint32_t kTagSeqDelim = 0xFFFEE0DDu;
constexpr std::uint32_t kTagPixelData = 0x7FE00010u;
constexpr std::uint32_t kTagSopClass = 0x00080016u;
constexpr std::uint32_t kTagSopInstance = 0x00080018u;
constexpr std::uint32_t kTagModality = 0x00080060u;
constexpr std::uint32_t kTagStudyUid = 0x0020000Du;
constexpr std::uint32_t kTagSeriesUid = 0x0020000Eu;

Error reject(std::string detail) {
  return make_error(ErrorCode::kPrescanRejected, std::move(detail));
}

std::string tag_text(std::uint32_t tag) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "(%04X,%04X)", tag >> 16, tag & 0xFFFFu);
  return buf;
}

std::uint16_t get16(const unsigned char* p, bool big) {
  return big ? static_cast<std::uint16_t>(p[0] << 8 | p[1])
             : static_cast<std::uint16_t>(p[1] << 8 | p[0]);
}

std::uint32_t get32(const unsigned char* p, bool big) {
  if (big) {
    return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 |
           std::uint32_t{p[3]};
  }
  return std::uint32_t{p[3]} << 24 | std::uint32_t{p[2]} << 16 | std::uint32_t{p[1]} << 8 |
         std::uint32_t{p[0]};
}

std::string trim_value(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

// ---------------------------------------------------------------------------------------------
// Value representations.

enum class VrClass : std::uint8_t { kText, kBinary, kSequence, kUnknown };

struct VrInfo {
  char name[3];
  bool long_form;  // 2 reserved bytes + 32-bit length in explicit VR
  VrClass cls;
};

constexpr VrInfo kVrs[] = {
    {"AE", false, VrClass::kText},   {"AS", false, VrClass::kText},
    {"AT", false, VrClass::kBinary}, {"CS", false, VrClass::kText},
    {"DA", false, VrClass::kText},   {"DS", false, VrClass::kText},
    {"DT", false, VrClass::kText},   {"FD", false, VrClass::kBinary},
    {"FL", false, VrClass::kBinary}, {"IS", false, VrClass::kText},
    {"LO", false, VrClass::kText},   {"LT", false, VrClass::kText},
    {"OB", true, VrClass::kBinary},  {"OD", true, VrClass::kBinary},
    {"OF", true, VrClass::kBinary},  {"OL", true, VrClass::kBinary},
    {"OV", true, VrClass::kBinary},  {"OW", true, VrClass::kBinary},
    {"PN", false, VrClass::kText},   {"SH", false, VrClass::kText},
    {"SL", false, VrClass::kBinary}, {"SQ", true, VrClass::kSequence},
    {"SS", false, VrClass::kBinary}, {"ST", false, VrClass::kText},
    {"SV", true, VrClass::kBinary},  {"TM", false, VrClass::kText},
    {"UC", true, VrClass::kText},    {"UI", false, VrClass::kText},
    {"UL", false, VrClass::kBinary}, {"UN", true, VrClass::kUnknown},
    {"UR", true, VrClass::kText},    {"US", false, VrClass::kBinary},
    {"UT", true, VrClass::kText},    {"UV", true, VrClass::kBinary},
};

const VrInfo* find_vr(const unsigned char* p) {
  for (const auto& vr : kVrs) {
    if (p[0] == static_cast<unsigned char>(vr.name[0]) &&
        p[1] == static_cast<unsigned char>(vr.name[1])) {
      return &vr;
    }
  }
  return nullptr;
}

bool vr_is(const VrInfo* vr, const char* name) {
  return vr != nullptr && vr->name[0] == name[0] && vr->name[1] == name[1];
}

// Public attributes whose values are bulk binary data. In implicit VR there is no VR to tell a
// string from bulk data; these tags (and private ones) are exempt from max_text_value and are never
// sniffed for a nested sequence.
bool is_bulk_tag(std::uint32_t tag) {
  const std::uint16_t g = static_cast<std::uint16_t>(tag >> 16);
  const std::uint16_t e = static_cast<std::uint16_t>(tag & 0xFFFFu);
  if (g == 0x7FE0 || g == 0x5400 || g == 0x5600 || g == 0x0066 || g == 0x0068) return true;
  if ((g & 0xFF01) == 0x5000) return true;                 // retired curve data
  if ((g & 0xFF01) == 0x6000 && e == 0x3000) return true;  // overlay data
  if (g == 0x0028 && ((e >= 0x1200 && e <= 0x12FF) || (e >= 0x3000 && e <= 0x30FF))) return true;
  if (tag == 0x00420011u || tag == 0x00700022u || tag == 0x00409212u || tag == 0x04000520u ||
      tag == 0xFFFCFFFCu) {
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Byte sources. Everything is read through a fixed buffer; values are skipped, not read.

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
        if (auto trailing = check_trailing(); !trailing) return trailing.error();
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

  // PS3.5 A.5 allows one NUL byte to pad the deflated stream to even length; anything else
  // after the end of the stream is refused.
  Result<void> check_trailing() {
    std::uint64_t extra = zs_.avail_in;
    bool nonzero =
        std::any_of(zs_.next_in, zs_.next_in + zs_.avail_in, [](Bytef b) { return b != 0; });
    char probe[2];
    while (extra <= 1) {
      auto got = raw_.read(probe, sizeof probe);
      if (!got) return got.error();
      if (*got == 0) break;
      for (std::size_t i = 0; i < *got; ++i) nonzero = nonzero || probe[i] != 0;
      extra += *got;
    }
    if (extra > 1 || nonzero) {
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
};

// Buffered reader over a Source, tracking the logical offset.
class Reader {
 public:
  Reader(Source& src, std::uint64_t base) : src_(src), buf_(new char[kBufSize]), pos_(base) {}

  std::uint64_t pos() const { return pos_; }
  const std::optional<Error>& error() const { return err_; }

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
    beg_ += n;
    pos_ += n;
    return true;
  }

  bool skip(std::uint64_t n) {
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
  Source& src_;
  std::unique_ptr<char[]> buf_;
  std::size_t beg_ = 0;
  std::size_t end_ = 0;
  std::uint64_t pos_;
  bool eof_ = false;
  std::optional<Error> err_;
};

// ---------------------------------------------------------------------------------------------
// Transfer syntaxes.

enum class Encoding : std::uint8_t { kImplicitLE, kExplicitLE, kExplicitBE };

struct TransferSyntax {
  Encoding encoding;
  bool deflated;
  bool encapsulated;
};

std::optional<TransferSyntax> classify(std::string_view uid) {
  if (uid == "1.2.840.10008.1.2") return TransferSyntax{Encoding::kImplicitLE, false, false};
  if (uid == "1.2.840.10008.1.2.1") return TransferSyntax{Encoding::kExplicitLE, false, false};
  if (uid == "1.2.840.10008.1.2.2") return TransferSyntax{Encoding::kExplicitBE, false, false};
  if (uid == "1.2.840.10008.1.2.1.99") return TransferSyntax{Encoding::kExplicitLE, true, false};
  // JPIP Referenced Deflate: the whole dataset is deflated like 1.2.840.10008.1.2.1.99.
  if (uid == "1.2.840.10008.1.2.4.95") return TransferSyntax{Encoding::kExplicitLE, true, false};
  if (uid == "1.2.840.10008.1.2.5") return TransferSyntax{Encoding::kExplicitLE, false, true};
  constexpr std::string_view kEncapsulatedPrefix = "1.2.840.10008.1.2.4.";
  if (uid.size() > kEncapsulatedPrefix.size() &&
      uid.substr(0, kEncapsulatedPrefix.size()) == kEncapsulatedPrefix) {
    const auto rest = uid.substr(kEncapsulatedPrefix.size());
    if (rest.size() <= 4 &&
        std::all_of(rest.begin(), rest.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      if (rest.size() > 1 && rest[0] == '0') return std::nullopt;
      return TransferSyntax{Encoding::kExplicitLE, false, true};
    }
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// File meta information (PS3.10 7.1): always explicit VR little endian.

struct MetaInfo {
  std::uint64_t end = 0;  // offset of the first dataset byte
};

Result<MetaInfo> scan_meta(RandomAccess& ra, PrescanResult& out) {
  const std::uint64_t size = ra.size();
  if (size == 0) return reject("empty file (0 bytes)");
  if (size < kPreambleAndPrefix) {
    return reject("file ends at offset " + std::to_string(size) +
                  ", before the 128-byte preamble and DICM prefix");
  }
  RangeSource src(ra, 0);
  Reader r(src, 0);
  unsigned char head[kPreambleAndPrefix];
  if (!r.read(head, sizeof head)) {
    if (r.error()) return *r.error();
    return reject("file ends before offset 132, inside the preamble");
  }
  out.preamble_nonzero = std::any_of(head, head + 128, [](unsigned char b) { return b != 0; });
  if (std::memcmp(head + 128, "DICM", 4) != 0) {
    return reject("no DICM prefix at offset 128 (not a DICOM Part-10 file)");
  }

  unsigned char h[12];
  if (!r.read(h, 8)) {
    if (r.error()) return *r.error();
    return reject("file ends inside the file meta information at offset 132");
  }
  const std::uint32_t first_tag = std::uint32_t{get16(h, false)} << 16 | get16(h + 2, false);
  if (first_tag >> 16 != 0x0002) return reject("file meta information missing at offset 132");
  if (first_tag != 0x00020000u) {
    return reject("file meta information group length (0002,0000) missing at offset 132");
  }
  if (find_vr(h + 4) == nullptr) {
    return reject("file meta information is not explicit VR little endian at offset 132");
  }
  if (!vr_is(find_vr(h + 4), "UL") || get16(h + 6, false) != 4) {
    return reject(
        "file meta information group length (0002,0000) is not a 4-byte UL at offset 132");
  }
  unsigned char glen[4];
  if (!r.read(glen, 4)) {
    if (r.error()) return *r.error();
    return reject("file ends inside the file meta information at offset 140");
  }
  const std::uint64_t meta_end = r.pos() + get32(glen, false);
  if (meta_end > size) {
    return reject(
        "file meta information group length points beyond the end of the file at offset 140");
  }

  bool have_version = false;
  std::optional<std::string> ts, sop_class, sop_instance;
  std::uint32_t last_tag = first_tag;
  while (r.pos() < meta_end) {
    const std::uint64_t p = r.pos();
    const std::string at = " at offset " + std::to_string(p);
    if (meta_end - p < 8) {
      return reject("file meta information group length does not match its elements" + at);
    }
    if (!r.read(h, 8)) {
      if (r.error()) return *r.error();
      return reject("file ends inside the file meta information" + at);
    }
    const std::uint32_t tag = std::uint32_t{get16(h, false)} << 16 | get16(h + 2, false);
    if (tag >> 16 != 0x0002) {
      return reject("file meta information group length is longer than the meta elements" + at);
    }
    if (tag <= last_tag) {
      return reject("file meta information elements repeated or out of order" + at);
    }
    last_tag = tag;
    const VrInfo* vr = find_vr(h + 4);
    if (vr == nullptr) return reject("file meta information is not explicit VR little endian" + at);
    std::uint64_t len = get16(h + 6, false);
    if (vr->long_form) {
      if (meta_end - p < 12) {
        return reject("file meta information group length does not match its elements" + at);
      }
      if (!r.read(h + 8, 4)) {
        if (r.error()) return *r.error();
        return reject("file ends inside the file meta information" + at);
      }
      len = get32(h + 8, false);
      if (len == kUndefinedLength) {
        return reject("undefined length in the file meta information" + at);
      }
    }
    if (len > meta_end - r.pos()) {
      return reject("file meta information element " + tag_text(tag) +
                    " crosses the end of the meta group" + at);
    }
    std::optional<std::string>* slot = nullptr;
    if (tag == 0x00020001u) have_version = true;
    if (tag == 0x00020002u) slot = &sop_class;
    if (tag == 0x00020003u) slot = &sop_instance;
    if (tag == 0x00020010u) slot = &ts;
    if (slot != nullptr) {
      if (len > kMaxUid) return reject(tag_text(tag) + " value longer than 64 bytes" + at);
      std::string value(len, '\0');
      if (!r.read(value.data(), len)) {
        if (r.error()) return *r.error();
        return reject("file ends inside the file meta information" + at);
      }
      *slot = trim_value(std::move(value));
    } else if (!r.skip(len)) {
      if (r.error()) return *r.error();
      return reject("file ends inside the file meta information" + at);
    }
  }

  if (!have_version) {
    return reject("file meta information version (0002,0001) missing");
  }
  if (!sop_class || sop_class->empty()) {
    return reject("media storage SOP class UID (0002,0002) missing or empty in the meta header");
  }
  if (!sop_instance || sop_instance->empty()) {
    return reject("media storage SOP instance UID (0002,0003) missing or empty in the meta header");
  }
  if (!ts || ts->empty()) {
    return reject("transfer syntax UID (0002,0010) missing or empty in the meta header");
  }
  out.transfer_syntax = std::move(*ts);
  out.sop_class_uid = std::move(*sop_class);
  out.sop_instance_uid = std::move(*sop_instance);
  out.dataset_offset = meta_end;
  return MetaInfo{meta_end};
}

// ---------------------------------------------------------------------------------------------
// Dataset walker: iterative, one frame per open dataset/item/sequence.

enum class Kind : std::uint8_t { kDataset, kItem, kSequence, kPixelSequence };

struct Frame {
  std::uint64_t start;  // offset of the header that opened it
  std::uint64_t end;    // kNoEnd for undefined length (and the top level)
  std::uint64_t limit;  // nearest enclosing defined end, own included; kNoEnd if unknown
  std::uint32_t last_tag = 0;
  bool has_last = false;
  bool item_seen = false;  // pixel sequence: the basic offset table item
  Kind kind;
  Encoding enc;
};

struct Found {
  std::optional<std::string> value;
  std::uint64_t offset = 0;
};

class Walker {
 public:
  Walker(Reader& r, const PrescanLimits& limits, const TransferSyntax& ts, std::uint64_t top_limit,
         bool inflated, PrescanResult& out)
      : r_(r), limits_(limits), ts_(ts), top_limit_(top_limit), inflated_(inflated), out_(out) {}

  Result<void> run() {
    stack_.push_back(
        Frame{r_.pos(), kNoEnd, top_limit_, 0, false, false, Kind::kDataset, ts_.encoding});
    for (;;) {
      Frame& f = stack_.back();
      const std::uint64_t p = r_.pos();
      if (f.end != kNoEnd && p == f.end) {
        pop();
        continue;
      }
      const bool at_limit = f.limit != kNoEnd ? p >= f.limit : r_.at_end();
      if (r_.error()) return *r_.error();
      if (at_limit) {
        if (stack_.size() == 1) break;
        return not_closed(f);
      }
      Result<void> step = f.kind == Kind::kSequence        ? sequence_step(p)
                          : f.kind == Kind::kPixelSequence ? pixel_step(p)
                                                           : element_step(p);
      if (!step) return step;
    }
    return finish();
  }

 private:
  std::string at(std::uint64_t p) const {
    return " at offset " + std::to_string(p) + (inflated_ ? " of the inflated dataset" : "");
  }

  std::string end_name(const Frame& f) const {
    if (f.limit == kNoEnd) return "the data";
    if (f.limit == top_limit_) return "the file";
    return "its enclosing item";
  }

  Error not_closed(const Frame& f) const {
    const char* what = f.kind == Kind::kSequence        ? "undefined-length sequence"
                       : f.kind == Kind::kPixelSequence ? "encapsulated pixel data"
                                                        : "undefined-length item";
    return reject(std::string(what) + " opened at offset " + std::to_string(f.start) +
                  (inflated_ ? " of the inflated dataset" : "") +
                  " is not closed before the end of " + end_name(f));
  }

  // Reads n header bytes of the current frame, refusing to cross the frame's end.
  Result<void> read_header(void* out, std::size_t n, std::uint64_t start) {
    const Frame& f = stack_.back();
    const std::uint64_t p = r_.pos();
    if (f.limit != kNoEnd && n > f.limit - p) {
      if (f.limit == top_limit_)
        return reject("file ends inside a data element header" + at(start));
      return reject("data element header crosses the end of its enclosing item" + at(start));
    }
    if (!r_.read(out, n)) {
      if (r_.error()) return *r_.error();
      return reject("data ends inside a data element header" + at(start));
    }
    return {};
  }

  // A defined length must fit the enclosing items and the file.
  Result<void> check_length(std::uint64_t len, std::uint64_t start, const char* what) {
    if (len > limits_.max_object_size) {
      return reject(std::string(what) + " length exceeds max_object_size" + at(start));
    }
    const Frame& f = stack_.back();
    const std::uint64_t p = r_.pos();
    if (f.limit != kNoEnd && len > f.limit - p) {
      if (f.limit == top_limit_) {
        return reject(std::string(what) + " extends beyond the end of the file" + at(start));
      }
      return reject(std::string(what) + " extends beyond the end of its enclosing item" +
                    at(start));
    }
    return {};
  }

  Result<void> skip_value(std::uint64_t len, std::uint64_t start, const char* what) {
    if (!r_.skip(len)) {
      if (r_.error()) return *r_.error();
      return reject(std::string(what) + " extends beyond the end of the data" + at(start));
    }
    return {};
  }

  void warn(std::string text) {
    if (out_.warnings.size() < PrescanResult::kMaxWarnings)
      out_.warnings.push_back(std::move(text));
  }

  Result<void> count_item(std::uint64_t start) {
    if (++items_ > limits_.max_items) return reject("more items than max_items" + at(start));
    return {};
  }

  Result<void> push_sequence(std::uint64_t start, std::uint64_t end, Encoding enc) {
    if (seq_depth_ + 1 > limits_.max_depth) {
      return reject("sequence nesting deeper than max_depth" + at(start));
    }
    ++seq_depth_;
    const std::uint64_t limit = std::min(end, stack_.back().limit);
    stack_.push_back(Frame{start, end, limit, 0, false, false, Kind::kSequence, enc});
    return {};
  }

  void pop() {
    if (stack_.back().kind == Kind::kSequence) --seq_depth_;
    stack_.pop_back();
  }

  // Inside a sequence: only items and, for undefined length, the sequence delimiter.
  Result<void> sequence_step(std::uint64_t p) {
    unsigned char h[8];
    if (auto rh = read_header(h, 8, p); !rh) return rh;
    const bool big = stack_.back().enc == Encoding::kExplicitBE;
    const std::uint32_t tag = std::uint32_t{get16(h, big)} << 16 | get16(h + 2, big);
    const std::uint32_t len = get32(h + 4, big);
    Frame& f = stack_.back();
    if (tag == kTagItem) {
      if (auto c = count_item(p); !c) return c;
      const Encoding enc = f.enc;
      if (len == kUndefinedLength) {
        stack_.push_back(Frame{p, kNoEnd, f.limit, 0, false, false, Kind::kItem, enc});
        return {};
      }
      if (auto c = check_length(len, p, "item"); !c) return c;
      if (len % 2 != 0) warn("odd item length" + at(p));
      const std::uint64_t end = r_.pos() + len;
      stack_.push_back(Frame{p, end, std::min(end, f.limit), 0, false, false, Kind::kItem, enc});
      return {};
    }
    if (tag == kTagSeqDelim) {
      if (f.end != kNoEnd) {
        return reject("sequence delimitation item inside a defined-length sequence" + at(p));
      }
      if (len != 0) return reject("sequence delimitation item with nonzero length" + at(p));
      pop();
      return {};
    }
    if (tag == kTagItemDelim) {
      return reject("item delimitation item in a sequence outside any item" + at(p));
    }
    return reject("data element " + tag_text(tag) + " where a sequence item was expected" + at(p));
  }

  // Inside encapsulated pixel data: fragment items until the sequence delimiter.
  Result<void> pixel_step(std::uint64_t p) {
    unsigned char h[8];
    if (auto rh = read_header(h, 8, p); !rh) return rh;
    const std::uint32_t tag = std::uint32_t{get16(h, false)} << 16 | get16(h + 2, false);
    const std::uint32_t len = get32(h + 4, false);
    Frame& f = stack_.back();
    if (tag == kTagItem) {
      if (auto c = count_item(p); !c) return c;
      if (len == kUndefinedLength) {
        return reject("encapsulated pixel data fragment with undefined length" + at(p));
      }
      if (auto c = check_length(len, p, "encapsulated pixel data fragment"); !c) return c;
      if (len % 2 != 0) warn("odd fragment length" + at(p));
      f.item_seen = true;
      return skip_value(len, p, "encapsulated pixel data fragment");
    }
    if (tag == kTagSeqDelim) {
      if (len != 0) return reject("sequence delimitation item with nonzero length" + at(p));
      if (!f.item_seen) {
        return reject("encapsulated pixel data without a basic offset table item" + at(p));
      }
      pop();
      return {};
    }
    return reject("data element " + tag_text(tag) +
                  " inside encapsulated pixel data, where a fragment item was expected" + at(p));
  }

  // Inside the dataset or an item: one data element (or the item delimiter).
  Result<void> element_step(std::uint64_t p) {
    unsigned char h[12];
    if (auto rh = read_header(h, 4, p); !rh) return rh;
    Frame& f = stack_.back();
    const Encoding enc = f.enc;
    const bool big = enc == Encoding::kExplicitBE;
    const std::uint16_t group = get16(h, big);
    const std::uint32_t tag = std::uint32_t{group} << 16 | get16(h + 2, big);
    const bool top = stack_.size() == 1;

    if (group == 0xFFFE) {
      if (auto rh = read_header(h + 4, 4, p); !rh) return rh;
      const std::uint32_t len = get32(h + 4, big);
      if (tag == kTagItemDelim) {
        if (f.kind != Kind::kItem || f.end != kNoEnd) {
          return reject("item delimitation item outside an undefined-length item" + at(p));
        }
        if (len != 0) return reject("item delimitation item with nonzero length" + at(p));
        pop();
        return {};
      }
      if (tag == kTagSeqDelim) {
        return reject("sequence delimitation item outside an undefined-length sequence" + at(p));
      }
      if (tag == kTagItem) return reject("item outside a sequence" + at(p));
      return reject("unknown delimiter element " + tag_text(tag) + at(p));
    }

    if (top && first_element_) {
      first_element_ = false;
      // A valid dataset contains (0008,0016), so its first element's group is at most 0x0008.
      const std::uint16_t swapped = get16(h, !big);
      if (group > 0x0008 && swapped <= 0x0008) {
        return reject("dataset byte order does not match the transfer syntax" + at(p));
      }
    }
    if (group == 0x0000)
      return reject("command element " + tag_text(tag) + " in the dataset" + at(p));
    if (group == 0x0002) {
      return reject("file meta element " + tag_text(tag) + " in the dataset" + at(p));
    }
    if (group == 0x0001 || group == 0x0003 || group == 0x0005 || group == 0x0007 ||
        group == 0xFFFF) {
      return reject("data element " + tag_text(tag) + " in an illegal group" + at(p));
    }
    if (f.has_last && tag <= f.last_tag) {
      return reject(tag == f.last_tag
                        ? "data element " + tag_text(tag) + " repeated" + at(p)
                        : "data element " + tag_text(tag) + " out of ascending tag order" + at(p));
    }
    f.last_tag = tag;
    f.has_last = true;
    if (++elements_ > limits_.max_elements) {
      return reject("more data elements than max_elements" + at(p));
    }

    const VrInfo* vr = nullptr;
    std::uint32_t len = 0;
    if (enc == Encoding::kImplicitLE) {
      if (auto rh = read_header(h + 4, 4, p); !rh) return rh;
      len = get32(h + 4, false);
      if (top && elements_ == 1 && find_vr(h + 4) != nullptr) {
        return reject("dataset looks like explicit VR but the transfer syntax is implicit VR" +
                      at(p));
      }
    } else {
      if (auto rh = read_header(h + 4, 4, p); !rh) return rh;
      vr = find_vr(h + 4);
      if (vr == nullptr) {
        return reject("invalid VR for " + tag_text(tag) +
                      " (the transfer syntax says explicit VR; is the dataset implicit VR?)" +
                      at(p));
      }
      if (vr->long_form) {
        if (auto rh = read_header(h + 8, 4, p); !rh) return rh;
        len = get32(h + 8, big);
      } else {
        len = get16(h + 6, big);
      }
    }

    const bool pixel = tag == kTagPixelData;
    if (len == kUndefinedLength) {
      if (vr_is(vr, "SQ")) return push_sequence(p, kNoEnd, enc);
      if (pixel && (vr == nullptr || vr_is(vr, "OB") || vr_is(vr, "OW") || vr_is(vr, "UN"))) {
        if (!ts_.encapsulated) {
          return reject("undefined-length (encapsulated) pixel data in a native transfer syntax" +
                        at(p));
        }
        stack_.push_back(Frame{p, kNoEnd, f.limit, 0, false, false, Kind::kPixelSequence, enc});
        return {};
      }
      // UN of undefined length, or any implicit-VR element of undefined length: a sequence whose
      // content is implicit VR little endian (PS3.5 6.2.2).
      if (vr == nullptr || vr_is(vr, "UN")) return push_sequence(p, kNoEnd, Encoding::kImplicitLE);
      return reject(std::string("undefined length on ") + tag_text(tag) + " with VR " + vr->name +
                    ", which is not a sequence" + at(p));
    }

    if (auto c = check_length(len, p, "value"); !c) return c;
    const std::uint64_t value_start = r_.pos();
    if (vr_is(vr, "SQ")) return push_sequence(p, value_start + len, enc);
    if ((vr == nullptr || vr_is(vr, "UN")) && len >= 8 && !is_bulk_tag(tag)) {
      // A value that starts with an item tag is a sequence DCMTK's dictionary would descend into:
      // it gets the same depth, count and structure checks.
      const unsigned char* v = r_.peek(4);
      if (v != nullptr && get32(v, false) == 0xE000FFFEu) {
        return push_sequence(p, value_start + len, Encoding::kImplicitLE);
      }
      if (r_.error()) return *r_.error();
    }
    if (len % 2 != 0) warn("odd value length for " + tag_text(tag) + at(p));
    const bool text =
        vr != nullptr ? vr->cls == VrClass::kText : ((group & 1) == 0 && !is_bulk_tag(tag));
    if (text && len > limits_.max_text_value) {
      return reject("value of " + tag_text(tag) + " longer than max_text_value" + at(p));
    }

    if (top) {
      Found* slot = tag == kTagSopClass      ? &sop_class_
                    : tag == kTagSopInstance ? &sop_instance_
                    : tag == kTagModality    ? &modality_
                    : tag == kTagStudyUid    ? &study_
                    : tag == kTagSeriesUid   ? &series_
                                             : nullptr;
      if (slot != nullptr) {
        const std::size_t max = tag == kTagModality ? kMaxCs : kMaxUid;
        if (len > max) {
          return reject("value of " + tag_text(tag) + " longer than " + std::to_string(max) +
                        " bytes" + at(p));
        }
        std::string value(len, '\0');
        if (!r_.read(value.data(), len)) {
          if (r_.error()) return *r_.error();
          return reject("value extends beyond the end of the data" + at(p));
        }
        slot->value = trim_value(std::move(value));
        slot->offset = p;
        return {};
      }
    }
    return skip_value(len, p, "value");
  }

  Result<void> finish() {
    const std::string ds_at = " (dataset at offset " + std::to_string(out_.dataset_offset) + ")";
    auto require = [&](const Found& found, const char* what) -> std::optional<Error> {
      if (!found.value || found.value->empty()) {
        return reject(std::string("dataset has no ") + what + ds_at);
      }
      return std::nullopt;
    };
    if (auto e = require(sop_class_, "SOP Class UID (0008,0016)")) return *e;
    if (auto e = require(sop_instance_, "SOP Instance UID (0008,0018)")) return *e;
    if (auto e = require(study_, "Study Instance UID (0020,000D)")) return *e;
    if (auto e = require(series_, "Series Instance UID (0020,000E)")) return *e;
    if (*sop_class_.value != out_.sop_class_uid) {
      return reject("SOP Class UID (0008,0016) differs from the meta header's (0002,0002)" +
                    at(sop_class_.offset));
    }
    if (*sop_instance_.value != out_.sop_instance_uid) {
      return reject("SOP Instance UID (0008,0018) differs from the meta header's (0002,0003)" +
                    at(sop_instance_.offset));
    }
    out_.dataset_sop_class_uid = *sop_class_.value;
    out_.dataset_sop_instance_uid = *sop_instance_.value;
    out_.study_uid = *study_.value;
    out_.series_uid = *series_.value;
    out_.modality = modality_.value.value_or(std::string());
    return {};
  }

  Reader& r_;
  const PrescanLimits& limits_;
  TransferSyntax ts_;
  std::uint64_t top_limit_;
  bool inflated_;
  PrescanResult& out_;
  std::vector<Frame> stack_;
  int seq_depth_ = 0;
  std::uint64_t items_ = 0;
  std::uint64_t elements_ = 0;
  bool first_element_ = true;
  Found sop_class_, sop_instance_, modality_, study_, series_;
};

Result<PrescanResult> prescan(RandomAccess& ra, const PrescanLimits& limits) {
  if (ra.size() > limits.max_object_size) return reject("file larger than max_object_size");
  PrescanResult out;
  auto meta = scan_meta(ra, out);
  if (!meta) return meta.error();
  const auto ts = classify(out.transfer_syntax);
  if (!ts) return reject("unsupported transfer syntax in (0002,0010)");
  const std::uint64_t ds = meta->end;

  RangeSource raw(ra, ds);
  if (!ts->deflated) {
    // A meta element right after the group length's end means the group length is too short.
    unsigned char next[2];
    if (ra.size() - ds >= 2) {
      auto got = ra.read_at(ds, reinterpret_cast<char*>(next), 2);
      if (!got) return got.error();
      if (*got == 2 && next[0] == 0x02 && next[1] == 0x00) {
        return reject(
            "file meta information group length is shorter than the meta elements"
            " at offset " +
            std::to_string(ds));
      }
    }
    Reader r(raw, ds);
    Walker walker(r, limits, *ts, ra.size(), false, out);
    if (auto w = walker.run(); !w) return w.error();
    return out;
  }
  InflateSource inflater(raw, ds, limits.max_inflated_size);
  if (auto i = inflater.init(); !i) return i.error();
  Reader r(inflater, 0);
  Walker walker(r, limits, *ts, kNoEnd, true, out);
  if (auto w = walker.run(); !w) return w.error();
  return out;
}

}  // namespace

Result<PrescanResult> prescan_file(const std::filesystem::path& path, const PrescanLimits& limits) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return make_error(ErrorCode::kIo, "open for prescan: " + errno_text(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return make_error(ErrorCode::kIo, "stat for prescan: " + errno_text(errno));
  }
  if (!S_ISREG(st.st_mode)) return make_error(ErrorCode::kIo, "prescan: not a regular file");
  FileAccess file(std::move(fd), static_cast<std::uint64_t>(st.st_size));
  return prescan(file, limits);
}

Result<PrescanResult> prescan_bytes(std::string_view bytes, const PrescanLimits& limits) {
  MemoryAccess memory(bytes);
  return prescan(memory, limits);
}

}  // namespace dirgw::ingest
