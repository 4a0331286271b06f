// libFuzzer target: the structural pre-scan (gateway/ingest/prescan) on arbitrary bytes.
// Besides crashes, hangs and sanitizer reports, it checks what the pre-scan promises:
//   - a rejection is kPrescanRejected with a detail in our own words (printable ASCII);
//   - a pass reports UIDs of at most 64 bytes and a modality of at most 16, a dataset offset
//     inside the input, and at most kMaxWarnings warnings;
//   - prescan_file (pread through a 64 KiB buffer) and prescan_bytes agree on every input;
//   - tighter limits never turn a rejection into a pass;
//   - the content key (the same walk with the digest taps) exists exactly when the pre-scan
//     passes, and is the same content as itself.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "ingest/prescan/prescan.h"

using dirgw::ErrorCode;
using dirgw::fuzz::printable_ascii;
using dirgw::ingest::PrescanLimits;
using dirgw::ingest::PrescanResult;

namespace {

void check_result(const dirgw::Result<PrescanResult>& r, std::size_t size) {
  if (!r) {
    FUZZ_CHECK(r.error().code == ErrorCode::kPrescanRejected, "in-memory scan failed with I/O");
    FUZZ_CHECK(!r.error().detail.empty(), "rejection without a reason");
    FUZZ_CHECK(printable_ascii(r.error().detail), "rejection detail carries input bytes");
    return;
  }
  const PrescanResult& s = *r;
  for (const std::string* uid :
       {&s.sop_class_uid, &s.sop_instance_uid, &s.study_uid, &s.series_uid,
        &s.dataset_sop_instance_uid, &s.dataset_sop_class_uid, &s.transfer_syntax}) {
    FUZZ_CHECK(uid->size() <= 64, "a UID longer than 64 bytes passed");
  }
  FUZZ_CHECK(!s.study_uid.empty() && !s.series_uid.empty() && !s.dataset_sop_instance_uid.empty(),
             "a pass without the identifying UIDs");
  FUZZ_CHECK(s.dataset_sop_instance_uid == s.sop_instance_uid, "meta and dataset SOP UIDs differ");
  FUZZ_CHECK(s.modality.size() <= 16, "a modality longer than 16 bytes passed");
  FUZZ_CHECK(s.dataset_offset >= 132 && s.dataset_offset <= size, "dataset offset outside input");
  FUZZ_CHECK(s.warnings.size() <= PrescanResult::kMaxWarnings, "too many warnings kept");
  for (const auto& w : s.warnings) FUZZ_CHECK(printable_ascii(w), "warning carries input bytes");
}

std::string memfd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }
int memfd = -1;

// The same bytes through prescan_file, via an anonymous in-memory file.
dirgw::Result<PrescanResult> scan_as_file(std::string_view bytes, const PrescanLimits& limits) {
  int& fd = memfd;
  if (fd < 0) fd = memfd_create("dirgw-fuzz-prescan", MFD_CLOEXEC);
  FUZZ_CHECK(fd >= 0, "memfd_create");
  FUZZ_CHECK(ftruncate(fd, 0) == 0, "ftruncate");
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
    FUZZ_CHECK(n > 0, "pwrite");
    done += static_cast<std::size_t>(n);
  }
  return dirgw::ingest::prescan_file(memfd_path(fd), limits);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const PrescanLimits defaults;
  auto r = dirgw::ingest::prescan_bytes(bytes, defaults);
  check_result(r, size);

  auto f = scan_as_file(bytes, defaults);
  FUZZ_CHECK(f.ok() == r.ok(), "prescan_file and prescan_bytes disagree");
  if (!r) {
    FUZZ_CHECK(f.error().detail == r.error().detail,
               "prescan_file and prescan_bytes reasons differ");
  } else {
    FUZZ_CHECK(f->study_uid == r->study_uid && f->dataset_offset == r->dataset_offset,
               "prescan_file and prescan_bytes results differ");
  }

  // The content key: the same walk, every value read through the digest taps (text padding
  // trimmed for even groups here, standing in for the dictionary).
  auto key = dirgw::ingest::content_key_file(
      memfd_path(memfd), defaults, [](std::uint32_t tag) { return (tag >> 16) % 2 == 0; });
  FUZZ_CHECK(key.ok() == r.ok(), "content key and pre-scan disagree");
  if (key) FUZZ_CHECK(dirgw::ingest::same_content(*key, *key), "a content key differs from itself");

  // Small limits reach every limit path with small inputs; they may only refuse more.
  PrescanLimits tight;
  tight.max_depth = 2;
  tight.max_items = 8;
  tight.max_elements = 64;
  tight.max_object_size = 4096;
  tight.max_inflated_size = 8192;
  tight.max_text_value = 64;
  auto t = dirgw::ingest::prescan_bytes(bytes, tight);
  check_result(t, size);
  FUZZ_CHECK(!t.ok() || r.ok(), "tighter limits accepted what the defaults refused");
  return 0;
}
