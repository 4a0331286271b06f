// A DICOM attribute tag as configuration spells it, "(gggg,eeee)". Kept free of DCMTK types so that
// configuration code can fill validation profiles and coercion rules without including DCMTK.
#pragma once

#include <compare>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

namespace dirgw::policy {

struct Tag {
  std::uint16_t group = 0;
  std::uint16_t element = 0;

  friend auto operator<=>(const Tag&, const Tag&) = default;

  // "(0010,0020)": upper-case hex, the form every finding and changed_tags entry uses.
  std::string to_string() const {
    char buf[16];
    std::snprintf(buf, sizeof buf, "(%04X,%04X)", static_cast<unsigned>(group),
                  static_cast<unsigned>(element));
    return buf;
  }

  // Accepts "(gggg,eeee)", "gggg,eeee" and "ggggeeee", hex digits of either case.
  static std::optional<Tag> parse(std::string_view text) {
    if (text.size() >= 2 && text.front() == '(' && text.back() == ')') {
      text = text.substr(1, text.size() - 2);
    }
    std::string digits;
    if (text.size() == 9 && text[4] == ',') {
      digits = std::string(text.substr(0, 4)) + std::string(text.substr(5));
    } else if (text.size() == 8) {
      digits = std::string(text);
    } else {
      return std::nullopt;
    }
    std::uint32_t v = 0;
    for (char c : digits) {
      int d;
      if (c >= '0' && c <= '9') {
        d = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        d = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        d = c - 'A' + 10;
      } else {
        return std::nullopt;
      }
      v = (v << 4) | static_cast<std::uint32_t>(d);
    }
    return Tag{static_cast<std::uint16_t>(v >> 16), static_cast<std::uint16_t>(v & 0xFFFF)};
  }
};

}  // namespace dirgw::policy
