#include "dicom.h"

#include <cstdio>
#include <cstring>
#include <memory>

#include "dcmtk/dcmdata/dcsequen.h"
#include "dcmtk/dcmdata/dcvrss.h"

namespace dirgw::synth {
namespace {

void check(const OFCondition& cond, const DcmTagKey& tag) {
  if (cond.good()) return;
  throw DicomError("cannot set " + std::string(tag.toString().c_str()) + ": " + cond.text());
}

}  // namespace

void put(DcmItem& item, const DcmTagKey& tag, std::string_view value) {
  const std::string copy(value);
  check(item.putAndInsertString(tag, copy.c_str()), tag);
}

void put_u16(DcmItem& item, const DcmTagKey& tag, std::uint16_t value) {
  check(item.putAndInsertUint16(tag, value), tag);
}

void put_u32(DcmItem& item, const DcmTagKey& tag, std::uint32_t value) {
  check(item.putAndInsertUint32(tag, value), tag);
}

void put_s16(DcmItem& item, const DcmTagKey& tag, std::int16_t value) {
  check(item.putAndInsertSint16(tag, value), tag);
}

void put_f64(DcmItem& item, const DcmTagKey& tag, double value) {
  check(item.putAndInsertFloat64(tag, value), tag);
}

void put_tag(DcmItem& item, const DcmTagKey& tag, const DcmTagKey& value) {
  check(item.putAndInsertTagKey(tag, value), tag);
}

void put_ss_explicit(DcmItem& item, const DcmTagKey& tag, std::int16_t value) {
  auto element = std::make_unique<DcmSignedShort>(DcmTag(tag, EVR_SS));
  check(element->putSint16(value), tag);
  check(item.insert(element.get(), /*replaceOld=*/true), tag);
  element.release();  // owned by item now
}

DcmItem& append_item(DcmItem& item, const DcmTagKey& tag) {
  DcmItem* child = nullptr;
  check(item.findOrCreateSequenceItem(tag, child, /*itemNum=*/-2), tag);
  if (child == nullptr)
    throw DicomError("cannot create an item in " + std::string(tag.toString().c_str()));
  return *child;
}

void put_empty_sequence(DcmItem& item, const DcmTagKey& tag) {
  auto seq = std::make_unique<DcmSequenceOfItems>(DcmTag(tag));
  check(item.insert(seq.get(), /*replaceOld=*/true), tag);
  seq.release();
}

std::string decimal_string(double value) {
  if (value == 0.0) value = 0.0;  // no "-0"
  char buf[32];
  for (int precision = 10; precision > 0; --precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, value);
    if (std::strlen(buf) <= 16) break;
  }
  return buf;
}

std::string decimal_string(std::initializer_list<double> values) {
  std::string out;
  for (double v : values) {
    if (!out.empty()) out += '\\';
    out += decimal_string(v);
  }
  return out;
}

}  // namespace dirgw::synth
