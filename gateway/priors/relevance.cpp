#include "priors/relevance.h"

#include <algorithm>
#include <cctype>

namespace dirgw::priors {

namespace {

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// (scheme, code) of "SCHEME:CODE"; ("", code) without a colon.
std::pair<std::string, std::string> split_code(const std::string& s) {
  const auto colon = s.find(':');
  if (colon == std::string::npos) return {"", s};
  return {s.substr(0, colon), s.substr(colon + 1)};
}

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// Why the prior belongs to `g`, or "".
std::string group_match(const config::PriorsRelevanceGroup& g, const FoundStudy& s,
                        const std::vector<std::string>& series_body_parts) {
  for (const auto* parts : {&s.body_parts, &series_body_parts})
    for (const auto& p : *parts)
      if (contains(g.body_parts, upper(p))) return g.name + ": body part " + upper(p);
  for (const auto& code : s.procedures)
    for (const auto& entry : g.procedures)
      if (procedure_matches(entry, code)) return g.name + ": procedure " + code;
  const std::string description = upper(s.description);
  for (const auto& k : g.descriptions)
    if (!description.empty() && description.find(upper(k)) != std::string::npos)
      return g.name + ": description '" + k + "'";
  return "";
}

}  // namespace

bool Relevance::wants_series_body_parts() const {
  return mode == Mode::kGroups &&
         std::any_of(groups.begin(), groups.end(),
                     [](const config::PriorsRelevanceGroup* g) { return !g->body_parts.empty(); });
}

bool procedure_matches(const std::string& entry, const std::string& code) {
  const auto [entry_scheme, entry_code] = split_code(entry);
  const auto [scheme, value] = split_code(code);
  if (entry_code != value) return false;
  return entry_scheme.empty() || scheme.empty() || upper(entry_scheme) == upper(scheme);
}

Relevance relevance_for(const config::PriorsConfig& table,
                        const std::vector<std::string>& procedures, const std::string& body_part) {
  Relevance r;
  if (table.relevance.empty()) {
    r.rule = "no body part / procedure table";
    return r;
  }
  if (procedures.empty() && body_part.empty()) {
    r.rule = "no exam named";
    return r;
  }
  const std::string part = upper(body_part);
  for (const auto& g : table.relevance) {
    const bool by_code = std::any_of(procedures.begin(), procedures.end(), [&](const auto& code) {
      return std::any_of(g.procedures.begin(), g.procedures.end(),
                         [&](const std::string& e) { return procedure_matches(e, code); });
    });
    if (by_code || (!part.empty() && contains(g.body_parts, part))) r.groups.push_back(&g);
  }
  if (!r.groups.empty()) {
    r.mode = Relevance::Mode::kGroups;
    for (const auto* g : r.groups) r.rule += (r.rule.empty() ? "" : ",") + g->name;
    return r;
  }
  r.mode = table.relevance_unmapped_all ? Relevance::Mode::kAny : Relevance::Mode::kNone;
  r.rule = table.relevance_unmapped_all ? "unmapped: all" : "unmapped: none";
  return r;
}

std::string relevant_because(const Relevance& r, const FoundStudy& study,
                             const std::vector<std::string>& series_body_parts) {
  switch (r.mode) {
    case Relevance::Mode::kAny:
      return "any: " + r.rule;
    case Relevance::Mode::kNone:
      return "";
    case Relevance::Mode::kGroups:
      break;
  }
  for (const auto* g : r.groups)
    if (auto why = group_match(*g, study, series_body_parts); !why.empty()) return why;
  return "";
}

}  // namespace dirgw::priors
