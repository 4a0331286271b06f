#include "ingest/prescan/encoding.h"

#include <algorithm>
#include <cstdio>

namespace dirgw::ingest::prescan_detail {

namespace {

constexpr VrInfo kVrs[] = {
    {"AE", false, VrClass::kText},   {"AS", false, VrClass::kText},
    {"AT", false, VrClass::kBinary}, {"CS", false, VrClass::kText},
    {"DA", false, VrClass::kText},   {"DS", false, VrClass::kText},
    {"DT", false, VrClass::kText},   {"FD", false, VrClass::kBinary},
    {"FL", false, VrClass::kBinary}, {"IS", false, VrClass::kText},
    {"LO", false, VrClass::kText},   {"LT", false, VrClass::kText},
    {"OB", true, VrClass::kBinary},  {"OD", true, VrClass::kBinary},
    {"OF", true, VrClass::kBinary},  {"OL", true, VrClass::kBinary},
    {"OV", true, VrClass::kBinary},  {"OW", true, VrClass::kBinary},
    {"PN", false, VrClass::kText},   {"SH", false, VrClass::kText},
    {"SL", false, VrClass::kBinary}, {"SQ", true, VrClass::kSequence},
    {"SS", false, VrClass::kBinary}, {"ST", false, VrClass::kText},
    {"SV", true, VrClass::kBinary},  {"TM", false, VrClass::kText},
    {"UC", true, VrClass::kText},    {"UI", false, VrClass::kText},
    {"UL", false, VrClass::kBinary}, {"UN", true, VrClass::kUnknown},
    {"UR", true, VrClass::kText},    {"US", false, VrClass::kBinary},
    {"UT", true, VrClass::kText},    {"UV", true, VrClass::kBinary},
};

}  // namespace

Error reject(std::string detail) {
  return make_error(ErrorCode::kPrescanRejected, std::move(detail));
}

std::string tag_text(std::uint32_t tag) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "(%04X,%04X)", tag >> 16, tag & 0xFFFFu);
  return buf;
}

const VrInfo* find_vr(const unsigned char* p) {
  for (const auto& vr : kVrs) {
    if (p[0] == static_cast<unsigned char>(vr.name[0]) &&
        p[1] == static_cast<unsigned char>(vr.name[1])) {
      return &vr;
    }
  }
  return nullptr;
}

bool is_bulk_tag(std::uint32_t tag) {
  const std::uint16_t g = static_cast<std::uint16_t>(tag >> 16);
  const std::uint16_t e = static_cast<std::uint16_t>(tag & 0xFFFFu);
  if (g == 0x7FE0 || g == 0x5400 || g == 0x5600 || g == 0x0066 || g == 0x0068) return true;
  if ((g & 0xFF01) == 0x5000) return true;                 // retired curve data
  if ((g & 0xFF01) == 0x6000 && e == 0x3000) return true;  // overlay data
  if (g == 0x0028 && ((e >= 0x1200 && e <= 0x12FF) || (e >= 0x3000 && e <= 0x30FF))) return true;
  if (tag == 0x00420011u || tag == 0x00700022u || tag == 0x00409212u || tag == 0x04000520u ||
      tag == 0xFFFCFFFCu) {
    return true;
  }
  return false;
}

std::optional<TransferSyntax> classify(std::string_view uid) {
  if (uid == "1.2.840.10008.1.2") return TransferSyntax{Encoding::kImplicitLE, false, false};
  if (uid == "1.2.840.10008.1.2.1") return TransferSyntax{Encoding::kExplicitLE, false, false};
  if (uid == "1.2.840.10008.1.2.2") return TransferSyntax{Encoding::kExplicitBE, false, false};
  if (uid == "1.2.840.10008.1.2.1.99") return TransferSyntax{Encoding::kExplicitLE, true, false};
  // JPIP Referenced Deflate: the whole dataset is deflated like 1.2.840.10008.1.2.1.99.
  if (uid == "1.2.840.10008.1.2.4.95") return TransferSyntax{Encoding::kExplicitLE, true, false};
  if (uid == "1.2.840.10008.1.2.5") return TransferSyntax{Encoding::kExplicitLE, false, true};
  constexpr std::string_view kEncapsulatedPrefix = "1.2.840.10008.1.2.4.";
  if (uid.size() > kEncapsulatedPrefix.size() &&
      uid.substr(0, kEncapsulatedPrefix.size()) == kEncapsulatedPrefix) {
    const auto rest = uid.substr(kEncapsulatedPrefix.size());
    if (rest.size() <= 4 &&
        std::all_of(rest.begin(), rest.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      if (rest.size() > 1 && rest[0] == '0') return std::nullopt;
      return TransferSyntax{Encoding::kExplicitLE, false, true};
    }
  }
  return std::nullopt;
}

}  // namespace dirgw::ingest::prescan_detail
