// Text helpers shared by the audit core and its exporters (internal to dirgw_audit): strict UTF-8
// decoding, and the escapers for canonical JSON, XML and syslog.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/utf8.h"

namespace dirgw::audit::text {

using dirgw::decode_utf8;  // common/utf8.h
using dirgw::is_valid_utf8;

// Invalid bytes become U+FFFD, one per byte.
std::string sanitize_utf8(std::string_view s);

// Appends a JSON string literal: '"' and '\' escaped, control characters as \u00XX, valid UTF-8
// as is, and each byte of an invalid sequence as \u00XX (XX >= 80; injective, never produced by
// a valid string, which keeps U+0080..U+00FF as raw UTF-8).
void append_json_string(std::string& out, std::string_view s);

// Appends `s` escaped for XML 1.0 text or a double-quoted attribute value. Characters XML cannot
// carry (most C0 controls, U+FFFE/U+FFFF, invalid UTF-8) become U+FFFD; tab, line feed and
// carriage return become character references so attribute normalisation keeps them.
void append_xml_escaped(std::string& out, std::string_view s);
std::string xml_escaped(std::string_view s);

// UTC "2026-11-28T10:22:32.123Z" (xsd:dateTime, RFC 5424 TIMESTAMP).
std::string utc_timestamp_ms(std::int64_t epoch_ms);

std::string base64(std::string_view bytes);

}  // namespace dirgw::audit::text
