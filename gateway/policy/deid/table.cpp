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

}  // namespace

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
