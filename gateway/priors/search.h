// Priors (issue 18, docs/priors.md), the pure part: the QIDO-RS study search URL, reading its
// answer, and the rules that choose which studies are fetched. Bytes and values in, values out;
// no I/O (repository.h carries the bytes).
//   GET {base}/studies?PatientID={health number}&includefield=...&limit=N
// The health number goes into the URL percent-encoded; it is never logged.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace dirgw::priors {

// One study of a QIDO-RS answer. Patient values (the issuer) are only compared, never logged.
struct FoundStudy {
  std::string study_uid;
  std::string study_date;               // YYYYMMDD, "" when not given
  std::vector<std::string> modalities;  // Modalities in Study (0008,0061)
  std::string institution;              // Institution Name (0008,0080), when listed
  std::string issuer;                   // Issuer of Patient ID (0010,0021), when listed
  // For the body part / procedure rule (relevance.h), when the repository lists them:
  std::string description;              // Study Description (0008,1030)
  std::vector<std::string> body_parts;  // Body Part Examined (0018,0015), Orthanc: of one series
  std::vector<std::string> procedures;  // Procedure Code Sequence (0008,1032) as SCHEME:CODE
};

std::string percent_encode(std::string_view value);

// The study search for one patient's health number, studies on or after since_date (YYYYMMDD).
// With `relevance_fields`, it also asks for what the body part / procedure rule reads (Study
// Description, Procedure Code Sequence, Body Part Examined).
std::string study_search_url(std::string_view base, std::string_view health_number,
                             std::string_view since_date, int limit, bool relevance_fields = false);

// The series search of one study, for their Body Part Examined (a study-level answer lists at
// most one series' value, or none).
std::string series_body_part_url(std::string_view base, std::string_view study_uid);
// 200 with a DICOM JSON array, or 204: every Body Part Examined value of the series, once each.
Result<std::vector<std::string>> parse_series_body_parts(int http_status, std::string_view body);

// 200 with a DICOM JSON array, or 204: the studies (without a well-formed Study UID: dropped).
Result<std::vector<FoundStudy>> parse_study_search(int http_status, std::string_view body);

struct Rules {
  std::vector<std::string> modalities;         // empty: any
  std::string since_date;                      // YYYYMMDD; studies before it are not priors
  int max_studies = 10;                        // most recent first
  std::vector<std::string> skip_institutions;  // this facility's names (trimmed, any case)
  std::string health_number_issuer;            // a listed issuer other than this: not the patient
};

// Whether an Institution Name is one of `names` (trimmed, case-insensitive).
bool institution_matches(std::string_view institution, const std::vector<std::string>& names);

// A listed study a rule left out, and which: "date", "modality", "this-facility", "issuer",
// "duplicate", "max-studies" (and the worker's "relevance").
struct Skipped {
  std::string study_uid;
  std::string rule;
};

struct Selection {
  std::vector<FoundStudy> selected;  // most recent first
  std::vector<Skipped> skipped;      // in the order listed
};

// The studies to fetch, most recent first: in the date range, of a wanted modality, not from this
// facility (when the repository says so), at most max_studies; and why each other one is not.
Selection select_priors_explained(std::vector<FoundStudy> found, const Rules& rules);
// The same, without the reasons.
std::vector<FoundStudy> select_priors(std::vector<FoundStudy> found, const Rules& rules);

}  // namespace dirgw::priors
