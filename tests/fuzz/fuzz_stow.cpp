// libFuzzer target: the STOW-RS answer parser (gateway/senders/dicomweb/stow.h) on arbitrary
// response bodies, under several HTTP statuses and content types, and Retry-After values.
// Besides crashes, hangs and sanitizer reports, it checks the parser's promises:
//   - one InstanceResult per sent item, in the same order, with the sent UID;
//   - the request's kind is aggregate_kind() of its instances;
//   - an instance is accepted only under 2xx or 4xx (docs/stow-rs.md) and with evidence in the
//   body;
//   - messages and reasons are our own words (printable ASCII), never a copy of the body;
//   - Retry-After is never negative and never more than 24 hours;
//   - a DICOM JSON answer, read as a stream of events (stow_answer.cpp), says what the same
//     body read as a document tree (nlohmann::json, as the parser did before) says.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <optional>

#include "fuzz_check.h"
#include "senders/dicomweb/stow.h"
#include "senders/dicomweb/stow_answer.h"

namespace stow = dirgw::senders::dicomweb;
using dirgw::fuzz::printable_ascii;
using dirgw::senders::InstanceStatus;
using dirgw::senders::Item;

namespace {

// The seeds in tests/data/stow refer to these UIDs, so matching paths are reached.
const std::vector<Item>& batch() {
  static const std::vector<Item> items = {
      {"1.2.826.0.1.3680043.10.1001.1", "1.2.840.10008.5.1.4.1.1.7", "/nonexistent/1", 1},
      {"1.2.826.0.1.3680043.10.1001.2", "1.2.840.10008.5.1.4.1.1.7", "/nonexistent/2", 1},
      {"1.2.826.0.1.3680043.10.1001.3", "1.2.840.10008.5.1.4.1.1.2", "/nonexistent/3", 1},
  };
  return items;
}

void check(const dirgw::senders::Outcome& out, int status, std::string_view body,
           const std::vector<Item>& sent) {
  FUZZ_CHECK(out.instances.size() == sent.size(), "not one result per sent instance");
  for (std::size_t i = 0; i < sent.size(); ++i) {
    const auto& r = out.instances[i];
    FUZZ_CHECK(r.sop_instance_uid == sent[i].sop_instance_uid, "results out of order");
    FUZZ_CHECK(printable_ascii(r.reason), "an instance reason carries body bytes");
    if (r.status == InstanceStatus::kAccepted) {
      // docs/stow-rs.md: a Store Instances Response is read per instance under 2xx and under 4xx
      // (Orthanc answers 400 yet stores the good parts), never under 3xx, 408, 429 or 5xx.
      FUZZ_CHECK((status >= 200 && status <= 299) ||
                     (status >= 400 && status <= 499 && status != 408 && status != 429),
                 "accepted under a status that carries no per-instance answer");
      // Evidence: the UID is in the body, literally or (XML) written with character references.
      FUZZ_CHECK(body.find(r.sop_instance_uid) != std::string_view::npos ||
                     body.find('&') != std::string_view::npos ||
                     body.find('\\') != std::string_view::npos,
                 "accepted without the UID in the answer");
    }
  }
  FUZZ_CHECK(out.kind == stow::aggregate_kind(out.instances),
             "kind is not the instances' aggregate");
  FUZZ_CHECK(out.http_status == status, "HTTP status not kept");
  FUZZ_CHECK(printable_ascii(out.message), "message carries body bytes");
  FUZZ_CHECK(out.message.size() < 512, "message grows with the body");
}

// The reference: the module's two sequences read from a document tree (last value of a repeated
// key, as nlohmann::json keeps it; a one-element top-level array unwrapped; nesting deeper than
// 64 unreadable).
namespace detail = dirgw::senders::dicomweb::detail;
using Json = nlohmann::json;

const Json* first_value(const Json& dataset, const char* tag) {
  if (!dataset.is_object()) return nullptr;
  auto attr = dataset.find(tag);
  if (attr == dataset.end() || !attr->is_object()) return nullptr;
  auto value = attr->find("Value");
  if (value == attr->end() || !value->is_array() || value->empty()) return nullptr;
  return &(*value)[0];
}

// Deepest nesting of arrays and objects in the text, strings skipped (checked before the tree is
// built: a tree nested thousands deep would overflow the stack when destroyed).
int nesting(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return deepest;
}

void tree_sequence(const Json& module, const char* tag, const char* reason_tag,
                   std::vector<detail::AnswerEntry>& out, std::size_t& without_uid) {
  auto attr = module.find(tag);
  if (attr == module.end() || !attr->is_object()) return;
  auto value = attr->find("Value");
  if (value == attr->end() || !value->is_array()) return;
  for (const auto& item : *value) {
    const Json* uid = first_value(item, "00081155");
    std::string cleaned = uid != nullptr && uid->is_string()
                              ? detail::clean_uid(uid->get_ref<const std::string&>())
                              : std::string();
    if (cleaned.empty()) {
      ++without_uid;
      continue;
    }
    std::optional<std::uint16_t> reason;
    if (const Json* r = first_value(item, reason_tag); r != nullptr) {
      if (r->is_number_unsigned() && r->get<std::uint64_t>() <= 0xFFFF)
        reason = static_cast<std::uint16_t>(r->get<std::uint64_t>());
      // Written with a minus sign: only -0 is in range.
      if (r->is_number_integer() && !r->is_number_unsigned() && r->get<std::int64_t>() >= 0 &&
          r->get<std::int64_t>() <= 0xFFFF)
        reason = static_cast<std::uint16_t>(r->get<std::int64_t>());
      if (r->is_string()) {
        // Text reasons go through the parser's own text reading: compare with what it gives a
        // one-item answer carrying just this text.
        Json probe = Json::object();
        probe["00081155"]["Value"] = Json::array({"1"});
        probe["00081196"]["Value"] = Json::array({*r});
        Json one = Json::object();
        one["00081199"]["Value"] = Json::array({probe});
        auto read = detail::parse_answer("application/dicom+json", one.dump());
        FUZZ_CHECK(read && read->referenced.size() == 1, "a one-item answer not read");
        reason = read->referenced[0].reason;
      }
    }
    out.push_back({cleaned, reason});
  }
}

std::optional<detail::Answer> tree_answer(std::string_view body) {
  if (nesting(body) > 64) return std::nullopt;
  Json doc = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return std::nullopt;
  if (doc.is_array() && doc.size() == 1) doc = Json(doc[0]);
  if (!doc.is_object()) return std::nullopt;
  detail::Answer a;
  a.has_module = doc.contains("00081199") || doc.contains("00081198");
  tree_sequence(doc, "00081199", "00081196", a.referenced, a.without_uid);
  tree_sequence(doc, "00081198", "00081197", a.failed, a.without_uid);
  return a;
}

bool same(const std::vector<detail::AnswerEntry>& a, const std::vector<detail::AnswerEntry>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].uid != b[i].uid || a[i].reason != b[i].reason) return false;
  return true;
}

