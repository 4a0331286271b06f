// Structural pre-scan of an untrusted DICOM Part-10 object, run before anything hands the bytes
// to DCMTK. It walks the element structure (meta header, dataset, sequences, items, encapsulated
// fragments) without building a dataset, streaming through the file with a fixed-size buffer and
// skipping values, so memory stays bounded whatever the file size. Deflated datasets are inflated
// as a stream and counted against a limit. The walker is iterative: nesting depth costs heap, not
// stack, and is capped by PrescanLimits::max_depth.
//
// Every rejection is ErrorCode::kPrescanRejected with a detail that names the reason and the byte
// offset, never a value taken from the data. See docs/prescan.md for the rules and the reasons.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace dirgw::ingest {

struct PrescanLimits {
  int max_depth = 32;                          // sequence nesting (top-level SQ = depth 1)
  std::uint64_t max_items = 1000000;           // items of all sequences + pixel fragments
  std::uint64_t max_elements = 2000000;        // data elements at all levels (DCMTK: ~150 B each)
  std::uint64_t max_object_size = 2ull << 30;  // file size and any single value length
  std::uint64_t max_inflated_size = 512ull << 20;  // inflated dataset of a deflated TS
  // One character-string value (AE AS CS DA DS DT IS LO LT PN SH ST TM UC UI UR UT). Binary VRs
  // (OB OD OF OL OV OW UN, and the numeric FL FD SL SS SV UL US UV AT) are exempt; in implicit VR
  // the rule is applied by tag (see docs/prescan.md).
  std::uint32_t max_text_value = 1u << 20;
  // false: the dataset need not carry SOP Class/Instance, Study and Series UIDs (a DICOMDIR).
  bool require_object_uids = true;
  // false: the dataset's SOP Class/Instance UIDs are returned but not compared with the meta
  // header's. The C-STORE receiver compares them with the request itself (the spool file's meta
  // header is written from the request), to answer 0xA900 rather than 0xC000.
  bool compare_meta_uids = true;
};

struct PrescanResult {          // what the scan learned, for the catalog
  std::string transfer_syntax;  // from meta (0002,0010), trailing spaces/NULs trimmed
  std::string sop_class_uid, sop_instance_uid;  // from the meta header (0002,0002/0003)
  // From the dataset top level (0020,000D) (0020,000E) (0008,0018) (0008,0016) (0008,0060),
  // trailing spaces/NULs trimmed.
  std::string study_uid, series_uid, dataset_sop_instance_uid, dataset_sop_class_uid, modality;
  // (0010,0020) and (0010,0021), for the catalog's identity check (same SOP Instance UID, other
  // patient). Patient data: never logged, never in a reason.
  std::string patient_id, issuer_of_patient_id;
  std::uint64_t dataset_offset = 0;  // byte offset where the dataset starts (after meta)
  bool preamble_nonzero = false;     // CVE-2019-11687 polyglot hint
  // Non-fatal findings (odd value lengths, ...), each with its offset; at most kMaxWarnings kept.
  std::vector<std::string> warnings;
  static constexpr std::size_t kMaxWarnings = 16;
  // For validation (issue 17, item 10), as numbers: DCMTK pads odd values when it reads them, so
  // only the pre-scan sees them. Tags as (group << 16) | element.
  std::uint64_t odd_lengths = 0;  // defined-length values of odd length, at any level
  std::uint32_t first_odd_length_tag = 0;
  std::uint64_t largest_private_value = 0;  // longest defined-length private value
  std::uint32_t largest_private_tag = 0;
};

Result<PrescanResult> prescan_file(const std::filesystem::path& path, const PrescanLimits& limits);
// Convenience for tests/fuzzing: same checks on bytes in memory.
Result<PrescanResult> prescan_bytes(std::string_view bytes, const PrescanLimits& limits);

// What an object holds, for telling the same instance received again in other bytes (another
// door's meta header, implicit instead of explicit VR, another transfer syntax) from a new
// version of it: one line with the transfer syntax, whether its pixels are encapsulated, a digest
// of every element but the pixels (tag, length and value bytes, whatever the VR and length form)
// and a digest of the pixel bytes (walker.h, ContentDigest). `text_tag` names the tags whose
// value is padded text (a dictionary's; ingest/content_key.h gives DCMTK's). An error when the
// file does not pre-scan. Reads the whole file: called only for an SOP Instance UID held already.
Result<std::string> content_key_file(const std::filesystem::path& path, const PrescanLimits& limits,
                                     std::function<bool(std::uint32_t tag)> text_tag = {});
// Two content keys of one instance: the same elements and the same pixel bytes (the fragments of
// compressed pixels, however cut). Pixels in another transfer syntax differ: comparing decoded
// pixels would take a codec inside the catalog's commit. Malformed keys are never the same.
bool same_content(std::string_view a, std::string_view b);

// A data set without preamble and meta header, in `transfer_syntax` (one received over DIMSE that
// DCMTK is to parse in memory: a storage commitment report, a C-FIND identifier). The same checks,
// with a meta header of our own in front; it need not carry the object UIDs. The offsets in a
// reason count the 132 + meta bytes in front.
Result<PrescanResult> prescan_dataset(std::string_view dataset, std::string_view transfer_syntax,
                                      PrescanLimits limits);

}  // namespace dirgw::ingest
