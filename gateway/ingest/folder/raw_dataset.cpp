#include "ingest/folder/raw_dataset.h"

#include <cstdint>

#include "ingest/prescan/encoding.h"

namespace dirgw::ingest::folder {

namespace {

namespace pd = prescan_detail;

constexpr std::string_view kImplicitLe = "1.2.840.10008.1.2";
constexpr std::string_view kExplicitLe = "1.2.840.10008.1.2.1";
constexpr std::string_view kExplicitBe = "1.2.840.10008.1.2.2";
constexpr std::size_t kPreambleAndPrefix = 132;

const unsigned char* bytes(std::string_view b, std::size_t at) {
  return reinterpret_cast<const unsigned char*>(b.data()) + at;
}
std::uint32_t get16(std::string_view b, std::size_t at, bool big = false) {
  return pd::get16(bytes(b, at), big);
}
std::uint32_t get32(std::string_view b, std::size_t at, bool big = false) {
  return pd::get32(bytes(b, at), big);
}

bool uid_text(std::string_view v) {
  if (v.empty() || v.size() > 64) return false;
  for (char c : v)
    if (!(c == '.' || (c >= '0' && c <= '9'))) return false;
  return true;
}

std::string_view trimmed(std::string_view v) {
  while (!v.empty() && (v.back() == '\0' || v.back() == ' ')) v.remove_suffix(1);
  return v;
}

// One element's header at head[at]: its tag, where its value starts and its length; nullopt
// when it does not fit in head or is not of this encoding.
struct Element {
  std::uint32_t tag;
  std::size_t value_at;
  std::uint32_t length;
};
std::optional<Element> element_at(std::string_view head, std::size_t at, RawSyntax syntax) {
  if (head.size() - at < 8) return std::nullopt;
  const bool big = syntax == RawSyntax::kExplicitBe;
  const std::uint32_t tag = get16(head, at, big) << 16 | get16(head, at + 2, big);
  if (syntax == RawSyntax::kImplicitLe) return Element{tag, at + 8, get32(head, at + 4)};
  const pd::VrInfo* vr = pd::find_vr(bytes(head, at + 4));
  if (vr == nullptr) return std::nullopt;
  if (!vr->long_form) return Element{tag, at + 8, get16(head, at + 6, big)};
  if (head.size() - at < 12 || get16(head, at + 6) != 0) return std::nullopt;
  return Element{tag, at + 12, get32(head, at + 8, big)};
}

void add(std::string& why, std::string_view what) {
  if (!why.empty()) why += "; ";
  why += what;
}

}  // namespace

std::optional<RawUids> dataset_uids(std::string_view head, RawSyntax syntax) {
  RawUids out;
  out.syntax = syntax;
  std::size_t at = 0;
  std::uint32_t last = 0;
  while (head.size() - at >= 8) {
    auto e = element_at(head, at, syntax);
    if (!e) return std::nullopt;
    if (e->tag < 0x00080000u || (at > 0 && e->tag <= last)) return std::nullopt;
    if (e->tag > 0x00080018u) break;
    if (e->length == pd::kUndefinedLength || e->length > head.size() - e->value_at)
      return std::nullopt;
    const std::string_view value = trimmed(head.substr(e->value_at, e->length));
    if (e->tag == 0x00080016u) out.sop_class = value;
    if (e->tag == 0x00080018u) out.sop_instance = value;
    last = e->tag;
    at = e->value_at + e->length;
  }
  if (!uid_text(out.sop_class) || !uid_text(out.sop_instance)) return std::nullopt;
  return out;
}

bool meta_without_preamble(std::string_view head) {
  if (head.size() < 12) return false;
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(head[i]); };
  const auto upper = [&](std::size_t i) { return byte(i) >= 'A' && byte(i) <= 'Z'; };
  // (0002,00xx) with an explicit VR: the group length (UL) or the version (OB) comes first.
  return byte(0) == 0x02 && byte(1) == 0x00 && byte(3) == 0x00 && upper(4) && upper(5);
}

std::optional<RawUids> raw_dataset_uids(std::string_view head) {
  if (auto u = dataset_uids(head, RawSyntax::kImplicitLe)) return u;
  return dataset_uids(head, RawSyntax::kExplicitLe);
}

