// A Part-10 envelope for a data set that arrived without one: a zero preamble, "DICM" and a meta
// header (group length, version, the media storage SOP class and instance UIDs, the transfer
// syntax, dirgw's implementation class UID). The folder puts it in front of datasets written
// without meta header; prescan_dataset puts it in front of data sets received over DIMSE.
#pragma once

#include <string>
#include <string_view>

namespace dirgw::ingest {

std::string part10_meta(std::string_view sop_class, std::string_view sop_instance,
                        std::string_view transfer_syntax);

}  // namespace dirgw::ingest
