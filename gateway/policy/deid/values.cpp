// Value helpers of the de-identification library: an element's value as text, the VR to write a
// replacement as, dummies, multi-valued strings.
#include <algorithm>
#include <cctype>
#include <cstdio>

#include "common/text.h"
#include "dcmtk/config/osconfig.h"  // must come first among the DCMTK headers
#include "dcmtk/dcmdata/dcelem.h"
#include "policy/deid/deid_internal.h"

namespace dirgw::policy::deid::detail {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) ==
                  std::toupper(static_cast<unsigned char>(y));
         });
}

std::string tag_text(const DcmTagKey& k) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "(%04X,%04X)", static_cast<unsigned>(k.getGroup()),
                static_cast<unsigned>(k.getElement()));
  return buf;
}

std::vector<std::string> split_values(std::string_view v) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t pos = v.find('\\', start);
    out.emplace_back(trim_dicom(v.substr(start, pos == v.npos ? v.npos : pos - start)));
    if (pos == v.npos) break;
    start = pos + 1;
  }
  return out;
}

std::string join_values(const std::vector<std::string>& values) {
  std::string out;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += '\\';
    out += values[i];
  }
  return out;
}

bool is_sequence(DcmElement* e) { return e->ident() == EVR_SQ; }

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// A value as text. Elements encoded as UN (unknown VR, or implicit private) are read as the bytes
// they hold, which for the text VRs of the table is the value itself.
std::string read_text(DcmElement* e) {
  if (e->getLength() == 0) return {};
  if (e->ident() == EVR_UN || e->ident() == EVR_OB || e->ident() == EVR_UNKNOWN ||
      e->ident() == EVR_UNKNOWN2B) {
    Uint8* bytes = nullptr;
    if (e->getUint8Array(bytes).bad() || bytes == nullptr) return {};
    return std::string(
        trim_dicom(std::string_view(reinterpret_cast<const char*>(bytes), e->getLength())));
  }
  OFString s;
  if (e->getOFStringArray(s, OFFalse).bad()) return {};
  return std::string(trim_dicom(std::string_view(s.c_str(), s.length())));
}

std::optional<std::string> item_string(DcmItem& item, const DcmTagKey& key) {
  DcmElement* e = nullptr;
  if (item.findAndGetElement(key, e, OFFalse).bad() || e == nullptr) return std::nullopt;
  return read_text(e);
}

// The VR to write a replacement as: the element's own unless it is UN, then the dictionary's,
// then the table's.
DcmEVR target_vr(DcmElement* e, const TableRow* row) {
  const DcmEVR own = e->ident();
  if (own != EVR_UN && own != EVR_UNKNOWN && own != EVR_UNKNOWN2B) return own;
  const DcmTag dict_tag(e->getTag().getXTag());
  const DcmEVR dict = dict_tag.getEVR();
  if (dict != EVR_UN && dict != EVR_UNKNOWN && dict != EVR_UNKNOWN2B) return dict;
  if (row != nullptr && row->vr[0] != '\0') {
    const DcmEVR t = DcmVR(row->vr).getEVR();
    if (t != EVR_UNKNOWN) return t;
  }
  return EVR_UN;
}

std::size_t max_length(DcmEVR vr) {
  switch (vr) {
    case EVR_AE:
    case EVR_CS:
    case EVR_SH:
      return 16;
    default:
      return 64;
  }
}

// A non-zero length dummy of the VR (Table E.1-1 action D). UI is handled by the caller (U).
std::string dummy_text(DcmEVR vr) {
  switch (vr) {
    case EVR_AS:
      return "000Y";
    case EVR_DA:
      return "19000101";
    case EVR_DT:
      return "19000101000000";
    case EVR_TM:
      return "000000";
    case EVR_DS:
    case EVR_IS:
    case EVR_US:
    case EVR_SS:
    case EVR_UL:
    case EVR_SL:
    case EVR_FL:
    case EVR_FD:
    case EVR_SV:
    case EVR_UV:
      return "0";
    case EVR_UR:
      return "urn:dirgw:anonymized";
    default:
      return kDummyText;
  }
}

bool is_text_vr(DcmEVR vr) { return DcmVR(vr).isaString() && vr != EVR_UN; }

}  // namespace dirgw::policy::deid::detail
