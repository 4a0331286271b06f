// Thin wrapper over DCMTK for building datasets: every call either succeeds or throws DicomError,
// so attribute-building code reads as a list of attributes. The exception never leaves writer.cpp.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>

#include "dcmtk/dcmdata/dcitem.h"
#include "dcmtk/dcmdata/dctagkey.h"

namespace dirgw::synth {

class DicomError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

void put(DcmItem& item, const DcmTagKey& tag, std::string_view value);
void put_u16(DcmItem& item, const DcmTagKey& tag, std::uint16_t value);
void put_u32(DcmItem& item, const DcmTagKey& tag, std::uint32_t value);
void put_s16(DcmItem& item, const DcmTagKey& tag, std::int16_t value);
void put_f64(DcmItem& item, const DcmTagKey& tag, double value);
void put_tag(DcmItem& item, const DcmTagKey& tag, const DcmTagKey& value);  // VR AT
// An SS element for tags whose dictionary VR is "US or SS" (e.g. Pixel Padding Value).
void put_ss_explicit(DcmItem& item, const DcmTagKey& tag, std::int16_t value);
// Appends a new item to the sequence `tag` (created if missing) and returns it.
DcmItem& append_item(DcmItem& item, const DcmTagKey& tag);
void put_empty_sequence(DcmItem& item, const DcmTagKey& tag);

// Decimal String values, at most 16 characters each.
std::string decimal_string(double value);
std::string decimal_string(std::initializer_list<double> values);  // backslash-separated

}  // namespace dirgw::synth
