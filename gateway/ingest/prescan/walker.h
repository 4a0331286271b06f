// Internals of the pre-scan (prescan.h): the dataset walker. Iterative, one frame per open
// dataset, item or sequence, so nesting costs heap, not stack; checks element order, lengths,
// delimiters and the limits, and takes the top-level UIDs into the result.
#pragma once

#include <cstdint>

#include "common/result.h"
#include "ingest/prescan/byte_source.h"
#include "ingest/prescan/encoding.h"
#include "ingest/prescan/prescan.h"

namespace dirgw::ingest::prescan_detail {

// Walks the dataset `r` is positioned at. `top_limit` is where the data ends (the file size, or
// kNoEnd for an inflated stream); `inflated` only changes how offsets are named in reasons.
// Needs out.sop_class_uid, sop_instance_uid and dataset_offset from the meta header.
Result<void> walk_dataset(Reader& r, const PrescanLimits& limits, const TransferSyntax& ts,
                          std::uint64_t top_limit, bool inflated, PrescanResult& out);

}  // namespace dirgw::ingest::prescan_detail
