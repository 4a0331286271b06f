// Internals of the pre-scan (prescan.h): the file meta information (PS3.10 7.1), always
// explicit VR little endian, checked and its UIDs taken into the result.
#pragma once

#include <cstdint>

#include "common/result.h"
#include "ingest/prescan/byte_source.h"
#include "ingest/prescan/prescan.h"

namespace dirgw::ingest::prescan_detail {

struct MetaInfo {
  std::uint64_t end = 0;  // offset of the first dataset byte
};

// Fills out.transfer_syntax, sop_class_uid, sop_instance_uid, dataset_offset and
// preamble_nonzero.
Result<MetaInfo> scan_meta(RandomAccess& ra, PrescanResult& out);

}  // namespace dirgw::ingest::prescan_detail
