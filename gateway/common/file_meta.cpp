#include "common/file_meta.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iterator>

#include "common/files.h"
#include "common/text.h"

namespace dirgw {

namespace {

std::uint16_t u16(std::string_view b, std::size_t at) {
  return static_cast<std::uint16_t>(static_cast<unsigned char>(b[at]) |
                                    (static_cast<unsigned char>(b[at + 1]) << 8));
}
std::uint32_t u32(std::string_view b, std::size_t at) {
  return static_cast<std::uint32_t>(u16(b, at)) |
         (static_cast<std::uint32_t>(u16(b, at + 2)) << 16);
}

Error bad(const std::string& what, std::size_t offset) {
  return make_error(ErrorCode::kBadDicom,
                    "file meta: " + what + " at byte " + std::to_string(offset));
}

}  // namespace

bool long_form_vr(std::string_view vr) {
  static constexpr std::string_view kLong[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ",
                                               "SV", "UC", "UN", "UR", "UT", "UV"};
  return std::find(std::begin(kLong), std::end(kLong), vr) != std::end(kLong);
}

Result<FileMeta> parse_file_meta(std::string_view head) {
  if (head.size() < 132 || head.substr(128, 4) != "DICM")
    return bad("no DICM prefix after the 128-byte preamble", 128);
  FileMeta meta;
  std::size_t pos = 132;
  for (;;) {
    if (pos + 8 > head.size()) {
      // The meta group may end exactly at the end of the file (a dataset-less object would be
      // refused by the destination, not by us).
      if (pos == head.size()) break;
      if (head.size() >= kMaxMetaBytes) return bad("meta group longer than 64 KiB", pos);
      return bad("truncated element header", pos);
    }
    const std::uint16_t group = u16(head, pos);
    if (group != 0x0002) break;
    const std::uint16_t element = u16(head, pos + 2);
    const char vr0 = head[pos + 4], vr1 = head[pos + 5];
    if (vr0 < 'A' || vr0 > 'Z' || vr1 < 'A' || vr1 > 'Z')
      return bad("meta element without explicit VR", pos);
    std::size_t value_at = 0;
    std::uint64_t length = 0;
    if (long_form_vr(head.substr(pos + 4, 2))) {
      if (pos + 12 > head.size()) return bad("truncated element header", pos);
      length = u32(head, pos + 8);
      value_at = pos + 12;
    } else {
      length = u16(head, pos + 6);
      value_at = pos + 8;
    }
    if (length == 0xFFFFFFFFu) return bad("undefined length in the meta group", pos);
    if (value_at + length > head.size()) {
      if (head.size() >= kMaxMetaBytes) return bad("meta group longer than 64 KiB", pos);
      return bad("value runs past the end of the file", pos);
    }
    const std::string_view value = head.substr(value_at, static_cast<std::size_t>(length));
    switch (element) {
      case 0x0002:
        meta.sop_class_uid = uid_text(value);
        break;
      case 0x0003:
        meta.sop_instance_uid = uid_text(value);
        break;
      case 0x0010:
        meta.transfer_syntax = uid_text(value);
        break;
      default:
        break;
    }
    pos = value_at + static_cast<std::size_t>(length);
  }
  if (meta.transfer_syntax.empty()) return bad("no TransferSyntaxUID (0002,0010)", 132);
  if (meta.sop_class_uid.empty()) return bad("no MediaStorageSOPClassUID (0002,0002)", 132);
  if (meta.sop_instance_uid.empty()) return bad("no MediaStorageSOPInstanceUID (0002,0003)", 132);
  meta.dataset_offset = pos;
  return meta;
}

Result<FileMeta> read_file_meta(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    const int err = errno;
    return make_error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                      "cannot open spool file: " + errno_text(err));
  }
  return read_file_meta(fd.get());
}

Result<FileMeta> read_file_meta(int fd) {
  // Real meta groups are a few hundred bytes: one small read, a second only for a long one.
  std::string head;
  for (const std::size_t want : {std::size_t{8192}, kMaxMetaBytes}) {
    std::size_t got = head.size();
    head.resize(want);
    while (got < head.size()) {
      const ssize_t n = ::pread(fd, head.data() + got, head.size() - got, static_cast<off_t>(got));
      if (n < 0) {
        if (errno == EINTR) continue;
        return make_error(ErrorCode::kIo, "cannot read spool file: " + errno_text(errno));
      }
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
    }
    const bool whole_file = got < head.size();
    head.resize(got);
    auto meta = parse_file_meta(head);
    if (meta || whole_file || want == kMaxMetaBytes) return meta;
  }
  return parse_file_meta(head);  // not reached: the loop returns at kMaxMetaBytes
}

}  // namespace dirgw