std::string_view transfer_syntax_of(RawSyntax syntax) {
  switch (syntax) {
    case RawSyntax::kImplicitLe:
      return kImplicitLe;
    case RawSyntax::kExplicitLe:
      return kExplicitLe;
    case RawSyntax::kExplicitBe:
      break;
  }
  return kExplicitBe;
}

std::optional<MetaHeader> read_meta_header(std::string_view head) {
  if (head.size() < kPreambleAndPrefix || head.compare(128, 4, "DICM") != 0) return std::nullopt;
  MetaHeader m;
  std::size_t at = kPreambleAndPrefix;
  std::uint32_t last = 0;
  for (;;) {
    if (head.size() - at < 4) return std::nullopt;
    if (get16(head, at) != 0x0002) break;
    auto e = element_at(head, at, RawSyntax::kExplicitLe);
    if (!e || (at > kPreambleAndPrefix && e->tag <= last) || e->length == pd::kUndefinedLength ||
        e->length > head.size() - e->value_at)
      return std::nullopt;
    const std::string_view value = head.substr(e->value_at, e->length);
    switch (e->tag) {
      case 0x00020000u:
        if (e->length != 4) return std::nullopt;
        m.group_length = get32(head, e->value_at);
        break;
      case 0x00020001u:
        m.version = true;
        break;
      case 0x00020002u:
        m.sop_class = std::string(trimmed(value));
        break;
      case 0x00020003u:
        m.sop_instance = std::string(trimmed(value));
        break;
      case 0x00020010u:
        m.ts = std::string(trimmed(value));
        break;
      default:
        break;
    }
    last = e->tag;
    at = e->value_at + e->length;
  }
  m.end = at;
  // A group length that disagrees with the elements: which one is right is not ours to guess.
  if (m.group_length && kPreambleAndPrefix + 12 + *m.group_length != m.end) return std::nullopt;
  return m;
}

std::optional<MetaRepair> meta_repair(std::string_view head) {
  auto meta = read_meta_header(head);
  return meta ? meta_repair(head, *meta) : std::nullopt;
}

std::optional<MetaRepair> meta_repair(std::string_view head, const MetaHeader& meta) {
  const std::string_view dataset = head.substr(meta.end);
  MetaRepair r;
  r.dataset_offset = meta.end;
  std::optional<RawUids> uids;
  if (meta.ts && !meta.ts->empty()) {
    auto ts = pd::classify(*meta.ts);
    // Unknown and deflated datasets: left to the pre-scan as they are.
    if (!ts || ts->deflated) return std::nullopt;
    r.transfer_syntax = *meta.ts;
    uids =
        dataset_uids(dataset, ts->encoding == pd::Encoding::kImplicitLE   ? RawSyntax::kImplicitLe
                              : ts->encoding == pd::Encoding::kExplicitBE ? RawSyntax::kExplicitBe
                                                                          : RawSyntax::kExplicitLe);
  } else {
    uids = raw_dataset_uids(dataset);
    if (uids) r.transfer_syntax = transfer_syntax_of(uids->syntax);
    add(r.why, "no transfer syntax (0002,0010): the dataset's encoding read from it");
  }
  if (!uids) return std::nullopt;
  if (!meta.group_length) add(r.why, "no group length (0002,0000)");
  if (!meta.version) add(r.why, "no version (0002,0001)");
  if (!meta.sop_class || meta.sop_class->empty())
    add(r.why, "no media storage SOP class UID (0002,0002)");
  else if (*meta.sop_class != uids->sop_class)
    add(r.why, "media storage SOP class UID (0002,0002) differs from the dataset's");
  if (!meta.sop_instance || meta.sop_instance->empty())
    add(r.why, "no media storage SOP instance UID (0002,0003)");
  else if (*meta.sop_instance != uids->sop_instance)
    add(r.why, "media storage SOP instance UID (0002,0003) differs from the dataset's");
  if (r.why.empty()) return std::nullopt;
  r.uids = std::move(*uids);
  return r;
}

}  // namespace dirgw::ingest::folder
