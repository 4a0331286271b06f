// Decompressing an encapsulated object into a native transfer syntax, for a C-STORE destination
// that refuses its compressed syntax (dimse/plan.h, decodable_syntax): JPEG, JPEG-LS and RLE by
// DCMTK's decoders, JPEG 2000 by OpenJPEG (jpeg2000.h). dirgwd runs this in its codec process
// (codec_worker.h), never in the daemon itself: an image that crashes or hangs a decoder costs
// that object, not the gateway.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "senders/transcode/jpeg_ls.h"

class DcmDataset;

namespace dirgw::senders::transcode {

// Objects whose decompressed pixel data would be longer are not decompressed (permanent).
inline constexpr std::uint64_t kMaxDecompressedBytes = std::uint64_t{512} << 20;

// Decodes `ds` in memory into `target_syntax` (a native syntax UID); why not, when not (no
// patient data in the text).
std::optional<std::string> decompress_dataset(DcmDataset& ds, const std::string& target_syntax);

// Reads `original` (a Part-10 file), decompresses it into `target_syntax` and writes the result
// at `copy` (a name the caller chose in the spool's tmp/): kTranscoded with the copy (the
// caller's to remove), kSkipped with the reason it cannot be decompressed, kError when the file
// cannot be read or written.
Attempt decompress_file(const std::filesystem::path& original, const std::string& target_syntax,
                        const std::filesystem::path& copy);

}  // namespace dirgw::senders::transcode
