// De-identification (issue: per-destination `deidentify:` profile): the Basic Application Level
// Confidentiality Profile of DICOM PS3.15 Annex E and its options, applied to every attribute of
// Table E.1-1 (table.h) at every depth of sequences, with keyed, consistent pseudonyms (key.h).
//
// Owns: which objects may not leave for a de-identifying destination (screen_dataset), what
// happens to each attribute (deidentify_dataset), and the derived file (deidentify_file):
// same SOP class and transfer syntax, Pixel Data byte for byte, new file meta information, zero
// preamble, deterministic bytes. The original file is never modified. No logging here: the report
// carries values only where they do not identify, and the UID/Patient ID mapping is never stored.
// See docs/deidentification.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "policy/decision.h"
#include "policy/deid/key.h"
#include "policy/deid/table.h"

class DcmItem;  // DCMTK

namespace dirgw::policy::deid {

// A private attribute that the Retain Safe Private option keeps: identified by its private
// creator and the low byte of its element number, as PS3.15 E.3.10 / PS3.5 7.8.1 do (the block
// number varies from file to file). group 0: any odd group.
struct SafePrivateAttribute {
  std::uint16_t group = 0;
  std::string creator;       // e.g. "SIEMENS CSA HEADER", compared after trimming spaces
  std::uint8_t element = 0;  // e.g. 0x10 for (0029,xx10)
};

// PS3.15 Table E.3.10-1: the standard's sample list of private attributes thought safe (vendors
// do not guarantee them), for a site that asks for it (`retain_safe_private`); its edition.
const std::vector<SafePrivateAttribute>& standard_safe_private();
std::string_view standard_safe_private_edition();

// Objects of a kind known to carry burned-in text that a site nevertheless allows: every
// non-empty field must match (case-sensitive, values trimmed). Without allow_marked_yes the rule
// only covers objects that do not say Burned In Annotation = YES.
struct BurnedInAllowRule {
  std::string sop_class_uid;
  std::string modality;
  std::string manufacturer;
  std::string model;  // Manufacturer's Model Name
  bool allow_marked_yes = false;
};

enum class LongitudinalDates {
  kRemove,          // Basic Profile: dates and times removed or replaced
  kRetainFull,      // Retain Longitudinal Temporal Information, Full Dates Option
  kRetainModified,  // ... Modified Dates Option: shifted by a per-patient keyed offset
};

struct DeidOptions {
  // Retain Safe Private Option: on when the list is not empty.
  std::vector<SafePrivateAttribute> safe_private;
  bool retain_uids = false;
  bool retain_device_identity = false;
  bool retain_institution_identity = false;
  bool retain_patient_characteristics = false;
  LongitudinalDates dates = LongitudinalDates::kRemove;
  // Clean Descriptors Option: a descriptor (and an SR/graphic text value) is kept only when it
  // equals, ignoring case and surrounding spaces, one of these reviewed values; otherwise the
  // Basic Profile action applies. Free text cannot be cleaned safely by a program.
  bool clean_descriptors = false;
  std::vector<std::string> descriptor_allow_list;
  // Clean Structured Content Option: SR documents are de-identified (content item values
  // cleaned) instead of refused.
  bool clean_structured_content = false;
  bool clean_graphics = false;
  std::vector<BurnedInAllowRule> burned_in_allow;
  // An operator looked at this object's pixel data and found no identifying burned-in text
  // (dirgw quarantine release --reviewed-burned-in): the burned-in screen does not refuse it.
  // Set per object by the policy stage, never from the configuration.
  bool burned_in_reviewed = false;
};

// kConfig with the reason: creator empty or longer than 64, even group, an empty allow rule...
Result<void> check_options(const DeidOptions& options);

// Whether an object may be de-identified at all, for a de-identifying destination. Rejected, with
// stable reasons (never a value from the object): "burned-in-annotation" (marked YES, or absent
// on a kind known to carry it: US, Secondary Capture, video, visible light photography, modality
// OT/SC/XC/ES/GM/DOC), "recognizable-visual-features", "embedded-overlay" (overlay bits inside
// Pixel Data), "encapsulated-document" (PDF, CDA, STL, ...: cannot be cleaned),
// "structured-report" (SR family, unless clean_structured_content), "no-sop-class".
Decision screen_dataset(DcmItem& dataset, const DeidOptions& options);

struct DeidChange {
  std::string path;             // "(0040,A730)[0].(0040,A124)": tag path from the top level
  std::string rule;             // Table E.1-1 action that applied ("X/Z", "C", ...) or a dirgw rule
  char action = 'K';            // what was done: 'X' removed, 'Z' emptied, 'D' dummy, 'U' new UID,
                                // 'C' cleaned, 'K' kept, 'A' added by dirgw
  bool old_identifying = true;  // the old value may identify: never shown, not stored
  bool new_identifying = false;
  std::string old_value;  // only when !old_identifying
  std::string new_value;  // only when !new_identifying
};

struct DeidReport {
  std::vector<DeidChange> changes;  // every attribute of the table met, including those kept
  // The object's new identity: the catalog and the sender need them (a STOW-RS answer names the
  // new SOP Instance UID). Pseudonyms, not identifying.
  std::string sop_class_uid;
  std::string sop_instance_uid;
  std::string study_instance_uid;
  std::string series_instance_uid;
  int date_shift_days = 0;  // applied offset (Modified Dates option); not identifying alone
};

// One line per change for `dirgw deid preview`: "(0010,0010) Z" for identifying values,
// "(0008,0060) K CT -> CT" otherwise.
std::string describe(const DeidChange& change);

// The consistent pseudonym of a UID: "2.25." + decimal of the first 128 bits of
// HMAC-SHA-256(key, "uid" || 0 || uid). UIDs under 1.2.840.10008. are returned unchanged.
std::string pseudonymize_uid(const Key& key, std::string_view uid);
// The Patient ID pseudonym (also written as Patient's Name), from Patient ID and Issuer of
// Patient ID: "P" + 24 upper-case hex digits.
std::string pseudonymize_patient_id(const Key& key, std::string_view patient_id,
                                    std::string_view issuer);
// Days to add to every date of this patient (Modified Dates option): -1 .. -1826.
int date_shift_days(const Key& key, std::string_view patient_id, std::string_view issuer);

// In memory: applies the profile to `dataset` (the top level of an object). Does not screen.
// kBadDicom when sequences nest deeper than kMaxDepth.
inline constexpr int kMaxDepth = 64;
Result<DeidReport> deidentify_dataset(DcmItem& dataset, const DeidOptions& options, const Key& key);

// Loads in_path (values larger than 4 KiB stay on disk), screens it (kRefused with the reasons),
// de-identifies and writes out_path durably (owner-only temporary, fsync, rename, fsync dir) in
// the input's transfer syntax. out_path must not be in_path (kInvalidArgument).
// Errors: kConfig (options), kNotFound / kBadDicom (input), kRefused (screen), kIo / kDiskFull.
Result<DeidReport> deidentify_file(const std::filesystem::path& in_path,
                                   const std::filesystem::path& out_path,
                                   const DeidOptions& options, const Key& key);

// The same report as deidentify_file, without writing anything.
Result<DeidReport> preview_file(const std::filesystem::path& in_path, const DeidOptions& options,
                                const Key& key);

}  // namespace dirgw::policy::deid
