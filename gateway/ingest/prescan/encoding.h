// Internals of the pre-scan (prescan.h): the DICOM encoding facts every part of it needs.
// Byte order, value representations, transfer syntaxes, the tags it looks at, and the one way
// it rejects. Not an interface for other modules, except that the folder intake reads a meta
// header and the start of a dataset with find_vr and classify (ingest/folder/raw_dataset.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace dirgw::ingest::prescan_detail {

constexpr std::uint64_t kNoEnd = UINT64_MAX;
constexpr std::uint32_t kUndefinedLength = 0xFFFFFFFFu;
constexpr std::size_t kBufSize = std::size_t{64} * 1024;
constexpr std::size_t kMaxUid = 64;  // PS3.5 6.2: UI is at most 64 bytes
constexpr std::size_t kMaxCs = 16;
constexpr std::size_t kMaxLoBytes = 256;  // LO: 64 characters, up to 4 bytes each

constexpr std::uint32_t kTagItem = 0xFFFEE000u;
constexpr std::uint32_t kTagItemDelim = 0xFFFEE00Du;
constexpr std::uint32_t kTagSeqDelim = 0xFFFEE0DDu;
constexpr std::uint32_t kTagPixelData = 0x7FE00010u;
constexpr std::uint32_t kTagTrailingPadding = 0xFFFCFFFCu;
constexpr std::uint32_t kTagSopClass = 0x00080016u;
constexpr std::uint32_t kTagSopInstance = 0x00080018u;
constexpr std::uint32_t kTagModality = 0x00080060u;
constexpr std::uint32_t kTagStudyUid = 0x0020000Du;
constexpr std::uint32_t kTagSeriesUid = 0x0020000Eu;
constexpr std::uint32_t kTagPatientId = 0x00100020u;
constexpr std::uint32_t kTagIssuerOfPatientId = 0x00100021u;
constexpr std::uint32_t kTagDirectoryRecordType = 0x00041430u;
constexpr std::uint32_t kTagReferencedFileId = 0x00041500u;

// Every rejection: ErrorCode::kPrescanRejected with a detail naming the reason and the offset.
Error reject(std::string detail);
std::string tag_text(std::uint32_t tag);  // "(GGGG,EEEE)"

inline std::uint16_t get16(const unsigned char* p, bool big) {
  return big ? static_cast<std::uint16_t>(p[0] << 8 | p[1])
             : static_cast<std::uint16_t>(p[1] << 8 | p[0]);
}

inline std::uint32_t get32(const unsigned char* p, bool big) {
  if (big) {
    return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 |
           std::uint32_t{p[3]};
  }
  return std::uint32_t{p[3]} << 24 | std::uint32_t{p[2]} << 16 | std::uint32_t{p[1]} << 8 |
         std::uint32_t{p[0]};
}

// Trailing spaces and NULs (value padding) removed.

// ---------------------------------------------------------------------------------------------
// Value representations.

enum class VrClass : std::uint8_t { kText, kBinary, kSequence, kUnknown };

struct VrInfo {
  char name[3];
  bool long_form;  // 2 reserved bytes + 32-bit length in explicit VR
  VrClass cls;
};

// The VR whose two letters `p` points at; nullptr when they name none.
const VrInfo* find_vr(const unsigned char* p);

inline bool vr_is(const VrInfo* vr, const char* name) {
  return vr != nullptr && vr->name[0] == name[0] && vr->name[1] == name[1];
}

// Public attributes whose values are bulk binary data. In implicit VR there is no VR to tell a
// string from bulk data; these tags (and private ones) are exempt from max_text_value and are never
// sniffed for a nested sequence.
bool is_bulk_tag(std::uint32_t tag);

// ---------------------------------------------------------------------------------------------
// Transfer syntaxes.

enum class Encoding : std::uint8_t { kImplicitLE, kExplicitLE, kExplicitBE };

struct TransferSyntax {
  Encoding encoding;
  bool deflated;
  bool encapsulated;
};

// nullopt: a transfer syntax the pre-scan does not know (and so refuses).
std::optional<TransferSyntax> classify(std::string_view uid);

}  // namespace dirgw::ingest::prescan_detail
