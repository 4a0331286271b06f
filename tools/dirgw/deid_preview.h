// `dirgw deid preview FILE --destination NAME`: what the destination's de-identification would
// change in FILE, attribute by attribute, without sending or storing anything. Runs in the CLI
// (no daemon): it reads the configuration and the existing key file, so it needs the rights of
// the dirgw user (or root).
#pragma once

#include <string>

namespace dirgw::cli {

// Exit status: 0 previewed, 1 refused (the reasons printed) or failed, 2 usage.
int deid_preview(const std::string& config_file, const std::string& destination,
                 const std::string& file, bool as_json);

}  // namespace dirgw::cli
