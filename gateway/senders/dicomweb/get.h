// One HTTP GET to a DICOMweb repository (QIDO-RS searches of verification and priors, WADO-RS
// retrievals of priors) on the caller's libcurl handle: the shared TLS set-up (curl_tls.h), the
// destination's credentials (authorization_header, a rejected OAuth2 token invalidated on 401),
// the Content-Type and Retry-After of the answer, and its body handed to the caller as it arrives.
// One place, so that the GET paths cannot drift apart; what the bytes mean is the caller's.
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "senders/sender.h"

namespace dirgw::senders::dicomweb {

struct GetAnswer {
  // Failure when there is no HTTP answer: credentials not to be had, an option libcurl refused,
  // the transfer failed (kNetwork, kTimeout), or the body sink stopped it (kProtocol: the sink
  // knows why).
  Result<void> transfer;
  long status = 0;
  std::string content_type;
  // What a 429/503 answer's Retry-After asks for, or the token endpoint's when the credentials
  // could not be had.
  std::optional<std::chrono::milliseconds> retry_after;
};

// Gets the body bytes as they arrive, with the answer's status and Content-Type known; returning
// false stops the transfer.
using BodySink = std::function<bool(std::string_view bytes, const GetAnswer& head)>;

struct GetRequest {
  std::string url;
  std::string accept;  // the Accept header's value
  std::chrono::milliseconds timeout{300000};
};

GetAnswer http_get(CURL* handle, const StowRsOptions& http, const GetRequest& request,
                   const BodySink& sink);

}  // namespace dirgw::senders::dicomweb
