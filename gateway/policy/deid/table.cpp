#include "policy/deid/table.h"

#include <algorithm>
#include <vector>

namespace dirgw::policy::deid {
namespace {

#include "table_e1_1.inc"  // generated from table_e1_1.tsv at build time

constexpr std::uint32_t key(std::uint16_t g, std::uint16_t e) {
  return (static_cast<std::uint32_t>(g) << 16) | e;
}

bool is_repeating_group(std::uint16_t group, std::uint16_t base) {
  return (group & 0xFF00) == base && (group & 0x00FF) <= 0x1E && group % 2 == 0;
}

constexpr Action N = Action::kNone;
constexpr std::array<Action, kOptionColumns> kNoOption{N, N, N, N, N, N, N, N, N, N};
// Retain UIDs (the second column): kept.
constexpr std::array<Action, kOptionColumns> kUidOption{N, Action::kK, N, N, N, N, N, N, N, N};
// Clean Descriptors (the eighth): cleaned.
constexpr std::array<Action, kOptionColumns> kDescriptorOption{N, N, N,          N, N,
                                                               N, N, Action::kC, N, N};
// Retain Device Identity (the third): kept.
constexpr std::array<Action, kOptionColumns> kDeviceOption{N, N, Action::kK, N, N, N, N, N, N, N};
// Retain Patient Characteristics (the fifth): kept.
constexpr std::array<Action, kOptionColumns> kCharacteristicsOption{N, N, N, N, Action::kK,
                                                                    N, N, N, N, N};

// A row for one exact tag (no repeating group, not the private row).
constexpr TableRow exact(std::uint16_t group, std::uint16_t element, const char* keyword,
                         const char* vr, const char* name, Action basic,
                         std::array<Action, kOptionColumns> options) {
  return {group, element, 0xFFFF, 0xFFFF, false, keyword, vr, name, basic, options};
}

// Sorted by tag. Found by a review with objects as vendors and tools write them (KOS and SR
// references, enhanced multi-frame concatenations, presentation states, RT), and by a second
// (December 2026) with attributes of editions after 2024b that hold the same identity as rows
// of this one: diagnoses (Admitting Diagnoses is X), device identifiers (Device Serial Number is
// X/Z/D, kept with Retain Device Identity), the issuer of the emptied Accession Number, a frame
// of reference UID, an incoming object's encrypted original attributes, the successors of
// Ethnic Group. (Newer patient-group attributes, Name to Use and the like, are removed by the
// patient-group rule in deid.cpp.)
constexpr TableRow kSupplementRows[] = {
    exact(0x0008, 0x0051, "IssuerOfAccessionNumberSequence", "SQ",
          "Issuer of Accession Number Sequence", Action::kX, kNoOption),
    exact(0x0008, 0x1167, "MultiFrameSourceSOPInstanceUID", "UI",
          "Multi-frame Source SOP Instance UID", Action::kU, kUidOption),
    exact(0x0008, 0x1190, "RetrieveURL", "UR", "Retrieve URL", Action::kX, kNoOption),
    exact(0x0008, 0x1301, "PrincipalDiagnosisCodeSequence", "SQ",
          "Principal Diagnosis Code Sequence", Action::kX, kNoOption),
    exact(0x0008, 0x1302, "PrimaryDiagnosisCodeSequence", "SQ", "Primary Diagnosis Code Sequence",
          Action::kX, kNoOption),
    exact(0x0008, 0x1303, "SecondaryDiagnosesCodeSequence", "SQ",
          "Secondary Diagnoses Code Sequence", Action::kX, kNoOption),
    exact(0x0008, 0x1304, "HistologicalDiagnosesCodeSequence", "SQ",
          "Histological Diagnoses Code Sequence", Action::kX, kNoOption),
    exact(0x0008, 0x3012, "RadiopharmaceuticalAdministrationEventUID", "UI",
          "Radiopharmaceutical Administration Event UID", Action::kU, kUidOption),
    exact(0x0010, 0x0033, "PatientBirthDateInAlternativeCalendar", "LO",
          "Patient's Birth Date in Alternative Calendar", Action::kX, kNoOption),
    exact(0x0010, 0x0034, "PatientDeathDateInAlternativeCalendar", "LO",
          "Patient's Death Date in Alternative Calendar", Action::kX, kNoOption),
    exact(0x0010, 0x2161, "EthnicGroupCodeSequence", "SQ", "Ethnic Group Code Sequence", Action::kX,
          kCharacteristicsOption),
    exact(0x0010, 0x2162, "EthnicGroups", "UC", "Ethnic Groups", Action::kX,
          kCharacteristicsOption),
    exact(0x0018, 0x1003, "DeviceID", "LO", "Device ID", Action::kX, kDeviceOption),
    exact(0x0018, 0x1010, "SecondaryCaptureDeviceID", "LO", "Secondary Capture Device ID",
          Action::kX, kDeviceOption),
    exact(0x0018, 0x1011, "HardcopyCreationDeviceID", "LO", "Hardcopy Creation Device ID",
          Action::kX, kDeviceOption),
    exact(0x0018, 0x991E, "TargetFrameOfReferenceUID", "UI", "Target Frame of Reference UID",
          Action::kU, kUidOption),
    exact(0x0020, 0x0242, "SOPInstanceUIDOfConcatenationSource", "UI",
          "SOP Instance UID of Concatenation Source", Action::kU, kUidOption),
    exact(0x0020, 0x9312, "VolumeFrameOfReferenceUID", "UI", "Volume Frame of Reference UID",
          Action::kU, kUidOption),
    exact(0x0020, 0x9313, "TableFrameOfReferenceUID", "UI", "Table Frame of Reference UID",
          Action::kU, kUidOption),
    exact(0x0028, 0x0304, "ReferencedColorPaletteInstanceUID", "UI",
          "Referenced Color Palette Instance UID", Action::kU, kUidOption),
    exact(0x0028, 0x7FE0, "PixelDataProviderURL", "UR", "Pixel Data Provider URL", Action::kX,
          kNoOption),
    exact(0x0040, 0x0400, "CommentsOnTheScheduledProcedureStep", "LT",
          "Comments on the Scheduled Procedure Step", Action::kX, kDescriptorOption),
    exact(0x0040, 0x0556, "AcquisitionContextDescription", "ST", "Acquisition Context Description",
          Action::kX, kDescriptorOption),
    exact(0x0040, 0xE001, "HL7InstanceIdentifier", "ST", "HL7 Instance Identifier", Action::kX,
          kNoOption),
    exact(0x0040, 0xE010, "RetrieveURI", "UR", "Retrieve URI", Action::kX, kNoOption),
    exact(0x0040, 0xE011, "RetrieveLocationUID", "UI", "Retrieve Location UID", Action::kX,
          kNoOption),
    exact(0x0042, 0x0010, "DocumentTitle", "ST", "Document Title", Action::kZ, kDescriptorOption),
    exact(0x0044, 0x0102, "AssertionUID", "UI", "Assertion UID", Action::kU, kUidOption),
    exact(0x0062, 0x0006, "SegmentDescription", "ST", "Segment Description", Action::kX,
          kDescriptorOption),
    exact(0x0070, 0x0068, "GraphicLayerDescription", "LO", "Graphic Layer Description", Action::kX,
          kDescriptorOption),
    exact(0x0070, 0x0080, "ContentLabel", "CS", "Content Label", Action::kD, kNoOption),
    exact(0x0070, 0x0081, "ContentDescription", "LO", "Content Description", Action::kX,
          kDescriptorOption),
    exact(0x0400, 0x0500, "EncryptedAttributesSequence", "SQ", "Encrypted Attributes Sequence",
          Action::kX, kNoOption),
    exact(0x3002, 0x0004, "RTImageDescription", "ST", "RT Image Description", Action::kX,
          kDescriptorOption),
    exact(0x3008, 0x0202, "TreatmentStatusComment", "ST", "Treatment Status Comment", Action::kX,
          kDescriptorOption),
    exact(0x300A, 0x0402, "SetupImageComment", "ST", "Setup Image Comment", Action::kX,
          kDescriptorOption),
    exact(0x300A, 0x0675, "EquipmentFrameOfReferenceUID", "UI", "Equipment Frame of Reference UID",
          Action::kU, kUidOption),
};

}  // namespace

std::span<const TableRow> supplement_rows() {
  return {std::begin(kSupplementRows), std::end(kSupplementRows)};
}

const TableRow* find_supplement_row(std::uint16_t group, std::uint16_t element) {
  const std::uint32_t k = key(group, element);
  const auto* end = std::end(kSupplementRows);
  const auto* it = std::lower_bound(
      std::begin(kSupplementRows), end, k,
      [](const TableRow& r, std::uint32_t v) { return key(r.group, r.element) < v; });
  return it != end && key(it->group, it->element) == k ? it : nullptr;
}

std::span<const TableRow> table_rows() {
  return {std::begin(kGeneratedRows), std::end(kGeneratedRows)};
}
std::string_view table_edition() { return kGeneratedEdition; }
std::string_view table_source() { return kGeneratedSource; }

const TableRow* find_row(std::uint16_t group, std::uint16_t element) {
  static const auto exact = [] {
    std::vector<const TableRow*> rows;
    for (const TableRow& r : kGeneratedRows) {
      if (!r.repeating() && !r.private_attributes) rows.push_back(&r);
    }
    std::sort(rows.begin(), rows.end(), [](const TableRow* a, const TableRow* b) {
      return key(a->group, a->element) < key(b->group, b->element);
    });
    return rows;
  }();
  const std::uint32_t k = key(group, element);
  auto it = std::lower_bound(exact.begin(), exact.end(), k, [](const TableRow* r, std::uint32_t v) {
    return key(r->group, r->element) < v;
  });
  if (it != exact.end() && key((*it)->group, (*it)->element) == k) return *it;
  for (const TableRow& r : kGeneratedRows) {
    if (r.private_attributes) {
      if (group % 2 == 1) return &r;
      continue;
    }
    if (!r.repeating()) continue;
    if ((group & r.group_mask) != r.group || (element & r.element_mask) != r.element) continue;
    if (is_repeating_group(group, r.group)) return &r;
  }
  return nullptr;
}

std::string_view action_code(Action a) {
  switch (a) {
    case Action::kNone:
      return "";
    case Action::kD:
      return "D";
    case Action::kZ:
      return "Z";
    case Action::kX:
      return "X";
    case Action::kK:
      return "K";
    case Action::kC:
      return "C";
    case Action::kU:
      return "U";
    case Action::kZD:
      return "Z/D";
    case Action::kXZ:
      return "X/Z";
    case Action::kXD:
      return "X/D";
    case Action::kXZD:
      return "X/Z/D";
    case Action::kXZU:
      return "X/Z/U*";
  }
  return "?";
}

std::string_view option_name(OptionColumn c) {
  switch (c) {
    case OptionColumn::kRetainSafePrivate:
      return "Retain Safe Private";
    case OptionColumn::kRetainUids:
      return "Retain UIDs";
    case OptionColumn::kRetainDeviceIdentity:
      return "Retain Device Identity";
    case OptionColumn::kRetainInstitutionIdentity:
      return "Retain Institution Identity";
    case OptionColumn::kRetainPatientCharacteristics:
      return "Retain Patient Characteristics";
    case OptionColumn::kRetainLongitudinalFullDates:
      return "Retain Longitudinal Full Dates";
    case OptionColumn::kRetainLongitudinalModifiedDates:
      return "Retain Longitudinal Modified Dates";
    case OptionColumn::kCleanDescriptors:
      return "Clean Descriptors";
    case OptionColumn::kCleanStructuredContent:
      return "Clean Structured Content";
    case OptionColumn::kCleanGraphics:
      return "Clean Graphics";
  }
  return "?";
}

}  // namespace dirgw::policy::deid
