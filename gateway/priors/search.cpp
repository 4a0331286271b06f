#include "priors/search.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

#include "common/uid.h"

namespace dirgw::priors {

namespace {

// Every string value of a tag ("00080061") in a DICOM JSON dataset.
std::vector<std::string> strings_of(const nlohmann::json& ds, const char* tag) {
  std::vector<std::string> out;
  auto it = ds.find(tag);
  if (it == ds.end() || !it->is_object()) return out;
  auto v = it->find("Value");
  if (v == it->end() || !v->is_array()) return out;
  for (const auto& x : *v)
    if (x.is_string()) out.push_back(x.get<std::string>());
  return out;
}

std::string first_of(const nlohmann::json& ds, const char* tag) {
  auto all = strings_of(ds, tag);
  return all.empty() ? std::string() : all.front();
}

std::string folded(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string percent_encode(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string study_search_url(std::string_view base, std::string_view health_number,
                             std::string_view since_date, int limit) {
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);
  std::string url = std::string(base) + "/studies?PatientID=" + percent_encode(health_number);
  if (!since_date.empty()) url += "&StudyDate=" + percent_encode(since_date) + "-";
  // Modalities in Study, Institution Name, Issuer of Patient ID, Study Date.
  url +=
      "&includefield=00080061&includefield=00080080&includefield=00100021"
      "&includefield=00080020&limit=" +
      std::to_string(limit);
  return url;
}

Result<std::vector<FoundStudy>> parse_study_search(int http_status, std::string_view body) {
  std::vector<FoundStudy> out;
  if (http_status == 204) return out;
  if (http_status == 401 || http_status == 403)
    return make_error(ErrorCode::kRefused,
                      "QIDO-RS refused our credentials (HTTP " + std::to_string(http_status) + ")");
  if (http_status >= 400 && http_status < 500 && http_status != 408 && http_status != 429)
    return make_error(ErrorCode::kRefused,
                      "QIDO-RS study search refused (HTTP " + std::to_string(http_status) + ")");
  if (http_status != 200)
    return make_error(ErrorCode::kNetwork, "QIDO-RS answered HTTP " + std::to_string(http_status));
  const std::string_view trimmed = body.substr(0, body.find_last_not_of(" \t\r\n") + 1);
  if (trimmed.empty()) return out;
  auto doc = nlohmann::json::parse(trimmed, nullptr, false);
  if (doc.is_discarded() || !doc.is_array())
    return make_error(ErrorCode::kProtocol, "QIDO-RS answer is not a DICOM JSON array");
  for (const auto& ds : doc) {
    if (!ds.is_object()) continue;
    FoundStudy s;
    s.study_uid = first_of(ds, "0020000D");
    if (!uid_syntax_ok(s.study_uid)) continue;
    s.study_date = first_of(ds, "00080020");
    s.modalities = strings_of(ds, "00080061");
    s.institution = first_of(ds, "00080080");
    s.issuer = first_of(ds, "00100021");
    out.push_back(std::move(s));
  }
  return out;
}

bool institution_matches(std::string_view institution, const std::vector<std::string>& names) {
  const std::string f = folded(institution);
  if (f.empty()) return false;
  return std::any_of(names.begin(), names.end(),
                     [&](const std::string& n) { return folded(n) == f; });
}

std::vector<FoundStudy> select_priors(std::vector<FoundStudy> found, const Rules& rules) {
  std::vector<FoundStudy> out;
  for (auto& s : found) {
    if (!rules.since_date.empty() && (s.study_date.empty() || s.study_date < rules.since_date))
      continue;
    if (!rules.modalities.empty() &&
        std::none_of(s.modalities.begin(), s.modalities.end(), [&](const std::string& m) {
          return std::find(rules.modalities.begin(), rules.modalities.end(), m) !=
                 rules.modalities.end();
        }))
      continue;
    if (institution_matches(s.institution, rules.skip_institutions)) continue;
    if (!s.issuer.empty() && !rules.health_number_issuer.empty() &&
        s.issuer != rules.health_number_issuer)
      continue;
    if (std::any_of(out.begin(), out.end(),
                    [&](const FoundStudy& o) { return o.study_uid == s.study_uid; }))
      continue;
    out.push_back(std::move(s));
  }
  std::stable_sort(out.begin(), out.end(), [](const FoundStudy& a, const FoundStudy& b) {
    return a.study_date > b.study_date;
  });
  if (out.size() > static_cast<std::size_t>(std::max(rules.max_studies, 0)))
    out.resize(static_cast<std::size_t>(std::max(rules.max_studies, 0)));
  return out;
}

}  // namespace dirgw::priors
