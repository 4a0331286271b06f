// What an object holds apart from its bytes (prescan.h, content_key_file), with DCMTK's data
// dictionary saying which public tags hold padded text: the key by which the catalog tells the
// same SOP instance received again in other bytes from a new version of it
// (catalog::NewInstance::ContentCheck; docs/ingest-dicom.md, "The same instance in other bytes").
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "common/result.h"
#include "ingest/prescan/prescan.h"

namespace dirgw::ingest {

// True for a public tag whose dictionary VR is a character string (AE AS CS DA DS DT IS LO LT PN
// SH ST TM UC UI UR UT): its trailing spaces and NULs are padding. Private and unknown tags are
// compared byte for byte. Thread-safe.
bool padded_text_tag(std::uint32_t tag);

// content_key_file() with padded_text_tag().
Result<std::string> object_content_key(const std::filesystem::path& path,
                                       const PrescanLimits& limits);

}  // namespace dirgw::ingest
