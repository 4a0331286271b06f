// Small JSON shapes shared by several replies.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "catalog/types.h"
#include "common/clock.h"

namespace dirgw::control::commands {

inline nlohmann::json state_counts(const std::vector<catalog::StateCount>& states) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : states)
    out.push_back({{"state", s.state}, {"studies", s.studies}, {"instances", s.instances}});
  return out;
}

// A time, or null for "never" (0 or less).
inline nlohmann::json time_or_null(std::int64_t ms) {
  if (ms <= 0) return nullptr;
  return format_utc_ms(ms);
}

inline nlohmann::json error_reply(const std::string& error) {
  return {{"ok", false}, {"error", error}};
}

}  // namespace dirgw::control::commands
