#include "priors/search.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

#include "common/text.h"
#include "common/uid.h"

namespace dirgw::priors {

namespace {

// The Value array of a tag ("00080061") in a DICOM JSON dataset; null when there is none.
const nlohmann::json* values_of(const nlohmann::json& ds, const char* tag) {
  auto it = ds.find(tag);
  if (it == ds.end() || !it->is_object()) return nullptr;
  auto v = it->find("Value");
  return v == it->end() || !v->is_array() ? nullptr : &*v;
}

// Every string value of a tag.
std::vector<std::string> strings_of(const nlohmann::json& ds, const char* tag) {
  std::vector<std::string> out;
  if (const auto* v = values_of(ds, tag))
    for (const auto& x : *v)
      if (x.is_string()) out.push_back(x.get<std::string>());
  return out;
}

std::string first_of(const nlohmann::json& ds, const char* tag) {
  auto all = strings_of(ds, tag);
  return all.empty() ? std::string() : all.front();
}

// "SCHEME:CODE" of every item of a code sequence ("00081032"), "CODE" without a scheme.
std::vector<std::string> codes_of(const nlohmann::json& ds, const char* tag) {
  std::vector<std::string> out;
  const auto* items = values_of(ds, tag);
  if (items == nullptr) return out;
  for (const auto& item : *items) {
    if (!item.is_object()) continue;
    const std::string code = first_of(item, "00080100"), scheme = first_of(item, "00080102");
    if (!code.empty()) out.push_back(scheme.empty() ? code : scheme + ":" + code);
  }
  return out;
}

// A QIDO-RS answer's datasets: 204 or an empty body is none; an error for what is no answer.
Result<nlohmann::json> qido_array(int http_status, std::string_view body, const char* what) {
  if (http_status == 204) return nlohmann::json::array();
  if (http_status == 401 || http_status == 403)
    return make_error(ErrorCode::kRefused,
                      "QIDO-RS refused our credentials (HTTP " + std::to_string(http_status) + ")");
  if (http_status >= 400 && http_status < 500 && http_status != 408 && http_status != 429)
    return make_error(ErrorCode::kRefused, std::string("QIDO-RS ") + what + " refused (HTTP " +
                                               std::to_string(http_status) + ")");
  if (http_status != 200)
    return make_error(ErrorCode::kNetwork, "QIDO-RS answered HTTP " + std::to_string(http_status));
  const std::string_view trimmed = trim_whitespace(body);
  if (trimmed.empty()) return nlohmann::json::array();
  auto doc = nlohmann::json::parse(trimmed, nullptr, false);
  if (doc.is_discarded() || !doc.is_array())
    return make_error(ErrorCode::kProtocol, "QIDO-RS answer is not a DICOM JSON array");
  return doc;
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
                             std::string_view since_date, int limit, bool relevance_fields) {
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);
  std::string url = std::string(base) + "/studies?PatientID=" + percent_encode(health_number);
  if (!since_date.empty()) url += "&StudyDate=" + percent_encode(since_date) + "-";
  // Modalities in Study, Institution Name, Issuer of Patient ID, Study Date.
  url +=
      "&includefield=00080061&includefield=00080080&includefield=00100021"
      "&includefield=00080020";
  // Study Description, Procedure Code Sequence, Body Part Examined.
  if (relevance_fields) url += "&includefield=00081030&includefield=00081032&includefield=00180015";
  return url + "&limit=" + std::to_string(limit);
}

std::string series_body_part_url(std::string_view base, std::string_view study_uid) {
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);
  return std::string(base) + "/studies/" + percent_encode(study_uid) +
         "/series?includefield=00180015";
}

Result<std::vector<std::string>> parse_series_body_parts(int http_status, std::string_view body) {
  auto doc = qido_array(http_status, body, "series search");
  if (!doc) return doc.error();
  std::vector<std::string> out;
  for (const auto& ds : *doc) {
    if (!ds.is_object()) continue;
    for (auto& v : strings_of(ds, "00180015")) {
      const std::string part(trim_dicom(v));
      if (!part.empty() && std::find(out.begin(), out.end(), part) == out.end())
        out.push_back(part);
    }
  }
  return out;
}

Result<std::vector<FoundStudy>> parse_study_search(int http_status, std::string_view body) {
  auto doc = qido_array(http_status, body, "study search");
  if (!doc) return doc.error();
  std::vector<FoundStudy> out;
  for (const auto& ds : *doc) {
    if (!ds.is_object()) continue;
    FoundStudy s;
    s.study_uid = first_of(ds, "0020000D");
    if (!uid_syntax_ok(s.study_uid)) continue;
    s.study_date = first_of(ds, "00080020");
    s.modalities = strings_of(ds, "00080061");
    s.institution = first_of(ds, "00080080");
    s.issuer = first_of(ds, "00100021");
    s.description = first_of(ds, "00081030");
    for (auto& v : strings_of(ds, "00180015"))
      if (!trim_dicom(v).empty()) s.body_parts.emplace_back(trim_dicom(v));
    s.procedures = codes_of(ds, "00081032");
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

namespace {

// The rule that leaves the study out, or "".
const char* excluded_by(const FoundStudy& s, const Rules& rules) {
  if (!rules.since_date.empty() && (s.study_date.empty() || s.study_date < rules.since_date))
    return "date";
  if (!rules.modalities.empty() &&
      std::none_of(s.modalities.begin(), s.modalities.end(), [&](const std::string& m) {
        return std::find(rules.modalities.begin(), rules.modalities.end(), m) !=
               rules.modalities.end();
      }))
    return "modality";
  if (institution_matches(s.institution, rules.skip_institutions)) return "this-facility";
  if (!s.issuer.empty() && !rules.health_number_issuer.empty() &&
      s.issuer != rules.health_number_issuer)
    return "issuer";
  return "";
}

}  // namespace

Selection select_priors_explained(std::vector<FoundStudy> found, const Rules& rules) {
  Selection out;
  for (auto& s : found) {
    std::string rule = excluded_by(s, rules);
    if (rule.empty() &&
        std::any_of(out.selected.begin(), out.selected.end(),
                    [&](const FoundStudy& o) { return o.study_uid == s.study_uid; }))
      rule = "duplicate";
    if (!rule.empty()) {
      out.skipped.push_back({s.study_uid, std::move(rule)});
      continue;
    }
    out.selected.push_back(std::move(s));
  }
  std::stable_sort(
      out.selected.begin(), out.selected.end(),
      [](const FoundStudy& a, const FoundStudy& b) { return a.study_date > b.study_date; });
  const auto max = static_cast<std::size_t>(std::max(rules.max_studies, 0));
  for (std::size_t i = max; i < out.selected.size(); ++i)
    out.skipped.push_back({out.selected[i].study_uid, "max-studies"});
  if (out.selected.size() > max) out.selected.resize(max);
  return out;
}

std::vector<FoundStudy> select_priors(std::vector<FoundStudy> found, const Rules& rules) {
  return select_priors_explained(std::move(found), rules).selected;
}

}  // namespace dirgw::priors
