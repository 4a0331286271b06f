// Internals of the pre-scan (prescan.h): the dataset walker. Iterative, one frame per open
// dataset, item or sequence, so nesting costs heap, not stack; checks element order, lengths,
// delimiters and the limits, and takes the top-level UIDs into the result.
#pragma once

#include <cstdint>
#include <functional>

#include "common/crypto.h"
#include "common/result.h"
#include "ingest/prescan/byte_source.h"
#include "ingest/prescan/encoding.h"
#include "ingest/prescan/prescan.h"

namespace dirgw::ingest::prescan_detail {

// What content_key_file() (prescan.h) hashes, filled by the walk when given: `header` takes every
// element but the top-level Pixel Data as its tag, its value's length and its value's digest,
// whatever its VR and length form, with items and non-empty sequences as marks (an empty
// sequence, an empty value and a value of padding alone read alike); group lengths (gggg,0000)
// and trailing padding (FFFC,FFFC) are left out. For a tag `text_tag` names, the value's trailing
// spaces and NULs are padding, not content (a sender that re-encodes trims a file's extra pad).
// `pixels` takes the top-level Pixel Data's value, or its fragments after the basic offset table.
struct ContentDigest {
  Sha256 header, pixels;
  std::function<bool(std::uint32_t tag)> text_tag;
};

// Walks the dataset `r` is positioned at. `top_limit` is where the data ends (the file size, or
// kNoEnd for an inflated stream); `inflated` only changes how offsets are named in reasons.
// Needs out.sop_class_uid, sop_instance_uid and dataset_offset from the meta header.
Result<void> walk_dataset(Reader& r, const PrescanLimits& limits, const TransferSyntax& ts,
                          std::uint64_t top_limit, bool inflated, PrescanResult& out,
                          ContentDigest* digest = nullptr);

}  // namespace dirgw::ingest::prescan_detail
