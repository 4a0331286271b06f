// Strict UTF-8 decoding: shared by the audit trail's escapers and validation's text checks.
#pragma once

#include <cstddef>
#include <string_view>

namespace dirgw {

// Decodes one code point at s[i] (strict: no overlong forms, no surrogates, at most U+10FFFF).
// Returns the number of bytes it took, or 0 when s[i] does not start a valid sequence.
std::size_t decode_utf8(std::string_view s, std::size_t i, char32_t& cp);

bool is_valid_utf8(std::string_view s);

}  // namespace dirgw
