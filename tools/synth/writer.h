// Writes one synthetic series as Part-10 files, one instance in memory at a time, and appends its
// manifest line. Failures come back as a message; nothing here throws past generate().
#pragma once

#include <string>

#include "options.h"

namespace dirgw::synth {

struct GenerateOutcome {
  bool ok = false;
  std::string study_uid;  // when ok
  std::string error;      // when !ok
};

GenerateOutcome generate(const Options& options);

}  // namespace dirgw::synth
