// The string-level rules of validation, free of DCMTK: an Ontario health number, a UID, a DA date,
// a Specific Character Set, an identifier that must be safe to treat as data. validate.cpp applies
// them to a dataset; configuration and the HL7 side may use them on their own.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/uid.h"

namespace dirgw::policy {

// --- Ontario health number ----------------------------------------------------------------------
// Ten digits, the last a Luhn (mod 10) check digit over the first nine, optionally followed by a
// version code of one or two upper-case letters: "1234567897", "1234567897AB".
enum class HealthNumberProblem {
  kNone,
  kWrongLength,     // not ten digits before the version code (too few, too many, empty)
  kNonDigit,        // a non-digit among the first ten characters
  kCheckDigit,      // the tenth digit is not the Luhn check digit of the first nine
  kBadVersionCode,  // what follows the ten digits is not one or two letters A-Z
};

HealthNumberProblem check_ontario_health_number(std::string_view value);
bool valid_ontario_health_number(std::string_view value);
// "wrong_length", "non_digit", "check_digit", "bad_version_code" ("ok" for kNone): the suffix of
// the finding code "health_number.<reason>".
std::string_view reason_name(HealthNumberProblem problem);
// The Luhn check digit of nine digits (doubling the first, third, ... digit); -1 if not 9 digits.
int ontario_check_digit(std::string_view nine_digits);

// --- UIDs (PS3.5 9.1) ---------------------------------------------------------------------------
// The rule lives in common/uid.h (the pre-scan and configuration use it too).
using ::dirgw::check_uid;
using ::dirgw::reason_name;
using ::dirgw::UidProblem;

// --- Dates --------------------------------------------------------------------------------------
// DA: exactly YYYYMMDD and a real calendar date (leap years included). The ACR-NEMA form
// "YYYY.MM.DD" and ranges are not valid single dates.
bool valid_da(std::string_view value);

// --- Specific Character Set (PS3.3 C.12.1.1.2) --------------------------------------------------
enum class CharsetProblem {
  kNone,
  kUnknownTerm,         // a value that is not a defined term
  kAsciiAlias,          // "ISO_IR 6" alone: not a defined term, but read as ASCII by DCMTK, Orthanc
                        // and most viewers (written by several vendors' devices): a warning
  kInvalidCombination,  // several values where one is not an ISO 2022 term (or a repeated term)
};
// `values` are the backslash-separated values with their padding removed. An empty list (or a
// single empty value) is the default repertoire. A multi-valued attribute may have an empty first
// value (ISO 2022 IR 6); every other value must be an "ISO 2022 ..." term.
CharsetProblem check_specific_character_set(const std::vector<std::string>& values);
bool known_character_set_term(std::string_view term);

// --- Identifiers treated as data (issue 7) ------------------------------------------------------
// What makes an identifier (Patient ID, accession, a UID, ...) unsafe to carry into a path, a shell
// or hand-built SQL. We never do any of these, but a value that would break them is refused rather
// than relied upon.
enum class UnsafeKind {
  kNone,
  kControl,        // a byte below 0x20 or 0x7F
  kPathSeparator,  // '/' or '\' (also the DICOM value separator)
  kDotDot,         // ".."
  kMetacharacter,  // one of ; | & $ ` < > ( ) { } [ ] * ? ! ~ ' " % or the sequences -- /* */
};
UnsafeKind unsafe_identifier(std::string_view value);
std::string_view describe(UnsafeKind kind);  // "contains a control character", ...

}  // namespace dirgw::policy
