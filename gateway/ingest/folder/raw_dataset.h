// Datasets written without preamble and meta header (implicit VR little endian, as old consoles
// write them). We read only the two UIDs the meta header must repeat, from the start of the
// file, and put a Part-10 meta header in front; the whole object then passes the same pre-scan
// as any other. Everything else about the dataset is the pre-scan's to judge.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace dirgw::ingest::folder {

struct RawUids {
  std::string sop_class, sop_instance;
};

// The SOP Class and Instance UIDs (0008,0016) (0008,0018) of an implicit VR little endian
// dataset starting at head[0], or nullopt when head does not look like one (the elements must
// be in ascending order, start in group 0008 or later, and come before any undefined length).
std::optional<RawUids> raw_dataset_uids(std::string_view head);

// A preamble, "DICM" and a meta header declaring implicit VR little endian for these UIDs.
std::string implicit_le_meta(const RawUids& uids);

}  // namespace dirgw::ingest::folder
