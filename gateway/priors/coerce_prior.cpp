#include "priors/coerce_prior.h"

#include <dcmtk/dcmdata/dctk.h>

#include <algorithm>

#include "common/dcmtk_guard.h"
#include "policy/coerce/coerce.h"

namespace dirgw::priors {

namespace {

constexpr Uint32 kReadLimit = 4096;

std::string text_of(DcmItem& ds, const DcmTagKey& key) {
  OFString v;
  if (ds.findAndGetOFStringArray(key, v).bad()) return {};
  std::string s(v.c_str());
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

}  // namespace

Result<PriorHeader> read_prior_header(const std::filesystem::path& path) {
  DcmFileFormat file;
  OFCondition c = dcmtk_guard([&] {
    return file.loadFile(OFFilename(path.c_str()), EXS_Unknown, EGL_noChange, kReadLimit);
  });
  if (c.bad() || file.getDataset() == nullptr)
    return make_error(ErrorCode::kBadDicom, std::string("cannot parse the prior: ") + c.text());
  PriorHeader h;
  h.institution = text_of(*file.getDataset(), DCM_InstitutionName);
  h.series_description = text_of(*file.getDataset(), DCM_SeriesDescription);
  return h;
}

Result<void> coerce_prior(const std::filesystem::path& in_path,
                          const std::filesystem::path& out_path, const PriorHeader& header,
                          const LocalIdentity& id,
                          std::chrono::system_clock::time_point modified_at) {
  policy::CoercionRules rules;
  rules.facility = id.facility;
  rules.issuer_of_patient_id = id.mrn_issuer;
  rules.set_attributes.emplace_back(policy::Tag{0x0010, 0x0020}, id.mrn);
  const std::string& prefix = id.series_description_prefix;
  // A description in another character set keeps its value: coercion stamps printable ASCII only.
  const bool ascii = std::all_of(header.series_description.begin(), header.series_description.end(),
                                 [](char c) { return c >= 0x20 && c < 0x7F && c != '\\'; });
  if (!prefix.empty() && ascii && header.series_description.rfind(prefix, 0) != 0)
    rules.set_attributes.emplace_back(policy::Tag{0x0008, 0x103E},
                                      (prefix + header.series_description).substr(0, 64));
  // The repository filed the study under the health number: kept as an Other Patient IDs item
  // (added when the object has none for that issuer).
  rules.fill_health_number_from_mrn = !id.health_number.empty();
  rules.health_number_issuer = id.health_number_issuer;
  const std::string hn = id.health_number;
  auto coerced = policy::coerce_file(
      in_path, out_path, rules,
      [hn](const std::string&, const std::string&) { return std::optional<std::string>(hn); },
      modified_at);
  if (!coerced) return coerced.error();
  if (!coerced->changed) {
    // Already in the local domain (it came from here after all): store it as it is.
    std::error_code ec;
    std::filesystem::copy_file(in_path, out_path, std::filesystem::copy_options::overwrite_existing,
                               ec);
    if (ec) return make_error(ErrorCode::kIo, "cannot copy the prior: " + ec.message());
  }
  return {};
}

}  // namespace dirgw::priors
