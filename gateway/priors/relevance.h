// The body part / procedure rule of priors (issue 18, docs/priors.md), pure: which groups of the
// configured table (priors.rules.relevance) an ordered exam belongs to, by its procedure codes
// (OBR-4 of ORM^O01 / OMI^O23, AIS-3 of SIU^S12, `dirgw priors fetch --procedure`) or a body part
// (`--body-part`), and whether a prior is relevant to them: its Body Part Examined (study or
// series level), a code of its Procedure Code Sequence, or a keyword of its Study Description.
// The answers say which rule decided, for the audit trail (codes and body parts are not PHI).
#pragma once

#include <string>
#include <vector>

#include "config/priors_config.h"
#include "priors/search.h"

namespace dirgw::priors {

struct Relevance {
  enum class Mode {
    kAny,     // no table, or the request names no exam: the rule does not apply
    kNone,    // the exam is not in the table and `unmapped: none`: no prior is relevant
    kGroups,  // the priors of `groups` only
  };
  Mode mode = Mode::kAny;
  std::vector<const config::PriorsRelevanceGroup*> groups;
  std::string rule;  // for the audit trail: "no exam named", "unmapped: all", "chest", ...
  // Whether a prior's series must be asked for their body parts (a group lists body parts).
  bool wants_series_body_parts() const;
};

// Whether a procedure code of an order ("SCHEME:CODE" or "CODE") is `entry` of the table: the
// code compared exactly, the scheme (when both have one) without regard to case.
bool procedure_matches(const std::string& entry, const std::string& code);

// The rule for an ordered exam. `table` must outlive the answer.
Relevance relevance_for(const config::PriorsConfig& table,
                        const std::vector<std::string>& procedures, const std::string& body_part);

// Why the prior is relevant ("chest: body part CHEST", "chest: procedure CPT4:71250", "chest:
// description 'CHEST'", "any: ..."), or "" when it is not. `series_body_parts`: its series' Body
// Part Examined values, when asked for.
std::string relevant_because(const Relevance& relevance, const FoundStudy& study,
                             const std::vector<std::string>& series_body_parts = {});

}  // namespace dirgw::priors
