#include "ingest/prescan/meta.h"

#include <algorithm>
#include <optional>
#include <string>

#include "common/text.h"

namespace dirgw::ingest::prescan_detail {

namespace {

constexpr std::uint64_t kPreambleAndPrefix = 132;

// What the meta elements say, before it is checked.
struct MetaValues {
  bool have_version = false;
  std::optional<std::string> ts, sop_class, sop_instance;
};

// The error for a read that failed: the source's own, or the end of the file.
Error short_read(const Reader& r, std::string detail) {
  if (r.error()) return *r.error();
  return reject(std::move(detail));
}

// Preamble, DICM prefix and the group length (0002,0000); returns where the meta group ends.
Result<std::uint64_t> scan_meta_start(Reader& r, std::uint64_t size, PrescanResult& out) {
  unsigned char head[kPreambleAndPrefix];
  if (!r.read(head, sizeof head)) {
    return short_read(r, "file ends before offset 132, inside the preamble");
  }
  out.preamble_nonzero = std::any_of(head, head + 128, [](unsigned char b) { return b != 0; });
  if (std::memcmp(head + 128, "DICM", 4) != 0) {
    return reject("no DICM prefix at offset 128 (not a DICOM Part-10 file)");
  }

  unsigned char h[8];
  if (!r.read(h, 8)) {
    return short_read(r, "file ends inside the file meta information at offset 132");
  }
  const std::uint32_t first_tag = std::uint32_t{get16(h, false)} << 16 | get16(h + 2, false);
  if (first_tag >> 16 != 0x0002) return reject("file meta information missing at offset 132");
  if (first_tag != 0x00020000u) {
    return reject("file meta information group length (0002,0000) missing at offset 132");
  }
  if (find_vr(h + 4) == nullptr) {
    return reject("file meta information is not explicit VR little endian at offset 132");
  }
  if (!vr_is(find_vr(h + 4), "UL") || get16(h + 6, false) != 4) {
    return reject(
        "file meta information group length (0002,0000) is not a 4-byte UL at offset 132");
  }
  unsigned char glen[4];
  if (!r.read(glen, 4)) {
    return short_read(r, "file ends inside the file meta information at offset 140");
  }
  const std::uint64_t meta_end = r.pos() + get32(glen, false);
  if (meta_end > size) {
    return reject(
        "file meta information group length points beyond the end of the file at offset 140");
  }
  return meta_end;
}

// One meta element after the group length; the UIDs we keep are read into `v`.
Result<void> scan_meta_element(Reader& r, std::uint64_t meta_end, std::uint32_t& last_tag,
                               MetaValues& v) {
  unsigned char h[12];
  const std::uint64_t p = r.pos();
  const std::string at = " at offset " + std::to_string(p);
  if (meta_end - p < 8) {
    return reject("file meta information group length does not match its elements" + at);
  }
  if (!r.read(h, 8)) return short_read(r, "file ends inside the file meta information" + at);
  const std::uint32_t tag = std::uint32_t{get16(h, false)} << 16 | get16(h + 2, false);
  if (tag >> 16 != 0x0002) {
    return reject("file meta information group length is longer than the meta elements" + at);
  }
  if (tag <= last_tag) {
    return reject("file meta information elements repeated or out of order" + at);
  }
  last_tag = tag;
  const VrInfo* vr = find_vr(h + 4);
  if (vr == nullptr) return reject("file meta information is not explicit VR little endian" + at);
  std::uint64_t len = get16(h + 6, false);
  if (vr->long_form) {
    if (meta_end - p < 12) {
      return reject("file meta information group length does not match its elements" + at);
    }
    if (!r.read(h + 8, 4)) return short_read(r, "file ends inside the file meta information" + at);
    len = get32(h + 8, false);
    if (len == kUndefinedLength) {
      return reject("undefined length in the file meta information" + at);
    }
  }
  if (len > meta_end - r.pos()) {
    return reject("file meta information element " + tag_text(tag) +
                  " crosses the end of the meta group" + at);
  }
  std::optional<std::string>* slot = nullptr;
  if (tag == 0x00020001u) v.have_version = true;
  if (tag == 0x00020002u) slot = &v.sop_class;
  if (tag == 0x00020003u) slot = &v.sop_instance;
  if (tag == 0x00020010u) slot = &v.ts;
  if (slot == nullptr) {
    if (!r.skip(len)) return short_read(r, "file ends inside the file meta information" + at);
    return {};
  }
  if (len > kMaxUid) return reject(tag_text(tag) + " value longer than 64 bytes" + at);
  std::string value(len, '\0');
  if (!r.read(value.data(), len)) {
    return short_read(r, "file ends inside the file meta information" + at);
  }
  *slot = std::string(trim_dicom_trailing(value));
  return {};
}

}  // namespace

Result<MetaInfo> scan_meta(RandomAccess& ra, PrescanResult& out) {
  const std::uint64_t size = ra.size();
  if (size == 0) return reject("empty file (0 bytes)");
  if (size < kPreambleAndPrefix) {
    return reject("file ends at offset " + std::to_string(size) +
                  ", before the 128-byte preamble and DICM prefix");
  }
  RangeSource src(ra, 0);
  Reader r(src, 0);
  auto meta_end = scan_meta_start(r, size, out);
  if (!meta_end) return meta_end.error();

  MetaValues v;
  std::uint32_t last_tag = 0x00020000u;
  while (r.pos() < *meta_end) {
    if (auto e = scan_meta_element(r, *meta_end, last_tag, v); !e) return e.error();
  }

  if (!v.have_version) {
    return reject("file meta information version (0002,0001) missing");
  }
  if (!v.sop_class || v.sop_class->empty()) {
    return reject("media storage SOP class UID (0002,0002) missing or empty in the meta header");
  }
  if (!v.sop_instance || v.sop_instance->empty()) {
    return reject("media storage SOP instance UID (0002,0003) missing or empty in the meta header");
  }
  if (!v.ts || v.ts->empty()) {
    return reject("transfer syntax UID (0002,0010) missing or empty in the meta header");
  }
  out.transfer_syntax = std::move(*v.ts);
  out.sop_class_uid = std::move(*v.sop_class);
  out.sop_instance_uid = std::move(*v.sop_instance);
  out.dataset_offset = *meta_end;
  return MetaInfo{*meta_end};
}

}  // namespace dirgw::ingest::prescan_detail
