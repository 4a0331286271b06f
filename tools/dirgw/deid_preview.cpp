#include "deid_preview.h"

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "policy/deid/deid.h"
#include "policy/stage/deidentify.h"

namespace dirgw::cli {

namespace {
int fail(const std::string& why) {
  std::fprintf(stderr, "dirgw deid preview: %s\n", why.c_str());
  return 1;
}
}  // namespace

int deid_preview(const std::string& config_file, const std::string& destination,
                 const std::string& file, bool as_json) {
  auto loaded = config::load_file(config_file);
  if (!loaded.ok())
    return fail(config_file + " is not a valid configuration (see: dirgw config check " +
                config_file + ")");
  const config::Config& c = *loaded.config;
  const config::Destination* dest = nullptr;
  for (const auto& d : c.destinations)
    if (d.name == destination) dest = &d;
  if (dest == nullptr) return fail("no destination named '" + destination + "' in " + config_file);
  if (!dest->deidentify.enabled)
    return fail("destination '" + destination + "' does not de-identify (no deidentify: block)");
  const auto key_path =
      c.deid_key_file.empty() ? c.state_dir / "keys" / "deid.key" : c.deid_key_file;
  // Never create a key here: a preview made with another key than the daemon's would mislead.
  std::error_code ec;
  if (!std::filesystem::exists(key_path, ec))
    return fail("no de-identification key at " + key_path.string() +
                " yet: dirgwd creates it at its first start with a de-identifying destination");
  auto key = policy::deid::load_or_create_key(key_path);
  if (!key) return fail(key.error().to_string());
  auto report = policy::deid::preview_file(file, policy::deid_options(dest->deidentify), *key);
  if (!report) {
    if (as_json)
      std::cout << nlohmann::json{{"file", file},
                                  {"destination", destination},
                                  {"refused", report.error().code == ErrorCode::kRefused},
                                  {"error", report.error().detail}}
                       .dump(2)
                << "\n";
    return fail(report.error().detail);
  }
  if (as_json) {
    nlohmann::json changes = nlohmann::json::array();
    for (const auto& ch : report->changes) changes.push_back(policy::deid::describe(ch));
    std::cout << nlohmann::json{{"file", file}, {"destination", destination}, {"changes", changes}}
                     .dump(2)
              << "\n";
    return 0;
  }
  std::printf("%s for destination %s: %zu attribute(s) of Table E.1-1 met\n", file.c_str(),
              destination.c_str(), report->changes.size());
  for (const auto& ch : report->changes) std::printf("  %s\n", policy::deid::describe(ch).c_str());
  return 0;
}

}  // namespace dirgw::cli
