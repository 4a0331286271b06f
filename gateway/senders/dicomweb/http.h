// The STOW-RS transport: one libcurl easy handle per Sender (its connection is reused from batch
// to batch), the body streamed from the spool by MultipartBody, the answer handed to
// parse_stow_response(). Only bytes go through here; what they mean is decided in stow.cpp.
#pragma once

#include <cstddef>
#include <string>

#include "senders/sender.h"

namespace dirgw::senders::dicomweb {

// Answers longer than this are not kept; the request is retried (a Store Instances Response for
// a few thousand instances is well under 1 MiB).
inline constexpr std::size_t kMaxAnswerBytes = std::size_t{8} * 1024 * 1024;

// What a libcurl failure means for the batch. `curl_code` is a CURLcode (kept as int so that
// this header does not pull in curl.h).
struct TransportVerdict {
  InstanceStatus status;  // kRetry or kPermanent
  std::string message;    // short, for people; no patient data
};
TransportVerdict classify_curl_error(int curl_code);

}  // namespace dirgw::senders::dicomweb
