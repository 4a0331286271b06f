// PS3.15 Table E.1-1 (Application Level Confidentiality Profile Attributes) as data: one row per
// attribute with its Basic Profile action and its action under each option column. The rows are
// generated at build time from table_e1_1.tsv (tools/deid/gen_table.py); no DCMTK types here.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace dirgw::policy::deid {

// The action codes of PS3.15 Table E.1-1, including the combined ones.
enum class Action : std::uint8_t {
  kNone,  // the option column says nothing for this attribute
  kD,     // replace with a non-zero length dummy value consistent with the VR
  kZ,     // replace with a zero length value (or a dummy)
  kX,     // remove
  kK,     // keep (sequences: keep, their items cleaned)
  kC,     // clean: replace with values of similar meaning known not to identify
  kU,     // replace with a non-zero length UID, consistently
  kZD,    // Z unless D is required to keep the IOD conformant
  kXZ,    // X unless Z is required
  kXD,    // X unless D is required
  kXZD,   // X unless Z or D is required
  kXZU,   // X/Z/U*: X unless Z or the replacement of contained UIDs (U) is required
};

// Table E.1-1's option columns, in the standard's order.
enum class OptionColumn : std::uint8_t {
  kRetainSafePrivate,
  kRetainUids,
  kRetainDeviceIdentity,
  kRetainInstitutionIdentity,
  kRetainPatientCharacteristics,
  kRetainLongitudinalFullDates,
  kRetainLongitudinalModifiedDates,
  kCleanDescriptors,
  kCleanStructuredContent,
  kCleanGraphics,
};
inline constexpr std::size_t kOptionColumns = 10;

struct TableRow {
  // The row matches (g, e) when (g & group_mask) == group and (e & element_mask) == element.
  // Repeating groups: (50xx,xxxx) and (60xx,eeee) (even groups only, checked by find_row).
  std::uint16_t group;
  std::uint16_t element;
  std::uint16_t group_mask;
  std::uint16_t element_mask;
  bool private_attributes;  // the "(gggg,eeee) where gggg is odd" row
  const char* keyword;      // PS3.6 keyword; empty for the private row
  const char* vr;           // PS3.6 VR (the first when several); empty when it varies
  const char* name;         // as Table E.1-1 names it
  Action basic;
  std::array<Action, kOptionColumns> options;

  Action option(OptionColumn c) const { return options[static_cast<std::size_t>(c)]; }
  bool repeating() const { return group_mask != 0xFFFF || element_mask != 0xFFFF; }
};

// Every row of the table, sorted by tag (patterns after the exact tags).
std::span<const TableRow> table_rows();
std::string_view table_edition();  // e.g. "2024b"
std::string_view table_source();   // where the data came from

// The row for an attribute: the exact tag first, then (50xx,xxxx) / (60xx,eeee) for even groups
// 5000-501E / 6000-601E, then the private row for any odd group. nullptr: not in the table.
const TableRow* find_row(std::uint16_t group, std::uint16_t element);

// dirgw's own rows, for attributes Table E.1-1 (2024b) does not list that hold what its rows
// remove: an instance's own UIDs under other names (U, kept with Retain UIDs), addresses that
// carry original UIDs and patient IDs (X), a birth date in another calendar (X), free text
// (X; C with Clean Descriptors). nullptr for any other attribute. See docs/deidentification.md.
const TableRow* find_supplement_row(std::uint16_t group, std::uint16_t element);
std::span<const TableRow> supplement_rows();

// "X", "Z/D", "X/Z/U*", ... ("" for kNone).
std::string_view action_code(Action a);
std::string_view option_name(OptionColumn c);

}  // namespace dirgw::policy::deid
