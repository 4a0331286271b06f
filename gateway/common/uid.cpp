#include "common/uid.h"

#include <algorithm>

#include "common/crypto.h"

namespace dirgw {

namespace {
bool is_digit(char c) { return c >= '0' && c <= '9'; }
}  // namespace

std::vector<UidProblem> check_uid(std::string_view uid) {
  std::vector<UidProblem> out;
  if (uid.empty()) {
    out.push_back(UidProblem::kEmpty);
    return out;
  }
  bool bad_char = false, empty_component = false, leading_zero = false;
  if (uid.size() > 64) out.push_back(UidProblem::kTooLong);
  for (char c : uid) {
    if (!is_digit(c) && c != '.') bad_char = true;
  }
  if (bad_char) out.push_back(UidProblem::kBadCharacter);
  if (uid.front() == '.') out.push_back(UidProblem::kLeadingDot);
  if (uid.back() == '.') out.push_back(UidProblem::kTrailingDot);
  // Components between dots; the leading/trailing empty components are reported above.
  std::size_t start = 0;
  while (start <= uid.size()) {
    std::size_t dot = uid.find('.', start);
    std::size_t end = dot == std::string_view::npos ? uid.size() : dot;
    std::string_view comp = uid.substr(start, end - start);
    bool edge = start == 0 || end == uid.size();
    if (comp.empty() && !edge) empty_component = true;
    if (comp.size() > 1 && comp[0] == '0') leading_zero = true;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (empty_component) out.push_back(UidProblem::kEmptyComponent);
  if (leading_zero) out.push_back(UidProblem::kLeadingZero);
  return out;
}

std::string_view reason_name(UidProblem problem) {
  switch (problem) {
    case UidProblem::kEmpty:
      return "empty";
    case UidProblem::kTooLong:
      return "too_long";
    case UidProblem::kBadCharacter:
      return "bad_character";
    case UidProblem::kLeadingDot:
      return "leading_dot";
    case UidProblem::kTrailingDot:
      return "trailing_dot";
    case UidProblem::kEmptyComponent:
      return "empty_component";
    case UidProblem::kLeadingZero:
      return "leading_zero";
  }
  return "unknown";
}

bool uid_syntax_ok(std::string_view uid) {
  for (UidProblem p : check_uid(uid))
    if (p != UidProblem::kLeadingZero) return false;
  return true;
}

std::string uid_decimal(std::array<std::uint8_t, 16> v) {
  std::string digits;
  while (true) {
    unsigned rem = 0;
    bool nonzero = false;
    for (std::uint8_t& b : v) {
      const unsigned cur = rem * 256 + b;
      b = static_cast<std::uint8_t>(cur / 10);
      rem = cur % 10;
      nonzero = nonzero || b != 0;
    }
    digits.push_back(static_cast<char>('0' + rem));
    if (!nonzero) break;
  }
  std::reverse(digits.begin(), digits.end());
  return digits;
}

std::string uid_under_root(std::string_view root, std::string_view seed) {
  const std::string hex = sha256_hex(seed);
  std::array<std::uint8_t, 16> first{};
  for (std::size_t i = 0; i < first.size(); ++i)
    first[i] = static_cast<std::uint8_t>(std::stoi(hex.substr(i * 2, 2), nullptr, 16));
  // At most 64 characters: a long root keeps fewer digits (32 characters of root leave 31 digits,
  // about 100 bits). The leading digit of a decimal is never 0, so the component stays valid.
  const std::string digits = uid_decimal(first);
  const std::size_t room = root.size() + 1 < 64 ? 64 - root.size() - 1 : 0;
  return std::string(root) + "." + digits.substr(0, room);
}

}  // namespace dirgw
