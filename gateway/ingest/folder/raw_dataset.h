// Datasets written without preamble and meta header (implicit or explicit VR little endian, as
// old consoles and some exporters write them), and Part-10 files whose meta header is
// incomplete or contradicts its dataset (no group length, no version, the media storage UIDs
// missing or left over from before an edit of the dataset). DCMTK reads such files, and the
// same dataset arrives over C-STORE without complaint, since the C-STORE receiver writes the
// meta header itself. We read only what the meta header must repeat, from the start of the
// dataset, and put a conformant meta header in front; the whole object then passes the same
// pre-scan as any other. Everything else about the dataset is the pre-scan's to judge.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ingest/prescan/part10.h"

namespace dirgw::ingest::folder {

// kExplicitBe only for reading a Part-10 file's dataset (meta_repair); a dataset without meta
// header is never taken for big endian.
enum class RawSyntax { kImplicitLe, kExplicitLe, kExplicitBe };

struct RawUids {
  std::string sop_class, sop_instance;
  RawSyntax syntax = RawSyntax::kImplicitLe;
};

// The SOP Class and Instance UIDs (0008,0016) (0008,0018) of a dataset in `syntax` starting at
// head[0], or nullopt when head does not look like one (the elements must be in ascending
// order, start in group 0008 or later, and come before any undefined length).
std::optional<RawUids> dataset_uids(std::string_view head, RawSyntax syntax);

// The same for a dataset without meta header: implicit VR little endian is tried first, then
// explicit VR little endian.
std::optional<RawUids> raw_dataset_uids(std::string_view head);

// A file that starts with its meta header's group 0002 (explicit VR little endian) but without
// the 128-byte preamble and "DICM" before it, as some older writers produce (DCMTK reads it).
bool meta_without_preamble(std::string_view head);

// The transfer syntax UID of a dataset's encoding.
std::string_view transfer_syntax_of(RawSyntax syntax);

// A preamble, "DICM" and a meta header for these UIDs (ingest/prescan/part10.h).
inline std::string part10_meta(const RawUids& uids, std::string_view transfer_syntax) {
  return ingest::part10_meta(uids.sop_class, uids.sop_instance, transfer_syntax);
}

// What a Part-10 file's meta header says, read leniently: explicit VR little endian elements of
// group 0002 from offset 132 until the first element of another group.
struct MetaHeader {
  std::optional<std::uint32_t> group_length;
  bool version = false;
  std::optional<std::string> sop_class, sop_instance, ts;
  std::size_t end = 0;  // where the first element after group 0002 starts
};

// The meta header of a Part-10 file's head (from offset 0); nullopt when there is none to read
// (no DICM, not explicit VR little endian, out of order, beyond the head, or a group length that
// disagrees with its elements: which one is right is not ours to guess).
std::optional<MetaHeader> read_meta_header(std::string_view head);

// A Part-10 file's meta header that must be written again: what the dataset says instead.
struct MetaRepair {
  std::uint64_t dataset_offset = 0;  // where the dataset starts in the file
  std::string transfer_syntax;       // the meta header's, or read from the dataset
  RawUids uids;                      // from the dataset
  std::string why;                   // our words, e.g. "no group length (0002,0000)"
};

// For the head of a Part-10 file (from offset 0, at least the meta header and the dataset up to
// (0008,0018)): nullopt when the meta header needs no repair, or when it cannot be repaired
// (not explicit VR little endian, a group length that disagrees with its elements, a deflated
// dataset, no UIDs in the dataset); the pre-scan then judges the file as it is.
std::optional<MetaRepair> meta_repair(std::string_view head);
// The same with the meta header already read from `head`.
std::optional<MetaRepair> meta_repair(std::string_view head, const MetaHeader& meta);

}  // namespace dirgw::ingest::folder
