// Internal to the STOW-RS code (stow.h): what a Store Instances Response (PS3.18 Annex I) says
// about each instance, read from DICOM JSON (nlohmann/json) or DICOM XML (pugixml), and the
// few text helpers the answer and the outcome share. Pure: bytes in, values out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dirgw::senders::dicomweb::detail {

struct AnswerEntry {
  std::string uid;
  std::optional<std::uint16_t> reason;  // WarningReason for referenced, FailureReason for failed
};

struct Answer {
  std::vector<AnswerEntry> referenced;
  std::vector<AnswerEntry> failed;
  std::size_t without_uid = 0;  // sequence items we could not attribute
  bool has_module = false;      // at least one of the two sequences is present
};

// By content type (DICOM JSON or XML), or with none or another, by the body's first character.
// nullopt: unreadable (not JSON/XML, too deep, too large, an XML DTD with internal subset).
std::optional<Answer> parse_answer(std::string_view content_type, std::string_view body);

bool is_space(
    char c);  // UIDs may arrive padded with a space or NUL (PS3.5 6.2, UI pads with 0x00).
std::string clean_uid(std::string_view s);
bool iequals(std::string_view a, std::string_view b);  // ASCII, case-insensitive

}  // namespace dirgw::senders::dicomweb::detail
