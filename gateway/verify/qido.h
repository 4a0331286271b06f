// QIDO-RS for verification (issue 15, docs/verification.md): the URLs dirgw asks and the
// answers it reads. Bytes in, typed listings out; no I/O (qido_client.h carries the bytes).
//   GET {base}/studies/{study}/series?limit=N&offset=K                      the study's series
//   GET {base}/studies/{study}/series/{series}/instances?includefield=00080016&limit=N&offset=K
//   GET {base}/instances?SOPInstanceUID={uid}&includefield=00080016         one instance anywhere
//                                                (a de-identified copy: its study UID is not ours)
// Only UIDs go into a URL, and only well-formed ones (digits and dots).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace dirgw::verify {

// One dataset of a QIDO-RS answer, as far as verification needs it.
struct Listed {
  std::string study_uid, series_uid, sop_instance_uid, sop_class_uid;
  // No size or checksum: QIDO-RS has no standard return key for either, and Orthanc lists none
  // (docs/verification.md); the SOP Class is what is compared.
};

struct QidoPage {
  std::vector<Listed> entries;
};

std::string series_url(std::string_view base, std::string_view study_uid, int limit, int offset);
std::string instances_url(std::string_view base, std::string_view study_uid,
                          std::string_view series_uid, int limit, int offset);
std::string instance_search_url(std::string_view base, std::string_view sop_instance_uid);

// A QIDO-RS answer: 200 with an application/dicom+json array of datasets, or 204 (no match).
// Anything else is an error saying why the check cannot run (never "missing"): 404/405/501 and
// the like mean QIDO-RS is not offered there, 401/403 refused credentials, 5xx try later.
Result<QidoPage> parse_qido(int http_status, std::string_view body);

}  // namespace dirgw::verify
