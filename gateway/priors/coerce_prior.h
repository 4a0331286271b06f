// A retrieved prior made into the local domain (issue 18, docs/priors.md), through the project's
// coercion (policy/coerce): Patient ID and Issuer of Patient ID become the local MRN, their old
// values go into Original Attributes Sequence, the health number the repository filed the study
// under is kept in Other Patient IDs Sequence, Institution Name is left as the origin wrote it, and
// Series Description optionally gets a prefix that marks the series as an outside prior.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>

#include "common/result.h"

namespace dirgw::priors {

struct LocalIdentity {
  std::string mrn, mrn_issuer;                      // the local domain's
  std::string health_number, health_number_issuer;  // the repository's
  std::string series_description_prefix;            // "" : series descriptions unchanged
  std::string facility;                             // Source of Previous Values
};

struct PriorHeader {
  std::string institution;  // Institution Name (0008,0080) as the origin wrote it
  std::string series_description;
};

// Reads the few values the worker needs (values above 4 KiB stay on disk). kBadDicom when DCMTK
// cannot parse the object (it passed the pre-scan first).
Result<PriorHeader> read_prior_header(const std::filesystem::path& path);

// Writes the coerced copy of in_path to out_path durably.
Result<void> coerce_prior(const std::filesystem::path& in_path,
                          const std::filesystem::path& out_path, const PriorHeader& header,
                          const LocalIdentity& identity,
                          std::chrono::system_clock::time_point modified_at);

}  // namespace dirgw::priors
