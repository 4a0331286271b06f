// The character sets an HL7 v2 message may name in MSH-18, and iconv's name for each. Header only:
// the configuration checks `default_charset` against it without linking the HL7 code.
#pragma once

#include <strings.h>

#include <string_view>
#include <utility>

namespace dirgw::hl7 {

// iconv's name for an MSH-18 value, compared ignoring case: HL7 table 0211's terms (8859/1..9,
// 8859/15, UNICODE UTF-8, ASCII), then the spellings senders use in the field (iconv's own
// names, DICOM's ISO_IR 100 / 192, Windows' code page 1252); null when unknown.
inline const char* hl7_charset_iconv_name(std::string_view charset) {
  static constexpr std::pair<std::string_view, const char*> kSets[] = {
      {"8859/1", "ISO-8859-1"},
      {"8859/2", "ISO-8859-2"},
      {"8859/3", "ISO-8859-3"},
      {"8859/4", "ISO-8859-4"},
      {"8859/5", "ISO-8859-5"},
      {"8859/6", "ISO-8859-6"},
      {"8859/7", "ISO-8859-7"},
      {"8859/8", "ISO-8859-8"},
      {"8859/9", "ISO-8859-9"},
      {"8859/15", "ISO-8859-15"},
      {"UNICODE UTF-8", "UTF-8"},
      {"ASCII", "ASCII"},
      {"UTF-8", "UTF-8"},
      {"UTF8", "UTF-8"},
      {"UNICODE UTF8", "UTF-8"},
      // Table 0211's "UNICODE" (ISO/IEC 10646) names no encoding; senders that write it send
      // UTF-8, which is then checked as such.
      {"UNICODE", "UTF-8"},
      {"ISO_IR 192", "UTF-8"},
      {"ISO-8859-1", "ISO-8859-1"},
      {"ISO8859-1", "ISO-8859-1"},
      {"ISO_8859-1", "ISO-8859-1"},
      {"LATIN1", "ISO-8859-1"},
      {"LATIN-1", "ISO-8859-1"},
      {"ISO_IR 100", "ISO-8859-1"},
      {"ISO-8859-15", "ISO-8859-15"},
      {"LATIN9", "ISO-8859-15"},
      {"WINDOWS-1252", "WINDOWS-1252"},
      {"CP1252", "WINDOWS-1252"},
      {"US-ASCII", "ASCII"}};
  for (const auto& [name, iconv] : kSets)
    if (name.size() == charset.size() &&
        strncasecmp(name.data(), charset.data(), charset.size()) == 0)
      return iconv;
  return nullptr;
}

}  // namespace dirgw::hl7
