// Senders carry a batch of spooled instances to one destination and say, instance by instance,
// what the destination did with them. They never touch the catalog: the scheduler records the
// Outcome. An Outcome never carries patient data (no response bodies, no header values).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace dirgw::scheduler {
class TokenBucket;  // scheduler/bandwidth.h
}

namespace dirgw::senders {

// One instance to send.
struct Item {
  std::string sop_instance_uid;
  std::string sop_class_uid;
  std::filesystem::path path;  // complete Part-10 file in the spool
  std::uint64_t size = 0;      // must equal the file's size; checked before anything is sent
  // Set by the transcoding hook (senders/transcode) when `path` is a losslessly compressed copy
  // of the stored object (a temporary file, removed after the send): the copy's transfer syntax,
  // which STOW-RS then names in the part's Content-Type (only when the destination asks for it:
  // transcode.syntax_parameter), and the stored original, which the DIMSE sender sends instead
  // when the destination refuses the copy's syntax.
  std::string transfer_syntax;
  std::filesystem::path original_path;
  std::uint64_t original_size = 0;
};

enum class InstanceStatus { kAccepted, kRetry, kPermanent };

struct InstanceResult {
  std::string sop_instance_uid;
  InstanceStatus status;
  std::string reason;  // e.g. "FailureReason 0xA700 (out of resources)"; never patient data
  // A transcoded item (Item::original_path set) that went as its stored original because the
  // destination refused the copy's transfer syntax.
  bool sent_original = false;
  // A 2xx answer that neither stored nor failed it (no evidence of storage): retried, and after
  // the destination's limit quarantined rather than retried until give-up (issue 17, item 10).
  bool unconfirmed = false;
};

// For the request as a whole: kOk when every instance was accepted; kRetry when at least one
// instance should be sent again; kPermanent when none should be retried but some failed.
enum class OutcomeKind { kOk, kRetry, kPermanent };

struct Outcome {
  OutcomeKind kind;
  // One per Item of the batch, same order. Whole-request failures (5xx, time-out, 401...) give
  // every instance the request's status, so the scheduler can always read results per instance.
  std::vector<InstanceResult> instances;
  int http_status = 0;                                   // 0 when no HTTP answer arrived
  std::optional<std::chrono::milliseconds> retry_after;  // from Retry-After (seconds or HTTP-date)
  std::string message;  // short, no patient data (never a copy of the response body)
  std::uint64_t bytes_sent = 0;
  // The destination refused our credentials (HTTP 401 or 403) or no access token could be had
  // for a reason a retry will not cure (secret file unusable, token endpoint refusing the
  // client). Not about the instances: the scheduler should pause the destination and say why,
  // rather than fail the studies, so it reads this flag before the per-instance results. With a
  // token_provider those are kRetry; without one a 401/403 keeps today's verdict (kPermanent).
  bool auth_failed = false;
};

// Where a bearer token comes from (OAuth2 client credentials: dicomweb/oauth2.h). Thread-safe:
// several senders may share one. Tokens are secrets: never logged, never in an Outcome.
class TokenProvider {
 public:
  virtual ~TokenProvider() = default;
  // A token believed valid now: cached, or fetched. A retryable Error (endpoint down) means try
  // later; a permanent one means the credentials or their set-up need a person.
  virtual Result<std::string> token() = 0;
  // The destination answered 401 to `rejected`: forget it, so that the next token() fetches a
  // new one. A token that was already replaced is left alone.
  virtual void invalidate(const std::string& rejected) = 0;
  // After a token() that failed because the endpoint is busy (429/503 with Retry-After): how
  // long it asked to be left alone, from now. None: no such request in force.
  virtual std::optional<std::chrono::milliseconds> retry_after() { return std::nullopt; }
};

// What a sender tells its caller while a request is under way.
struct SendContext {
  // Called at most once, as soon as every byte of the request has been handed to the transport:
  // the request has left. The forwarder ends the window in which a consent withdrawal waits for
  // this batch there (catalog/send_gate.h); it also ends it itself when send() returns.
  std::function<void()> request_sent;
};

class Sender {
 public:
  virtual ~Sender() = default;
  // Blocking; thread-compatible (one thread per Sender).
  virtual Outcome send(const std::vector<Item>& batch, const SendContext& context) = 0;
  Outcome send(const std::vector<Item>& batch) { return send(batch, SendContext{}); }
};

// A Sender for a destination's `concurrency` lanes: lends each send() one of `members` (one per
// lane, each thread-compatible) that no other send() is using, waiting for one when all are
// busy. Thread-safe. One member: that member, unchanged.
std::unique_ptr<Sender> make_sender_pool(std::vector<std::unique_ptr<Sender>> members);

struct StowRsOptions {
  std::string base_url;  // DICOMweb root, POST goes to base_url + "/studies"
  std::filesystem::path ca_file, client_cert, client_key, bearer_token_file;
  bool verify_peer = true;
  std::chrono::milliseconds connect_timeout{10000}, request_timeout{600000};
  std::uint64_t max_bandwidth = 0;  // bytes/s, 0 = unlimited (CURLOPT_MAX_SEND_SPEED_LARGE)
  // A transfer moving less than one byte per second for this long is abandoned (kRetry), so a
  // stalled peer is noticed well before request_timeout. Generous by default: some repositories
  // store a whole study before they answer.
  std::chrono::seconds stall_timeout{120};
  // Optional (empty / null: today's behaviour). Byte budgets every upload of this sender draws
  // from, shared with other senders: its destination's cap and the gateway-wide cap. The body is
  // paced in libcurl's read callback (docs/scheduling.md).
  std::vector<std::shared_ptr<scheduler::TokenBucket>> bandwidth_buckets;
  // How the pacing waits for the buckets (scheduler::Sleeper). Empty: really sleep. Tests whose
  // buckets run on a FakeClock pass one that advances it, so a paced upload runs on simulated
  // time and its rate does not depend on how busy the machine is.
  std::function<void(std::chrono::microseconds)> pacing_sleep;
  // Sets "Authorization: Bearer <token>" on every request; takes precedence over
  // bearer_token_file. A 401/403 invalidates the token and is retried, not permanent.
  std::shared_ptr<TokenProvider> token_provider;
};

std::unique_ptr<Sender> make_stow_rs_sender(const StowRsOptions& options);

// A consent-withdrawal notification: one JSON POST to the destination's notification endpoint,
// with the destination's TLS / token settings. The answer body is never read.
struct NotifyOutcome {
  bool ok = false;
  bool retry = true;
  int http_status = 0;
  std::string message;                                   // short, no patient data
  std::optional<std::chrono::milliseconds> retry_after;  // the endpoint's Retry-After, if any
};
NotifyOutcome post_notification(const StowRsOptions& options, const std::string& url,
                                const std::string& json_body);

// Where a destination's withdrawal notifications go. An interface, like Sender, so that the
// forwarder's outbox handling can be tested with a fake.
class Notifier {
 public:
  virtual ~Notifier() = default;
  virtual NotifyOutcome notify(const std::string& json_body) = 0;
};
// POSTs to `url` with the destination's TLS and token settings (post_notification).
std::unique_ptr<Notifier> make_http_notifier(StowRsOptions options, std::string url);

}  // namespace dirgw::senders
