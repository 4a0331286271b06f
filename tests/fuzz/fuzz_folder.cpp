// libFuzzer target: what the folder input adds on top of its libraries (issue 12). The first byte
// picks the part, the rest is the untrusted file:
//   0  a zip read with libarchive under our rules: every entry handed on has an acceptable name,
//      the bytes handed on stay within the size and ratio budget, refusals are our own words;
//   1  a DICOMDIR: pre-scanned like any file (object UIDs not required), then walked with
//      DCMTK's DcmDicomDir: every Referenced File ID that comes out is plain relative names;
//   2  a dataset without meta header: the UIDs we read and the meta header we put in front of
//      it, then the pre-scan: if it passes, it agrees with the UIDs we read.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "ingest/folder/dicomdir.h"
#include "ingest/folder/raw_dataset.h"
#include "ingest/folder/safe_open.h"
#include "ingest/folder/zip_reader.h"
#include "ingest/prescan/prescan.h"

namespace {

using namespace dirgw::ingest::folder;

class Counting final : public ZipVisitor {
 public:
  dirgw::Result<void> begin(std::size_t, std::string_view name) override {
    FUZZ_CHECK(!entry_name_problem(name).has_value(), "an entry with a bad name was handed on");
    FUZZ_CHECK(!is_dicomdir_name(name), "a DICOMDIR entry was handed on as an object");
    return {};
  }
  dirgw::Result<void> data(const char*, std::size_t n) override {
    bytes += n;
    return {};
  }
  dirgw::Result<void> end() override { return {}; }
  std::uint64_t bytes = 0;
};

void zip(std::string_view in) {
  ZipLimits l;
  l.max_entries = 64;
  l.max_total = 1 << 20;
  l.max_entry = 1 << 19;
  l.ratio_slack = 1 << 16;
  Counting v;
  const ZipWalk w = walk_zip_memory(in.data(), in.size(), l, v);
  FUZZ_CHECK(v.bytes <= l.max_total && v.bytes <= in.size() * l.max_ratio + l.ratio_slack,
             "more bytes inflated than the budget");
  FUZZ_CHECK(w.entries <= l.max_entries + 1, "more entries read than the limit");
  if (w.refusal)
    FUZZ_CHECK(dirgw::fuzz::printable_ascii(w.refusal->detail) && !w.refusal->reason.empty(),
               "a refusal that is not our own words");
}

void dicomdir(std::string_view in) {
  dirgw::ingest::PrescanLimits limits;
  limits.max_object_size = 1 << 20;
  limits.require_object_uids = false;
  if (!dirgw::ingest::prescan_bytes(in, limits)) return;
  static const std::filesystem::path path = std::filesystem::temp_directory_path() /
                                            ("dirgw-fuzz-dicomdir-" + std::to_string(::getpid()));
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(in.data(), static_cast<std::streamsize>(in.size()));
  auto refs = dicomdir_references(path);
  if (refs) {
    for (const auto& id : *refs) {
      FUZZ_CHECK(!id.empty() && id.size() <= 8, "a file ID with no or too many components");
      for (const auto& c : id) FUZZ_CHECK(plain_component(c), "a file ID component not plain");
    }
  } else {
    FUZZ_CHECK(dirgw::fuzz::printable_ascii(refs.error().detail), "not our own words");
  }
}

void raw(std::string_view in) {
  auto uids = raw_dataset_uids(in);
  if (!uids) return;
  FUZZ_CHECK(!uids->sop_class.empty() && !uids->sop_instance.empty(), "empty UIDs accepted");
  const std::string object = part10_meta(*uids, transfer_syntax_of(uids->syntax)) + std::string(in);
  auto scan = dirgw::ingest::prescan_bytes(object, dirgw::ingest::PrescanLimits{});
  if (scan) {
    FUZZ_CHECK(scan->sop_instance_uid == uids->sop_instance, "meta and our UIDs differ");
    FUZZ_CHECK(scan->dataset_sop_class_uid == uids->sop_class, "dataset and our UIDs differ");
  }
}

// The input after a preamble and "DICM": a meta header to write again, maybe.
void repair(std::string_view in) {
  const std::string file = std::string(128, '\0') + "DICM" + std::string(in);
  auto r = meta_repair(file);
  if (!r) return;
  FUZZ_CHECK(r->dataset_offset >= 132 && r->dataset_offset <= file.size(), "offset outside");
  FUZZ_CHECK(!r->why.empty() && dirgw::fuzz::printable_ascii(r->why), "not our own words");
  const std::string object =
      part10_meta(r->uids, r->transfer_syntax) + file.substr(r->dataset_offset);
  FUZZ_CHECK(!meta_repair(object).has_value(), "a written meta header needs repair again");
  auto scan = dirgw::ingest::prescan_bytes(object, dirgw::ingest::PrescanLimits{});
  if (scan) {
    FUZZ_CHECK(scan->sop_instance_uid == r->uids.sop_instance, "meta and dataset UIDs differ");
    FUZZ_CHECK(scan->dataset_sop_class_uid == r->uids.sop_class, "dataset and meta differ");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      zip(in);
      break;
    case 1:
      dicomdir(in);
      break;
    case 2:
      raw(in);
      break;
    default:
      repair(in);
      break;
  }
  return 0;
}
