// libFuzzer target: the STOW-RS answer parser (gateway/senders/dicomweb/stow.h) on arbitrary
// response bodies, under several HTTP statuses and content types, and Retry-After values.
// Besides crashes, hangs and sanitizer reports, it checks the parser's promises:
//   - one InstanceResult per sent item, in the same order, with the sent UID;
//   - the request's kind is aggregate_kind() of its instances;
//   - an instance is accepted only under 2xx or 4xx (docs/stow-rs.md) and with evidence in the
//   body;
//   - messages and reasons are our own words (printable ASCII), never a copy of the body;
//   - Retry-After is never negative and never more than 24 hours.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "senders/dicomweb/stow.h"

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

  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
  auto after = stow::parse_retry_after(body.substr(0, 128), now);
  if (after) {
    FUZZ_CHECK(after->count() >= 0 && *after <= std::chrono::hours(24), "Retry-After out of range");
  }
  return 0;
}
