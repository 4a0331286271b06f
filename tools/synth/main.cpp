// dirgw-synth: writes synthetic DICOM studies for the demo, the integration tests and benchmarks.
// Usage and behaviour: docs/synth.md, or dirgw-synth --help.
#include <cstdio>
#include <iostream>

#include "options.h"
#include "writer.h"

int main(int argc, char** argv) {
  using dirgw::synth::ParseOutcome;
  const ParseOutcome parsed = dirgw::synth::parse_options(argc, argv);
  switch (parsed.kind) {
    case ParseOutcome::Kind::kHelp:
      std::cout << dirgw::synth::usage_text();
      return 0;
    case ParseOutcome::Kind::kUsageError:
      std::cerr << "dirgw-synth: " << parsed.error << "\n(see dirgw-synth --help)\n";
      return 2;
    case ParseOutcome::Kind::kRun:
      break;
  }
  const dirgw::synth::GenerateOutcome outcome = dirgw::synth::generate(*parsed.options);
  if (!outcome.ok) {
    std::cerr << "dirgw-synth: " << outcome.error << "\n";
    return 1;
  }
  std::cout << outcome.study_uid << "\n";
  return std::cout.flush() ? 0 : 1;
}
