// DICOM UIDs (PS3.5 9.1): the one place that says what a well-formed UID is. The pre-scan refuses
// at the door what is not a UID at all (uid_syntax_ok); validation reports every finer problem
// (check_uid); configuration uses the same rule for the UIDs it lists.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dirgw {

enum class UidProblem {
  kEmpty,
  kTooLong,         // more than 64 characters
  kBadCharacter,    // anything but digits and dots
  kLeadingDot,      // ".1.2"
  kTrailingDot,     // "1.2."
  kEmptyComponent,  // "1..2"
  kLeadingZero,     // "1.02" (a component "0" on its own is fine)
};

// Every problem the UID has, each once, in the order of the enum; empty when well formed.
std::vector<UidProblem> check_uid(std::string_view uid);
// "empty", "too_long", "bad_character", "leading_dot", "trailing_dot", "empty_component",
// "leading_zero": the suffix of the finding code "uid.<reason>".
std::string_view reason_name(UidProblem problem);

// What the door demands of an identifying UID: 1 to 64 characters, digits and dots only, no empty
// component. Leading zeros (common in real archives, harmless to every consumer we know) are left
// to validation.
bool uid_syntax_ok(std::string_view uid);

// The decimal digits of a 128-bit big-endian number (no leading zero): the UID component that
// "2.25." UIDs and UIDs under a site root are made of.
std::string uid_decimal(std::array<std::uint8_t, 16> value);

// A UID of our own under `root` ("2.25" or a site's root of at most 32 characters), the same for
// the same `seed` on every run: root + "." + the decimal of the first 128 bits of SHA-256(seed),
// its leading digits only when the whole would be longer than 64 characters.
std::string uid_under_root(std::string_view root, std::string_view seed);

}  // namespace dirgw
