// The Part-10 file meta information (PS3.10 7.1) of a spool file: what the C-STORE needs to know
// before it sends (SOP class, SOP instance, transfer syntax) and where the dataset starts, so
// that the dataset can go out byte for byte; and what the policy stage's byte-level steps (byte
// order, UN decoding) ask first. Only the meta group is read, never the dataset.
//
// Why our own walker: DCMTK reads the meta values but does not say at which byte the dataset
// begins, and ingest's prescan knows it only after a pass over the whole file; and a DCMTK load
// of the meta group alone costs a file stream and a dictionary lookup per element, for each
// instance, on the policy stage's path.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "common/result.h"

namespace dirgw {

struct FileMeta {
  std::string sop_class_uid;         // (0002,0002), trailing NUL/space trimmed
  std::string sop_instance_uid;      // (0002,0003)
  std::string transfer_syntax;       // (0002,0010)
  std::uint64_t dataset_offset = 0;  // first byte after the meta group
};

// A meta group longer than this is refused (real ones are a few hundred bytes).
inline constexpr std::size_t kMaxMetaBytes = 64 * 1024;

// `head` is the start of the file (at least up to the end of the meta group, or the whole file
// when shorter). Errors are ErrorCode::kBadDicom with the offset; never a value from the file.
Result<FileMeta> parse_file_meta(std::string_view head);

// Whether an element of explicit VR `vr` has 2 reserved bytes and a 32-bit length (PS3.5
// 7.1.2): OB, OD, OF, OL, OV, OW, SQ, SV, UC, UN, UR, UT, UV.
bool long_form_vr(std::string_view vr);

// Reads the start of the file (8 KiB, then up to kMaxMetaBytes when the meta group is longer)
// and parses it.
Result<FileMeta> read_file_meta(const std::filesystem::path& path);
// The same from a file already open (read with pread: the descriptor's offset is unchanged).
Result<FileMeta> read_file_meta(int fd);

}  // namespace dirgw
