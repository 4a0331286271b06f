#include "ingest/prescan/part10.h"

#include <cstdint>

namespace dirgw::ingest {

namespace {

// dirgw's implementation class UID (the one the de-identification writer uses too).
constexpr std::string_view kImplementationClassUid = "2.25.291037474183716587532690612361375866813";

void put16(std::string& out, std::uint32_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>((v >> 8) & 0xff));
}
void put32(std::string& out, std::uint32_t v) {
  put16(out, v & 0xffff);
  put16(out, v >> 16);
}
void put_ui(std::string& out, std::uint32_t element, std::string_view value) {
  std::string v(value);
  if (v.size() % 2 != 0) v.push_back('\0');
  put16(out, 0x0002);
  put16(out, element);
  out += "UI";
  put16(out, static_cast<std::uint32_t>(v.size()));
  out += v;
}

}  // namespace

std::string part10_meta(std::string_view sop_class, std::string_view sop_instance,
                        std::string_view transfer_syntax) {
  std::string elements;
  put16(elements, 0x0002);
  put16(elements, 0x0001);
  elements += "OB";
  put16(elements, 0);
  put32(elements, 2);
  elements.push_back('\0');
  elements.push_back('\1');
  put_ui(elements, 0x0002, sop_class);
  put_ui(elements, 0x0003, sop_instance);
  put_ui(elements, 0x0010, transfer_syntax);
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

}  // namespace dirgw::ingest
