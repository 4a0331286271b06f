#include "verify/qido.h"

#include <nlohmann/json.hpp>

#include "common/uid.h"

namespace dirgw::verify {

namespace {

std::string trimmed_base(std::string_view base) {
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);
  return std::string(base);
}

std::string paging(int limit, int offset) {
  return "limit=" + std::to_string(limit) + "&offset=" + std::to_string(offset);
}

// The first value of a tag ("0020000D") in a DICOM JSON dataset, "" when absent.
std::string first_string(const nlohmann::json& ds, const char* tag) {
  auto it = ds.find(tag);
  if (it == ds.end() || !it->is_object()) return {};
  auto v = it->find("Value");
  if (v == it->end() || !v->is_array() || v->empty() || !(*v)[0].is_string()) return {};
  return (*v)[0].get<std::string>();
}

}  // namespace

std::string series_url(std::string_view base, std::string_view study_uid, int limit, int offset) {
  return trimmed_base(base) + "/studies/" + std::string(study_uid) + "/series?" +
         paging(limit, offset);
}

std::string instances_url(std::string_view base, std::string_view study_uid,
                          std::string_view series_uid, int limit, int offset) {
  return trimmed_base(base) + "/studies/" + std::string(study_uid) + "/series/" +
         std::string(series_uid) + "/instances?includefield=00080016&" + paging(limit, offset);
}

std::string instance_search_url(std::string_view base, std::string_view sop_instance_uid) {
  return trimmed_base(base) + "/instances?SOPInstanceUID=" + std::string(sop_instance_uid) +
         "&includefield=00080016";
}

Result<QidoPage> parse_qido(int http_status, std::string_view body) {
  QidoPage page;
  if (http_status == 204) return page;
  if (http_status == 401 || http_status == 403)
    return make_error(ErrorCode::kRefused,
                      "QIDO-RS refused our credentials (HTTP " + std::to_string(http_status) + ")");
  if (http_status == 404 || http_status == 405 || http_status == 501)
    return make_error(ErrorCode::kRefused, "QIDO-RS not offered by the repository (HTTP " +
                                               std::to_string(http_status) + ")");
  if (http_status != 200)
    return make_error(ErrorCode::kNetwork, "QIDO-RS answered HTTP " + std::to_string(http_status));
  const std::string_view trimmed = body.substr(0, body.find_last_not_of(" \t\r\n") + 1);
  if (trimmed.empty()) return page;
  auto doc = nlohmann::json::parse(trimmed, nullptr, false);
  if (doc.is_discarded() || !doc.is_array())
    return make_error(ErrorCode::kNetwork, "QIDO-RS answer is not a DICOM JSON array");
  for (const auto& ds : doc) {
    if (!ds.is_object()) continue;
    Listed l;
    l.study_uid = first_string(ds, "0020000D");
    l.series_uid = first_string(ds, "0020000E");
    l.sop_instance_uid = first_string(ds, "00080018");
    l.sop_class_uid = first_string(ds, "00080016");
    page.entries.push_back(std::move(l));
  }
  return page;
}

}  // namespace dirgw::verify
