// Every finding code that validation reports (docs/validation.md, "Rules and finding codes"), and
// whether a site may accept it: `policy.validation.accept_findings` lists codes that are then
// reported as warnings, so that a study is not quarantined for them (a device that writes a
// non-conformant value the regional repository takes anyway). Header only: the configuration
// reader checks the list against it without linking the validator.
//
// Not acceptable, whatever the site says: an object DCMTK cannot parse, a UID that is empty, too
// long or has characters other than digits and dots (each is used as a key and in DICOMweb URLs),
// and two different health numbers for one patient (which could file the study under the wrong
// person). An identifier with characters that are unsafe as data (a RIS whose accession numbers
// are "CT/26/0001") may be accepted for a named attribute only; dirgw never uses one as a path.
#pragma once

#include <algorithm>
#include <array>
#include <string_view>

namespace dirgw::policy {

struct FindingCode {
  std::string_view code;
  bool acceptable;
  // Accepted only for a named attribute ("attribute.missing (0008,0050)"): the code covers
  // attributes as different as the Accession Number and the Patient ID.
  bool needs_tag = false;
};

inline constexpr std::array<FindingCode, 38> kFindingCodes = {{
    {"parse", false},
    {"attribute.missing", true, true},
    {"attribute.empty", true, true},
    {"attribute.too_long", true, true},
    {"health_number.missing", true},
    {"health_number.empty", true},
    {"health_number.wrong_length", true},
    {"health_number.non_digit", true},
    {"health_number.check_digit", true},
    {"health_number.bad_version_code", true},
    {"health_number.conflicting", false},
    {"uid.empty", false},
    {"uid.too_long", false},
    {"uid.bad_character", false},
    {"uid.leading_dot", true},
    {"uid.trailing_dot", true},
    {"uid.empty_component", true},
    {"uid.leading_zero", true},
    {"date.invalid", true},
    {"date.old_format", true},
    {"modality.not_allowed", true},
    {"pixel_data.attribute_missing", true},
    {"pixel_data.attribute_invalid", true},
    {"pixel_data.length_short", true},
    {"pixel_data.length_excess", true},
    {"pixel_data.no_fragments", true},
    {"pixel_data.too_few_fragments", true},
    {"pixel_data.offset_table", true},
    {"charset.unknown", true},
    {"charset.invalid_combination", true},
    {"charset.ascii_alias", true},
    {"identifier.unsafe_characters", true, true},
    {"text.invalid_utf8", true},
    {"text.undeclared_characters", true},
    {"value.odd_length", true},
    {"private.oversized", true},
    {"findings.truncated", false},
    {"coercion", false},
}};

inline const FindingCode* find_finding_code(std::string_view code) {
  const auto* it = std::find_if(kFindingCodes.begin(), kFindingCodes.end(),
                                [&](const FindingCode& c) { return c.code == code; });
  return it == kFindingCodes.end() ? nullptr : it;
}

}  // namespace dirgw::policy
