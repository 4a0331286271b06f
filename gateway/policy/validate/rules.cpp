#include "policy/validate/rules.h"

#include <algorithm>
#include <array>

namespace dirgw::policy {

namespace {
bool is_digit(char c) { return c >= '0' && c <= '9'; }
}  // namespace

int ontario_check_digit(std::string_view nine_digits) {
  if (nine_digits.size() != 9) return -1;
  int sum = 0;
  for (std::size_t i = 0; i < 9; ++i) {
    if (!is_digit(nine_digits[i])) return -1;
    int d = nine_digits[i] - '0';
    // Luhn doubles every second digit counting from the right of the payload: with nine payload
    // digits that is the 1st, 3rd, 5th, 7th and 9th.
    if (i % 2 == 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return (10 - sum % 10) % 10;
}

HealthNumberProblem check_ontario_health_number(std::string_view value) {
  std::size_t digits = 0;
  while (digits < value.size() && is_digit(value[digits])) ++digits;
  if (digits > 10) return HealthNumberProblem::kWrongLength;
  if (digits < 10) {
    // All digits but too few: a length problem; otherwise a non-digit where a digit belongs.
    return digits == value.size() ? HealthNumberProblem::kWrongLength
                                  : HealthNumberProblem::kNonDigit;
  }
  std::string_view version = value.substr(10);
  if (version.size() > 2) return HealthNumberProblem::kBadVersionCode;
  for (char c : version) {
    if (c < 'A' || c > 'Z') return HealthNumberProblem::kBadVersionCode;
  }
  if (ontario_check_digit(value.substr(0, 9)) != value[9] - '0') {
    return HealthNumberProblem::kCheckDigit;
  }
  return HealthNumberProblem::kNone;
}

bool valid_ontario_health_number(std::string_view value) {
  return check_ontario_health_number(value) == HealthNumberProblem::kNone;
}

std::string_view reason_name(HealthNumberProblem problem) {
  switch (problem) {
    case HealthNumberProblem::kNone:
      return "ok";
    case HealthNumberProblem::kWrongLength:
      return "wrong_length";
    case HealthNumberProblem::kNonDigit:
      return "non_digit";
    case HealthNumberProblem::kCheckDigit:
      return "check_digit";
    case HealthNumberProblem::kBadVersionCode:
      return "bad_version_code";
  }
  return "unknown";
}

bool valid_da(std::string_view value) {
  if (value.size() != 8) return false;
  for (char c : value) {
    if (!is_digit(c)) return false;
  }
  auto num = [&](std::size_t pos, std::size_t len) {
    int v = 0;
    for (std::size_t i = pos; i < pos + len; ++i) v = v * 10 + (value[i] - '0');
    return v;
  };
  int year = num(0, 4), month = num(4, 2), day = num(6, 2);
  if (month < 1 || month > 12 || day < 1) return false;
  static constexpr std::array<int, 12> kDays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int max = kDays[static_cast<std::size_t>(month - 1)];
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (month == 2 && leap) max = 29;
  return day <= max;
}

namespace {

// PS3.3 C.12.1.1.2, Tables C.12-2 (single-byte, no extensions), C.12-5 (multi-byte, no
// extensions); these may only appear alone.
constexpr std::array<std::string_view, 15> kSingleValueTerms = {
    "ISO_IR 100", "ISO_IR 101", "ISO_IR 109", "ISO_IR 110", "ISO_IR 144",
    "ISO_IR 127", "ISO_IR 126", "ISO_IR 138", "ISO_IR 148", "ISO_IR 203",
    "ISO_IR 13",  "ISO_IR 166", "ISO_IR 192", "GB18030",    "GBK"};
// Tables C.12-3 (single-byte with code extensions) and C.12-4 (multi-byte with code extensions).
constexpr std::array<std::string_view, 17> kIso2022Terms = {
    "ISO 2022 IR 6",   "ISO 2022 IR 100", "ISO 2022 IR 101", "ISO 2022 IR 109", "ISO 2022 IR 110",
    "ISO 2022 IR 144", "ISO 2022 IR 127", "ISO 2022 IR 126", "ISO 2022 IR 138", "ISO 2022 IR 148",
    "ISO 2022 IR 203", "ISO 2022 IR 13",  "ISO 2022 IR 166", "ISO 2022 IR 87",  "ISO 2022 IR 159",
    "ISO 2022 IR 149", "ISO 2022 IR 58"};

bool is_iso2022_term(std::string_view term) {
  return std::find(kIso2022Terms.begin(), kIso2022Terms.end(), term) != kIso2022Terms.end();
}

}  // namespace

bool known_character_set_term(std::string_view term) {
  return is_iso2022_term(term) || std::find(kSingleValueTerms.begin(), kSingleValueTerms.end(),
                                            term) != kSingleValueTerms.end();
}

CharsetProblem check_specific_character_set(const std::vector<std::string>& values) {
  if (values.empty()) return CharsetProblem::kNone;
  if (values.size() == 1) {
    if (values[0].empty()) return CharsetProblem::kNone;
    if (values[0] == "ISO_IR 6") return CharsetProblem::kAsciiAlias;
    return known_character_set_term(values[0]) ? CharsetProblem::kNone
                                               : CharsetProblem::kUnknownTerm;
  }
  // Several values: code extensions. Unknown terms first, so they are named as such.
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i == 0 && values[i].empty()) continue;
    if (!known_character_set_term(values[i])) return CharsetProblem::kUnknownTerm;
  }
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i == 0 && values[i].empty()) continue;
    if (!is_iso2022_term(values[i])) return CharsetProblem::kInvalidCombination;
    for (std::size_t j = 0; j < i; ++j) {
      if (values[j] == values[i]) return CharsetProblem::kInvalidCombination;
    }
  }
  return CharsetProblem::kNone;
}

UnsafeKind unsafe_identifier(std::string_view value) {
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) return UnsafeKind::kControl;
  }
  if (value.find_first_of("/\\") != std::string_view::npos) return UnsafeKind::kPathSeparator;
  if (value.find("..") != std::string_view::npos) return UnsafeKind::kDotDot;
  if (value.find_first_of(";|&$`<>(){}[]*?!~'\"%") != std::string_view::npos ||
      value.find("--") != std::string_view::npos || value.find("/*") != std::string_view::npos ||
      value.find("*/") != std::string_view::npos) {
    return UnsafeKind::kMetacharacter;
  }
  return UnsafeKind::kNone;
}

std::string_view describe(UnsafeKind kind) {
  switch (kind) {
    case UnsafeKind::kNone:
      return "is safe";
    case UnsafeKind::kControl:
      return "contains a control character";
    case UnsafeKind::kPathSeparator:
      return "contains a path separator or value delimiter";
    case UnsafeKind::kDotDot:
      return "contains '..'";
    case UnsafeKind::kMetacharacter:
      return "contains a shell or SQL metacharacter";
  }
  return "is unsafe";
}

}  // namespace dirgw::policy
