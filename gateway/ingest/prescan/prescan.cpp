// The pre-scan's entry points (prescan.h). Its parts, each in a file of its own:
//   encoding.*        byte order, VRs, transfer syntaxes, tags, reject()
//   byte_source.h     file/buffer access, forward streams, the buffered Reader
//   inflate_source.h  deflated datasets (PS3.5 A.5), inflated as a stream under a limit
//   meta.*            the file meta information (PS3.10 7.1)
//   walker.*          the iterative dataset walker and its limits
//   part10.*          the meta header put in front of a data set that came without one
#include "ingest/prescan/prescan.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>
#include <vector>

#include "common/files.h"
#include "ingest/prescan/byte_source.h"
#include "ingest/prescan/encoding.h"
#include "ingest/prescan/inflate_source.h"
#include "ingest/prescan/meta.h"
#include "ingest/prescan/part10.h"
#include "ingest/prescan/walker.h"

namespace dirgw::ingest {
namespace {

using namespace prescan_detail;

constexpr std::string_view kPlaceholderUid = "1.2.840.10008.1.1";  // Verification SOP Class

Result<PrescanResult> prescan(RandomAccess& ra, const PrescanLimits& limits,
                              ContentDigest* digest = nullptr) {
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
    if (auto w = walk_dataset(r, limits, *ts, ra.size(), false, out, digest); !w) return w.error();
    return out;
  }
  InflateSource inflater(raw, ds, limits.max_inflated_size);
  if (auto i = inflater.init(); !i) return i.error();
  Reader r(inflater, 0);
  if (auto w = walk_dataset(r, limits, *ts, kNoEnd, true, out, digest); !w) return w.error();
  return out;
}

Result<PrescanResult> prescan_path(const std::filesystem::path& path, const PrescanLimits& limits,
                                   ContentDigest* digest) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return make_error(ErrorCode::kIo, "open for prescan: " + errno_text(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return make_error(ErrorCode::kIo, "stat for prescan: " + errno_text(errno));
  }
  if (!S_ISREG(st.st_mode)) return make_error(ErrorCode::kIo, "prescan: not a regular file");
  FileAccess file(std::move(fd), static_cast<std::uint64_t>(st.st_size));
  return prescan(file, limits, digest);
}

// The fields of a content key: version, syntax, n|e, header digest, pixel digest.
std::vector<std::string_view> key_fields(std::string_view key) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = key.find(' ', start);
    out.push_back(key.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return out;
}

}  // namespace

Result<PrescanResult> prescan_file(const std::filesystem::path& path, const PrescanLimits& limits) {
  return prescan_path(path, limits, nullptr);
}

Result<std::string> content_key_file(const std::filesystem::path& path, const PrescanLimits& limits,
                                     std::function<bool(std::uint32_t tag)> text_tag) {
  ContentDigest digest;
  digest.text_tag = std::move(text_tag);
  auto scan = prescan_path(path, limits, &digest);
  if (!scan) return scan.error();
  const auto ts = classify(scan->transfer_syntax);
  return "c1 " + scan->transfer_syntax + (ts && ts->encapsulated ? " e " : " n ") +
         digest.header.hex_digest() + " " + digest.pixels.hex_digest();
}

bool same_content(std::string_view a, std::string_view b) {
  const auto x = key_fields(a);
  const auto y = key_fields(b);
  if (x.size() != 5 || y.size() != 5 || x[0] != "c1" || y[0] != "c1") return false;
  // The elements and the pixel bytes. Pixels in another syntax (JPEG Lossless where the other
  // copy is native) differ as bytes: a new version, though possibly the same image, because a
  // PACS that flipped or masked an image and kept its UID must not be taken for a duplicate.
  return x[3] == y[3] && x[4] == y[4];
}

Result<PrescanResult> prescan_bytes(std::string_view bytes, const PrescanLimits& limits) {
  MemoryAccess memory(bytes);
  return prescan(memory, limits);
}

Result<PrescanResult> prescan_dataset(std::string_view dataset, std::string_view transfer_syntax,
                                      PrescanLimits limits) {
  limits.require_object_uids = false;
  limits.compare_meta_uids = false;
  // Placeholder media storage UIDs: the meta header is ours, only its transfer syntax matters.
  std::string whole = part10_meta(kPlaceholderUid, kPlaceholderUid, transfer_syntax);
  whole.append(dataset);
  MemoryAccess memory(whole);
  return prescan(memory, limits);
}

}  // namespace dirgw::ingest