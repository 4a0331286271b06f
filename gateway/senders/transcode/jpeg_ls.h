// Lossless transcoding of one spooled object to JPEG-LS Lossless (1.2.840.10008.1.2.4.80) with
// DCMTK's dcmjpls, in process, before it is sent (docs/transcoding.md). The stored object is never
// changed: the copy is a temporary file in the spool's tmp area, and it is only offered when its
// decoded pixel data is identical, byte for byte, to the original's. Anything the codec cannot
// take losslessly, or that is not worth the memory, goes as stored.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace dirgw::senders::transcode {

inline constexpr std::string_view kJpegLsLossless = "1.2.840.10008.1.2.4.80";

struct Options {
  std::filesystem::path tmp_dir;  // where copies are written (the spool's tmp/)
  // Objects whose Pixel Data is longer go as they are: the original, the copy and the decoded
  // copy are in memory together while one object is transcoded.
  std::uint64_t max_pixel_bytes = std::uint64_t{64} << 20;
  // STOW-RS: name the copy's syntax in its part ("application/dicom; transfer-syntax=...", PS3.18
  // 8.7.3.5.2). Off by default: the Part-10 meta header names it anyway, and Orthanc's DICOMweb
  // plugin (1.7) refuses any part whose Content-Type is not exactly "application/dicom".
  bool syntax_parameter = false;
};

// What decides whether an object may be transcoded, read from its data set.
struct PixelFacts {
  std::string transfer_syntax;    // as stored
  bool has_pixel_data = false;    // (7FE0,0010) at the top level
  bool float_pixel_data = false;  // (7FE0,0008) or (7FE0,0009)
  std::uint64_t pixel_bytes = 0;  // Pixel Data's value length
  long rows = 0, columns = 0, samples_per_pixel = 0, frames = 1;
  long bits_allocated = 0, bits_stored = 0, high_bit = 0, pixel_representation = 0;
  std::string photometric;
};

// Why the object goes as stored (nullopt: try the codec). Pure; no patient data in the text.
std::optional<std::string> skip_reason(const PixelFacts& facts, const Options& options);

// A copy written and verified. The file is the caller's to remove (TempCopy does).
struct Transcoded {
  std::filesystem::path path;
  std::uint64_t size = 0;
};

struct Attempt {
  enum class Kind {
    kTranscoded,    // `copy` holds the verified copy
    kSkipped,       // not eligible, or the codec refused it: the original goes
    kVerifyFailed,  // the copy decoded to other pixels (or description): removed, original goes
    kError,         // I/O or memory: the original goes
    kCodecFailed,   // the codec process crashed or was stopped on it (codec_worker.h)
  };
  Kind kind = Kind::kSkipped;
  std::string reason;  // for kSkipped / kVerifyFailed / kError; no patient data
  std::optional<Transcoded> copy;
};

// Reads `original` (a Part-10 file), and if it qualifies writes a JPEG-LS Lossless copy into
// options.tmp_dir under a random name, decodes that copy again and compares. Thread-safe (the
// DCMTK codecs are registered once, on first use).
Attempt transcode_jpeg_ls(const std::filesystem::path& original, const Options& options);
// The same, writing the copy at `copy` (a name the caller chose in the spool's tmp/).
Attempt transcode_jpeg_ls(const std::filesystem::path& original, const Options& options,
                          const std::filesystem::path& copy);

// The check transcode_jpeg_ls() makes before it offers a copy: `copy` decodes, names the same
// instance, describes its pixels alike and its decoded Pixel Data equals `original`'s byte for
// byte. nullopt when it does; else why not (no patient data).
std::optional<std::string> verify_copy(const std::filesystem::path& copy,
                                       const std::filesystem::path& original);

// Test hook: decodes a JPEG-LS copy and returns its native pixel bytes (nullopt on failure).
std::optional<std::string> decoded_pixels_for_test(const std::filesystem::path& file);

}  // namespace dirgw::senders::transcode
