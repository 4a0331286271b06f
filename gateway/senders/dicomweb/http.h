// The STOW-RS transport: one libcurl easy handle per Sender (its connection is reused from batch
// to batch), the body streamed from the spool by MultipartBody, the answer handed to
// parse_stow_response(). Only bytes go through here; what they mean is decided in stow.cpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

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

// The Authorization header a request to this destination carries ("" when none): an OAuth2
// token from the provider, or a bearer token re-read from its file for every request (a token
// renewed on disk is used at once). One function for the STOW-RS, notification and QIDO-RS
// (verification) paths, so all check the token alike. Errors: kRefused when the token cannot be
// had for good (the destination should pause: authentication), kNetwork/kIo when it may work
// later.
inline constexpr std::string_view kBearerPrefix = "Authorization: Bearer ";
Result<std::string> authorization_header(const StowRsOptions& opts);

// A response's Retry-After (RFC 9110 section 10.2.3), for every HTTP request dirgw makes (STOW-RS,
// QIDO-RS, the OAuth2 token endpoint, notifications): fed each header line by libcurl, it keeps
// the last response's value (a new status line, after a 100 Continue say, starts afresh).
struct RetryAfterHeader {
  std::string value;
  void on_line(std::string_view line);
  // The delay it asks for (parse_retry_after: seconds or HTTP-date), none without a usable one.
  std::optional<std::chrono::milliseconds> delay(std::chrono::system_clock::time_point now) const;
};
// A CURLOPT_HEADERFUNCTION; CURLOPT_HEADERDATA is the RetryAfterHeader*.
std::size_t collect_retry_after(char* data, std::size_t size, std::size_t nitems, void* header);

}  // namespace dirgw::senders::dicomweb
