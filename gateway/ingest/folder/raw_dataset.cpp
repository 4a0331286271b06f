#include "ingest/folder/raw_dataset.h"

#include <cstdint>

namespace dirgw::ingest::folder {

namespace {

constexpr const char* kImplicitLe = "1.2.840.10008.1.2";
// dirgw's implementation class UID (the one the de-identification writer uses too).
constexpr const char* kImplementationClassUid = "2.25.291037474183716587532690612361375866813";

std::uint32_t le16(std::string_view b, std::size_t at) {
  return static_cast<unsigned char>(b[at]) | static_cast<unsigned char>(b[at + 1]) << 8;
}
std::uint32_t le32(std::string_view b, std::size_t at) {
  return le16(b, at) | le16(b, at + 2) << 16;
}

bool uid_text(std::string_view v) {
  if (v.empty() || v.size() > 64) return false;
  for (char c : v)
    if (!(c == '.' || (c >= '0' && c <= '9'))) return false;
  return true;
}

void put16(std::string& out, std::uint32_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>((v >> 8) & 0xff));
}
void put32(std::string& out, std::uint32_t v) {
  put16(out, v & 0xffff);
  put16(out, v >> 16);
}
void put_ui(std::string& out, std::uint32_t element, std::string v) {
  if (v.size() % 2 != 0) v.push_back('\0');
  put16(out, 0x0002);
  put16(out, element);
  out += "UI";
  put16(out, static_cast<std::uint32_t>(v.size()));
  out += v;
}

}  // namespace

std::optional<RawUids> raw_dataset_uids(std::string_view head) {
  RawUids out;
  std::size_t at = 0;
  std::uint32_t last = 0;
  while (at + 8 <= head.size()) {
    const std::uint32_t tag = le16(head, at) << 16 | le16(head, at + 2);
    const std::uint32_t len = le32(head, at + 4);
    if (tag < 0x00080000u || (at > 0 && tag <= last)) return std::nullopt;
    if (tag > 0x00080018u) break;
    if (len == 0xffffffffu || len > head.size() - at - 8) return std::nullopt;
    std::string_view value = head.substr(at + 8, len);
    while (!value.empty() && (value.back() == '\0' || value.back() == ' ')) value.remove_suffix(1);
    if (tag == 0x00080016u) out.sop_class = value;
    if (tag == 0x00080018u) out.sop_instance = value;
    last = tag;
    at += 8 + len;
  }
  if (!uid_text(out.sop_class) || !uid_text(out.sop_instance)) return std::nullopt;
  return out;
}

std::string implicit_le_meta(const RawUids& uids) {
  std::string elements;
  put16(elements, 0x0002);
  put16(elements, 0x0001);
  elements += "OB";
  put16(elements, 0);
  put32(elements, 2);
  elements.push_back('\0');
  elements.push_back('\1');
  put_ui(elements, 0x0002, uids.sop_class);
  put_ui(elements, 0x0003, uids.sop_instance);
  put_ui(elements, 0x0010, kImplicitLe);
  put_ui(elements, 0x0012, kImplementationClassUid);
  std::string out(128, '\0');
  out += "DICM";
  put16(out, 0x0002);
  put16(out, 0x0000);
  out += "UL";
  put16(out, 4);
  put32(out, static_cast<std::uint32_t>(elements.size()));
  return out + elements;
}

}  // namespace dirgw::ingest::folder
