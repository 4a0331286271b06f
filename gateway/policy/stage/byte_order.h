// Explicit VR Big Endian (retired in 2004) per destination (issue 17, item 3): `big_endian:
// send` forwards such objects as received; `convert` writes a lossless Explicit VR Little Endian
// copy (a derived object, checked value for value against the original's pixel data) and sends
// that; `refuse` keeps them from the destination, which quarantines the study there with a
// reason. Objects in any other syntax are not touched.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "catalog/types.h"
#include "common/result.h"
#include "ingest/spool/spool.h"

namespace dirgw::policy {

inline constexpr const char* kExplicitVrBigEndianUid = "1.2.840.10008.1.2.2";

// The file's transfer syntax, from its meta header only.
Result<std::string> transfer_syntax_of(const std::filesystem::path& file);

// Writes `input` (Explicit VR Big Endian) to `output` in Explicit VR Little Endian with DCMTK,
// then reads the result back and compares its pixel data with the original's value for value
// (16-bit words for OW, bytes otherwise) and its SOP Instance UID: kBadDicom when they differ.
Result<void> convert_to_little_endian(const std::filesystem::path& input,
                                      const std::filesystem::path& output);

// One destination's answer for one instance: nothing to do, a converted copy, or a refusal.
struct ByteOrderCopy {
  std::optional<catalog::DerivedObject> derived;
  std::string refused;  // our words; empty when the instance may go
};
// `mode` is the destination's big_endian ("send", "convert", "refuse"); `input` is what would
// leave for it (the original, or its coerced or de-identified copy).
ByteOrderCopy byte_order_copy(const std::string& mode, const std::string& destination,
                              const std::filesystem::path& input, std::int64_t instance_id,
                              const std::string& sop_instance_uid, const ingest::Spool& spool);

}  // namespace dirgw::policy
