// Validation of one DICOM object against a named profile (issue 4): required attributes, the
// health number, UIDs, dates, modality, pixel data length, character set and identifiers that must
// be safe to treat as data. Pure: it reads a file or a dataset and returns a report; what happens
// to the object (quarantine, hold) is the caller's decision.
//
// Every failure is reported, not only the first. A Finding names the rule (a stable code), the tag
// and what is wrong in our words; it never carries a value from the object, so findings may go to
// the catalog, the CLI and the log as they are. Rules and codes: docs/validation.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "policy/decision.h"
#include "policy/tag.h"
#include "policy/validate/rules.h"

class DcmItem;        // DCMTK
class DcmFileFormat;  // DCMTK

namespace dirgw::policy {

enum class Severity { kError, kWarning };

struct Finding {
  std::string code;     // stable identifier, e.g. "health_number.check_digit"
  std::string tag;      // "(0010,1002)"; empty for findings about the whole object
  std::string message;  // our words; never a value taken from the object
  Severity severity = Severity::kError;
  bool accepted = false;  // an error the profile accepts (Profile::accepted): reported as a warning
};

struct ValidationReport {
  bool ok = true;  // no finding of severity kError
  std::vector<Finding> findings;

  bool has(std::string_view code) const;  // any finding with this code
  std::size_t count(Severity severity) const;
};

enum class HealthNumberScheme {
  kPresenceOnly,  // the number must be there; its format is not checked
  kOntario,       // check_ontario_health_number()
};

// A validation profile. Built-in profiles come from builtin_profile(); the configuration can fill
// one field by field (every field has a plain type).
struct Profile {
  std::string name;
  // Top-level attributes that must be present with a non-empty value.
  std::vector<Tag> required;
  // The health number: an item of Other Patient IDs Sequence (0010,1002) whose Issuer of Patient
  // ID (0010,0021) equals health_number_issuer, or Patient ID (0010,0020) itself when the
  // top-level Issuer of Patient ID is that issuer.
  bool require_health_number = false;
  std::string health_number_issuer;
  HealthNumberScheme health_number_scheme = HealthNumberScheme::kOntario;
  // Modality (0008,0060) must be one of these; empty: any.
  std::vector<std::string> allowed_modalities;
  bool check_uids = true;           // well-formed UIDs (identifying UIDs: error; others: warning)
  bool check_dates = true;          // Study Date (0008,0020) is a valid DA when present
  bool check_pixel_data = true;     // pixel data length / fragments against the image attributes
  bool check_character_set = true;  // Specific Character Set (0008,0005) defined terms
  bool check_identifiers = true;    // identifiers free of path, control, shell and SQL characters
  // Text values (SH LO ST LT UT PN UC) in the declared repertoire: valid UTF-8 under ISO_IR 192,
  // 7-bit ASCII when no Specific Character Set is declared (undeclared Latin-1 and the like).
  bool check_text_encoding = true;
  // File-level checks (validate_file only; DCMTK pads odd values when it reads them, so these
  // come from the structural pre-scan): odd value lengths (a warning) and private values longer
  // than max_private_value (an error; 0: no limit).
  bool check_value_lengths = true;
  std::uint64_t max_private_value = 1u << 20;
  // Findings beyond this number are dropped and replaced by one "findings.truncated" warning, so a
  // hostile object cannot make the report (and the catalog row) arbitrarily large.
  std::size_t max_findings = 100;
  // Findings the site accepts (policy.validation.accept_findings): reported as warnings, marked
  // `accepted`, so that they do not fail the report. Each entry is a code ("charset.unknown"),
  // or a code and a tag ("attribute.missing (0008,0050)"): only that attribute's finding. Only
  // codes that finding_codes.h marks acceptable belong here (the configuration checks it).
  std::vector<std::string> accepted;
};

// Whether the profile accepts a finding of this code about this tag.
bool accepts(const Profile& profile, std::string_view code, std::string_view tag);

// "ontario-dir": the Ontario diagnostic imaging repository profile (docs/validation.md).
Profile ontario_dir_profile();
// A built-in profile by name; nullopt if there is none of that name.
std::optional<Profile> builtin_profile(std::string_view name);

// Validates a dataset already in memory (tests, or a caller that has parsed the object). Large
// values may stay on disk: pixel data is judged by its declared length and fragment count.
ValidationReport validate_dataset(DcmItem& dataset, const Profile& profile);

// Parses the file with DCMTK, leaving values larger than 4 KiB on disk, and validates it. A parse
// failure is a finding ("parse"), not an error; the Result fails only when the file cannot be
// read at all (kNotFound, kIo). `loaded`, when given, receives the object as parsed (it stays
// empty when the file could not be read or parsed), so that a caller reading other attributes
// of the same object does not parse the file a second time.
Result<ValidationReport> validate_file(const std::filesystem::path& path, const Profile& profile,
                                       std::unique_ptr<DcmFileFormat>* loaded = nullptr);

// Accept when the report is ok; otherwise reject with one reason per error finding, of the form
// "<code> <tag>" (warnings are not reasons).
Decision decide(const ValidationReport& report);

}  // namespace dirgw::policy
