// VR UN elements the dictionary knows (issue 17, item 5): some exporters write every element, the
// SOP Class and Instance UIDs included, with VR UN. dirgw reads those UIDs as UI on the way in; a
// repository may not (Orthanc answers HTTP 400 to a STOW-RS of such an object). Before an object
// leaves, a copy is written whose top-level UN elements of a public tag with one, non-sequence
// dictionary VR carry that VR instead. Only the element headers change: in a little endian
// explicit VR dataset a UN value is the value's own bytes, so the copy holds the same values
// (lossless). The spooled original stays byte-identical. On by default (a destination's
// `un_elements: decode`): a repository that reads UN as its dictionary VR sees no difference, one
// that does not cannot index the object at all (docs/ingest-dicom.md).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "catalog/types.h"
#include "common/result.h"
#include "ingest/spool/spool.h"

namespace dirgw::policy {

// What decode_un_elements did.
struct UnDecoding {
  int decoded = 0;  // elements whose VR was written from the dictionary
  int kept = 0;     // UN elements left as they are (private, unknown, sequence, too long...)
};

// Writes `output` as `input` with the top-level UN elements the dictionary knows decoded (see the
// header comment). Stops decoding at the first element of undefined length (a sequence or
// encapsulated pixel data) and copies the rest as it is: identifying UIDs come before those.
// Refuses syntaxes whose dataset is not explicit VR little endian (implicit VR has no UN; deflate
// and big endian are not rewritten) with kBadDicom. decoded == 0: `output` is not written.
Result<UnDecoding> decode_un_elements(const std::filesystem::path& input,
                                      const std::filesystem::path& output);

// The derived copy for one destination, when `input` (what would leave for it) has UN elements
// to decode; nothing otherwise (or when the copy cannot be made: the original goes as it is).
std::optional<catalog::DerivedObject> un_decoded_copy(const std::string& destination,
                                                      const std::filesystem::path& input,
                                                      std::int64_t instance_id,
                                                      const std::string& sop_instance_uid,
                                                      const ingest::Spool& spool);

}  // namespace dirgw::policy
