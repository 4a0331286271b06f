// De-identification in the policy stage: which destinations receive de-identified copies, with
// which PS3.15 options, and the copy of one instance for one of them (a derived object in the
// spool with its pseudonymous SOP Instance UID). The key behind the pseudonyms is loaded (or
// created, 0600) once at start. The mapping between original and pseudonym is never logged.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "catalog/types.h"
#include "common/result.h"
#include "config/config.h"
#include "ingest/spool/spool.h"
#include "policy/deid/deid.h"

namespace dirgw::policy {

// The library's options for a destination's `deidentify:` block.
deid::DeidOptions deid_options(const config::Deidentify& d);

class DeidTargets {
 public:
  // No destination de-identifies: no key is read or created. Otherwise the key file
  // (config.deid_key_file, default <state_dir>/keys/deid.key) is loaded or created; kConfig when it
  // or a destination's options are unusable.
  static Result<DeidTargets> make(const config::Config& config);

  bool any() const { return !options_.empty(); }
  bool deidentifies(const std::string& destination) const { return options_.count(destination); }

  struct Copy {
    std::optional<catalog::DerivedObject> derived;  // the copy to send instead of the original
    std::string refused;  // else why not, in our words (screen reasons, never values)
  };
  // Writes the de-identified copy of `input` (the original, or its coerced copy) for
  // `destination` into the spool's derived objects. `burned_in_reviewed`: an operator reviewed
  // the instance's pixel data (dirgw quarantine release --reviewed-burned-in): the burned-in
  // screen does not refuse it.
  Copy copy(const std::string& destination, const std::filesystem::path& input,
            std::int64_t instance_id, const ingest::Spool& spool,
            bool burned_in_reviewed = false) const;

 private:
  std::optional<deid::Key> key_;
  std::map<std::string, deid::DeidOptions> options_;
};

}  // namespace dirgw::policy
