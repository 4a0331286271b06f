// Coercion (issue 4): per-facility stamping of attributes before an object leaves, recorded the
// way PS3.3 C.12.1.1.9 asks (Original Attributes Sequence), written as a derived object that the
// sender sends instead of the original.
//
// Pure and deterministic: the same input, rules, lookup answers and modification time give the
// same bytes, so a retry resends identical bytes. Values larger than 4 KiB (pixel data above all)
// are never loaded: DCMTK copies them from the input file while it writes the output, in the same
// transfer syntax, byte for byte. See docs/validation.md ("Coercion").
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "policy/tag.h"

class DcmItem;  // DCMTK

namespace dirgw::policy {

struct CoercionRules {
  std::string facility;              // Source of Previous Values (0400,0564); the facility's name
  std::string institution_name;      // (0008,0080); empty: left alone
  std::string issuer_of_patient_id;  // (0010,0021); empty: left alone
  // Further top-level attributes to set, applied in order after the two above. Refused (kConfig):
  // file meta, group lengths, private tags, sequences, pixel data, Specific Character Set, the
  // identifying UIDs, Original Attributes Sequence, unknown tags, values that do not fit the VR.
  std::vector<std::pair<Tag, std::string>> set_attributes;
  // When the object has no health number (no Other Patient IDs item with health_number_issuer and
  // a value), ask the lookup with the Patient ID and Issuer of Patient ID (after coercion).
  bool fill_health_number_from_mrn = false;
  std::string health_number_issuer = "ON";
};

// MRN -> health number, e.g. the table fed by HL7 ADT. Must not throw. nullopt: unknown.
using HealthNumberLookup =
    std::function<std::optional<std::string>(const std::string& mrn, const std::string& issuer)>;

struct CoercionResult {
  bool changed = false;
  std::vector<std::string> changed_tags;  // "(0008,0080)", ... sorted, each once
  // fill_health_number_from_mrn was asked for, the object had no health number and the lookup did
  // not know one: the object still has none (validation will say so).
  bool health_number_unresolved = false;
};

// Checks rules once, e.g. when the configuration is loaded. kConfig with the reason.
Result<void> check_rules(const CoercionRules& rules);

// Applies the rules to a dataset in memory and records what changed in a new item of Original
// Attributes Sequence (0400,0561), with Attribute Modification DateTime = modified_at (UTC).
Result<CoercionResult> coerce_dataset(DcmItem& dataset, const CoercionRules& rules,
                                      const HealthNumberLookup& lookup,
                                      std::chrono::system_clock::time_point modified_at);

// Loads in_path (values > 4 KiB stay on disk), coerces, and when anything changed writes out_path
// durably (temporary in the same directory, fsync, rename, fsync directory) in the input's transfer
// syntax with its file meta information unchanged. When nothing changed nothing is written: send
// the original. in_path and out_path may be the same file.
// Errors: kConfig (rules), kBadDicom (input does not parse), kInvalidArgument (lookup answer not
// usable as a value), kIo / kDiskFull (writing).
Result<CoercionResult> coerce_file(const std::filesystem::path& in_path,
                                   const std::filesystem::path& out_path,
                                   const CoercionRules& rules, const HealthNumberLookup& lookup,
                                   std::chrono::system_clock::time_point modified_at);

}  // namespace dirgw::policy
