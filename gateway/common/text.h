// The project's one set of trimming rules, by what the text is.
#pragma once

#include <string>
#include <string_view>

namespace dirgw {

// Whitespace around protocol text (HTTP headers, XML and JSON values, HL7 fields): space, tab,
// CR and LF at both ends.
constexpr std::string_view trim_whitespace(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// A DICOM value's padding (PS3.5 6.2): trailing spaces and NULs (UIDs are NUL-padded), leading
// spaces (insignificant for the string VRs we compare).
constexpr std::string_view trim_dicom(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.remove_suffix(1);
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  return s;
}

// Trailing padding only, where leading spaces are significant or cannot occur (UIDs, raw
// values read by the pre-scan).
constexpr std::string_view trim_dicom_trailing(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.remove_suffix(1);
  return s;
}

// A UID as text: its NUL or space padding dropped (a null pointer reads as empty).
inline std::string uid_text(std::string_view s) { return std::string(trim_dicom_trailing(s)); }
inline std::string uid_text(const char* s) {
  return s != nullptr ? uid_text(std::string_view(s)) : std::string();
}

}  // namespace dirgw
