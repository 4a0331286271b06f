// Command line of dirgw-synth: parsing and validation into an immutable Options value. Everything
// that can be wrong with the arguments is found here, before any file is written.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "profile.h"

namespace dirgw::synth {

inline constexpr int kMaxInstances = 99999;                // file names carry a 5-digit counter
inline constexpr std::uint32_t kMaxPatientIndex = 999999;  // keeps every UID within 64 chars

enum class TransferSyntax { kExplicit, kImplicit, kDeflated };

struct HealthNumber {
  enum class Mode { kGenerate, kGiven, kNone };
  Mode mode = Mode::kGenerate;
  std::string given;  // only for kGiven; deliberately not checked, tests pass invalid ones
};

struct Options {
  std::filesystem::path out;
  Profile profile{};
  int instances = 0;
  int rows = 0;
  int cols = 0;
  int frames = 1;
  std::uint32_t seed = 1;
  std::optional<std::string> study_uid;
  std::uint32_t patient_index = 0;
  TransferSyntax transfer_syntax = TransferSyntax::kExplicit;
  std::optional<std::filesystem::path> manifest;
  HealthNumber health_number;
  std::optional<std::string> accession;
};

struct ParseOutcome {
  enum class Kind { kRun, kHelp, kUsageError };
  Kind kind = Kind::kUsageError;
  std::optional<Options> options;  // set for kRun
  std::string error;               // set for kUsageError
};

ParseOutcome parse_options(int argc, const char* const* argv);
std::string usage_text();

}  // namespace dirgw::synth
