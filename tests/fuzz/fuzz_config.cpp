// libFuzzer target: the configuration loader (dirgw::config::load_string) on arbitrary YAML.
// The configuration is written by an administrator, not an attacker, but `dirgw config check`
// must report a broken file, never crash on it. Checks besides crashes and hangs:
//   - a load either gives a configuration or at least one error, never neither;
//   - every error has a message and a non-negative line, and formats.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/config.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string yaml(reinterpret_cast<const char*>(data), size);
  const auto r = dirgw::config::load_string(yaml, "fuzz.yaml");
  FUZZ_CHECK(r.ok() || !r.errors.empty(), "a failed load without an error");
  FUZZ_CHECK(!r.ok() || r.config.has_value(), "ok without a configuration");
  for (const auto& e : r.errors) {
    FUZZ_CHECK(!e.message.empty(), "an error without a message");
    FUZZ_CHECK(e.line >= 0, "negative line number");
    (void)e.to_string("fuzz.yaml");
  }
  return 0;
}