void compare_with_tree(std::string_view body) {
  auto events = detail::parse_answer("application/dicom+json", body);
  auto tree = tree_answer(body);
  FUZZ_CHECK(events.has_value() == tree.has_value(), "readable as events but not as a tree");
  if (!events) return;
  FUZZ_CHECK(events->has_module == tree->has_module, "module found by one reading only");
  FUZZ_CHECK(events->without_uid == tree->without_uid, "items without UID counted differently");
  FUZZ_CHECK(same(events->referenced, tree->referenced), "referenced instances differ");
  FUZZ_CHECK(same(events->failed, tree->failed), "failed instances differ");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  static const int kStatuses[] = {200, 202, 409, 400, 429, 500, 302};
  static const std::string_view kTypes[] = {
      "", "application/dicom+json", "application/dicom+xml; charset=utf-8",
      "multipart/related; type=\"application/dicom+xml\"", "text/html"};
  const std::vector<Item>& full = batch();
  const std::vector<Item> one(full.begin(), full.begin() + 1);
  for (int status : kStatuses) {
    for (std::string_view type : kTypes) {
      check(stow::parse_stow_response(status, type, body, full), status, body, full);
    }
  }
  check(stow::parse_stow_response(200, "", body, one), 200, body, one);
  check(stow::parse_stow_response(202, "", body, {}), 202, body, {});
  compare_with_tree(body);

  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
  auto after = stow::parse_retry_after(body.substr(0, 128), now);
  if (after) {
    FUZZ_CHECK(after->count() >= 0 && *after <= std::chrono::hours(24), "Retry-After out of range");
  }
  return 0;
}
