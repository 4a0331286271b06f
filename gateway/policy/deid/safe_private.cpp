// PS3.15 Table E.3.10-1, the standard's sample list of private attributes thought safe to keep
// (the Retain Safe Private option's `retain_safe_private`). The rows are generated at build time
// from safe_private_e3_10_1.tsv (tools/deid/gen_safe_private.py inc), the only copy of the facts.
#include <cstdint>

#include "policy/deid/deid.h"

namespace dirgw::policy::deid {

namespace {
struct SafePrivateRow {
  std::uint16_t group;
  const char* creator;
  std::uint8_t element;
};
#include "safe_private_e3_10_1.inc"
}  // namespace

const std::vector<SafePrivateAttribute>& standard_safe_private() {
  static const std::vector<SafePrivateAttribute> rows = [] {
    std::vector<SafePrivateAttribute> out;
    for (const SafePrivateRow& r : kSafePrivateRows) out.push_back({r.group, r.creator, r.element});
    return out;
  }();
  return rows;
}

std::string_view standard_safe_private_edition() { return kSafePrivateEdition; }

}  // namespace dirgw::policy::deid
