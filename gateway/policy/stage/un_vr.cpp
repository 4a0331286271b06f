// Issue 17, item 5 (the way out): VR UN elements the dictionary knows. See un_vr.h.
#include "policy/stage/un_vr.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

#include "common/file_meta.h"
#include "common/files.h"
#include "dcmtk/config/osconfig.h"  // must come first among the DCMTK headers
#include "dcmtk/dcmdata/dcdicent.h"
#include "dcmtk/dcmdata/dcdict.h"
#include "dcmtk/dcmdata/dcvr.h"

namespace dirgw::policy {

namespace {

struct FileCloser {
  void operator()(std::FILE* f) const {
    if (f != nullptr) std::fclose(f);
  }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

// Syntaxes whose dataset is not explicit VR little endian: nothing to decode, or not here.
bool explicit_little_endian_dataset(std::string_view ts) {
  return ts != "1.2.840.10008.1.2" && ts != "1.2.840.10008.1.2.1.99" && ts != "1.2.840.10008.1.2.2";
}

// The VRs a UN value may be relabelled with, and the size a value must be a multiple of.
// Sequences (their items would need re-encoding) and the dictionary's ambiguous VRs ("US or
// SS", "OB or OW") are not among them.
std::optional<unsigned> unit_of(std::string_view vr) {
  static constexpr std::pair<std::string_view, unsigned> kSafe[] = {
      {"AE", 2}, {"AS", 2}, {"AT", 4}, {"CS", 2}, {"DA", 2}, {"DS", 2}, {"DT", 2}, {"FL", 4},
      {"FD", 8}, {"IS", 2}, {"LO", 2}, {"LT", 2}, {"PN", 2}, {"SH", 2}, {"SL", 4}, {"SS", 2},
      {"ST", 2}, {"TM", 2}, {"UI", 2}, {"UL", 4}, {"US", 2}, {"OB", 2}, {"OD", 8}, {"OF", 4},
      {"OL", 4}, {"OV", 8}, {"OW", 2}, {"SV", 8}, {"UC", 2}, {"UR", 2}, {"UT", 2}, {"UV", 8}};
  for (const auto& [name, unit] : kSafe)
    if (name == vr) return unit;
  return std::nullopt;
}

// The dictionary's VR for a public tag, when it is one of the safe ones; empty otherwise.
std::string dictionary_vr(std::uint16_t group, std::uint16_t element) {
  if (group % 2 != 0 || group <= 0x0002 || group == 0xFFFE) return {};
  std::string vr;
  const DcmDataDictionary& dict = dcmDataDict.rdlock();
  if (const DcmDictEntry* e = dict.findEntry(DcmTagKey(group, element), nullptr); e != nullptr)
    vr = DcmVR(e->getEVR()).getVRName();
  dcmDataDict.rdunlock();
  return unit_of(vr) ? vr : std::string();
}

std::uint16_t u16(const unsigned char* p) { return static_cast<std::uint16_t>(p[0] | p[1] << 8); }
std::uint32_t u32(const unsigned char* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

// One header to replace: at `offset`, `old_size` bytes become `header`.
struct Patch {
  std::uint64_t offset = 0;
  unsigned old_size = 0;
  std::vector<unsigned char> header;
};

// The new header of a UN element (tag in `h`, value length `len`) relabelled `vr`.
std::vector<unsigned char> header_for(const unsigned char* h, const std::string& vr,
                                      std::uint32_t len) {
  std::vector<unsigned char> out(h, h + 4);
  out.push_back(static_cast<unsigned char>(vr[0]));
  out.push_back(static_cast<unsigned char>(vr[1]));
  if (long_form_vr(vr)) {
    out.insert(out.end(), {0, 0});
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<unsigned char>(len >> (8 * i)));
  } else {
    out.push_back(static_cast<unsigned char>(len));
    out.push_back(static_cast<unsigned char>(len >> 8));
  }
  return out;
}

// The file's bytes through one pread window: an element header costs no system call of its own
// (a CT's headers before its pixel data fit in the first window; a value is skipped by offset).
class Window {
 public:
  explicit Window(int fd) : fd_(fd), buf_(64 * 1024) {}
  // The `n` bytes at `pos`, or nullptr when the file ends (or cannot be read) before them.
  const unsigned char* at(std::uint64_t pos, std::size_t n) {
    if (pos < start_ || pos + n > start_ + size_) {
      ssize_t got = -1;
      do {
        got = ::pread(fd_, buf_.data(), buf_.size(), static_cast<off_t>(pos));
      } while (got < 0 && errno == EINTR);
      start_ = pos;
      size_ = got < 0 ? 0 : static_cast<std::uint64_t>(got);
      if (n > size_) return nullptr;
    }
    return buf_.data() + (pos - start_);
  }

 private:
  int fd_;
  std::vector<unsigned char> buf_;
  std::uint64_t start_ = 0, size_ = 0;
};

// Walks the top-level elements from `pos` to the first of undefined length (or the end) and
// lists the UN headers to replace.
std::vector<Patch> plan_patches(Window& in, std::uint64_t pos, std::uint64_t size,
                                UnDecoding& counts) {
  std::vector<Patch> patches;
  while (pos + 8 <= size) {
    const unsigned char* h = in.at(pos, 8);
    if (h == nullptr) break;
    const std::string_view vr(reinterpret_cast<const char*>(h + 4), 2);
    std::uint64_t header = 8, len = u16(h + 6);
    if (long_form_vr(vr)) {
      if (pos + 12 > size || (h = in.at(pos, 12)) == nullptr) break;
      header = 12;
      len = u32(h + 8);
    }
    if (len == 0xFFFFFFFFu || pos + header + len > size) break;
    if (vr == "UN") {
      const std::string target = dictionary_vr(u16(h), u16(h + 2));
      const auto unit = target.empty() ? std::nullopt : unit_of(target);
      if (unit && len % *unit == 0 && (long_form_vr(target) || len <= 0xFFFF)) {
        patches.push_back({pos, 12, header_for(h, target, static_cast<std::uint32_t>(len))});
        ++counts.decoded;
      } else {
        ++counts.kept;
      }
    }
    pos += header + len;
  }
  return patches;
}

bool copy_range(std::FILE* in, std::FILE* out, std::uint64_t from, std::uint64_t to) {
  if (::fseeko(in, static_cast<off_t>(from), SEEK_SET) != 0) return false;
  std::vector<char> buf(1 << 16);
  while (from < to) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), to - from));
    if (std::fread(buf.data(), 1, want, in) != want ||
        std::fwrite(buf.data(), 1, want, out) != want)
      return false;
    from += want;
  }
  return true;
}

}  // namespace

Result<UnDecoding> decode_un_elements(const std::filesystem::path& input,
                                      const std::filesystem::path& output) {
  UniqueFd fd(::open(input.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return make_error(ErrorCode::kIo, "cannot open the object");
  auto meta = read_file_meta(fd.get());
  if (!meta) return meta.error();
  if (!explicit_little_endian_dataset(meta->transfer_syntax))
    return make_error(ErrorCode::kBadDicom, "dataset is not explicit VR little endian");
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return make_error(ErrorCode::kIo, "stat: " + errno_text(errno));
  const auto size = static_cast<std::uint64_t>(st.st_size);
  UnDecoding counts;
  Window window(fd.get());
  const auto patches = plan_patches(window, meta->dataset_offset, size, counts);
  if (patches.empty()) return counts;  // nothing written: `output` is not created
  const int raw = fd.release();
  File in(::fdopen(raw, "rb"));
  if (!in) {
    ::close(raw);
    return make_error(ErrorCode::kIo, "cannot open the object");
  }
  File out(std::fopen(output.c_str(), "wb"));
  if (!out) return make_error(ErrorCode::kIo, "cannot create the copy");
  std::uint64_t pos = 0;
  for (const auto& p : patches) {
    if (!copy_range(in.get(), out.get(), pos, p.offset) ||
        std::fwrite(p.header.data(), 1, p.header.size(), out.get()) != p.header.size())
      return make_error(ErrorCode::kIo, "cannot write the copy");
    pos = p.offset + p.old_size;
  }
  if (!copy_range(in.get(), out.get(), pos, size) || std::fflush(out.get()) != 0)
    return make_error(ErrorCode::kIo, "cannot write the copy");
  return counts;
}

std::optional<catalog::DerivedObject> un_decoded_copy(const std::string& destination,
                                                      const std::filesystem::path& input,
                                                      std::int64_t instance_id,
                                                      const std::string& sop_instance_uid,
                                                      const ingest::Spool& spool) {
  const auto tmp = spool.new_temp_path();
  auto decoded = decode_un_elements(input, tmp);
  if (decoded && decoded->decoded == 0) return std::nullopt;  // the usual case: no copy written
  if (!decoded) {
    spool.discard_temp(tmp);
    return std::nullopt;
  }
  auto stored = spool.commit_derived(tmp);
  spool.discard_temp(tmp);
  if (!stored) return std::nullopt;
  return catalog::DerivedObject{instance_id,  destination,  stored->sha256,
                                stored->size, "un-decoded", sop_instance_uid};
}

}  // namespace dirgw::policy
