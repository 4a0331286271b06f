// Bandwidth caps on real uploads to the fake repository. These run on the real clock (libcurl
// and the socket do): they are kept short (about 2 s each) and their bounds tolerant.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "fake_http_server.h"
#include "scheduler/bandwidth.h"
#include "senders/sender.h"
#include "test_files.h"

namespace dirgw::senders {
namespace {

using dirgw::testing::FakeHttpServer;
using dirgw::testing::HttpRequest;
using dirgw::testing::HttpResponse;
using dirgw::testing::random_bytes;
using dirgw::testing::TempDir;
using namespace std::chrono_literals;

constexpr std::uint64_t kMiB = 1024 * 1024;

// Acknowledges whatever UIDs it is sent (the parts start with "uid:<UID>|").
HttpResponse accept_parts(const HttpRequest& req) {
  std::string items;
  for (std::size_t at = req.body.find("uid:"); at != std::string::npos;
       at = req.body.find("uid:", at + 4)) {
    auto bar = req.body.find('|', at);
    if (!items.empty()) items += ",";
    items += R"({"00081150":{"vr":"UI","Value":["1.2.840.10008.5.1.4.1.1.7"]},)"
             R"("00081155":{"vr":"UI","Value":[")" +
             req.body.substr(at + 4, bar - at - 4) + R"("]}})";
  }
  return {200,
          {{"Content-Type", "application/dicom+json"}},
          R"({"00081199":{"vr":"SQ","Value":[)" + items + "]}}"};
}

std::vector<Item> study(const TempDir& dir, const std::string& prefix, int files,
                        std::size_t bytes_each) {
  std::vector<Item> batch;
  for (int i = 0; i < files; ++i) {
    std::string uid = prefix + std::to_string(i);
    // Random bytes cannot contain "uid:" by chance often enough to matter; the peer would
    // then report an extra UID, which the test would notice.
    std::string payload = random_bytes(bytes_each, static_cast<unsigned>(i) + 7);
    for (std::size_t k = 0; k + 3 < payload.size(); ++k) {
      if (payload.compare(k, 4, "uid:") == 0) payload[k] = 'x';
    }
    batch.push_back(write_item(dir, "obj-" + uid, "uid:" + uid + "|" + payload, uid));
  }
  return batch;
}

StowRsOptions throttled_options_for(const std::string& url) {
  StowRsOptions o;
  o.base_url = url + "/dicom-web";
  o.connect_timeout = 2000ms;
  o.request_timeout = 10000ms;
  return o;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

TEST(ThrottledUpload, StaysWithinTenPercentOfTheCap) {
  TempDir dir;
  FakeHttpServer server(accept_parts);
  SystemClock clock;
  const std::uint64_t cap = 2 * kMiB;
  auto destination = std::make_shared<scheduler::TokenBucket>(clock, cap, 64 * 1024);
  auto opts = throttled_options_for(server.url());
  opts.bandwidth_buckets = {destination};
  auto sender = make_stow_rs_sender(opts);

  auto batch = study(dir, "1.2.20.", 4, kMiB);  // 4 MiB: about 2 s at the cap
  auto started = std::chrono::steady_clock::now();
  Outcome o = sender->send(batch);
  double elapsed = seconds_since(started);
  ASSERT_EQ(o.kind, OutcomeKind::kOk) << o.message;
  double rate = static_cast<double>(o.bytes_sent) / elapsed;
  EXPECT_LE(rate, 1.10 * static_cast<double>(cap)) << rate / kMiB << " MiB/s";
  // Not so slow that the cap is all we measured (a shared, sanitized build is slow, so loose).
  EXPECT_GE(rate, 0.70 * static_cast<double>(cap)) << rate / kMiB << " MiB/s";
  EXPECT_LT(elapsed, 4.0);
}

TEST(ThrottledUpload, TwoDestinationsShareTheGatewayCap) {
  TempDir dir;
  FakeHttpServer server_a(accept_parts), server_b(accept_parts);
  SystemClock clock;
  const std::uint64_t gateway_cap = 2 * kMiB;
  auto gateway = std::make_shared<scheduler::TokenBucket>(clock, gateway_cap, 64 * 1024);
  // Each destination alone may go faster than the gateway as a whole.
  auto cap_a = std::make_shared<scheduler::TokenBucket>(clock, 3 * kMiB, 64 * 1024);
  auto cap_b = std::make_shared<scheduler::TokenBucket>(clock, 3 * kMiB, 64 * 1024);
  auto opts_a = throttled_options_for(server_a.url());
  opts_a.bandwidth_buckets = {cap_a, gateway};
  auto opts_b = throttled_options_for(server_b.url());
  opts_b.bandwidth_buckets = {cap_b, gateway};
  auto sender_a = make_stow_rs_sender(opts_a);
  auto sender_b = make_stow_rs_sender(opts_b);
  auto batch_a = study(dir, "1.2.21.", 2, kMiB);
  auto batch_b = study(dir, "1.2.22.", 2, kMiB);

  Outcome out_a, out_b;
  auto started = std::chrono::steady_clock::now();
  std::thread ta([&] { out_a = sender_a->send(batch_a); });
  std::thread tb([&] { out_b = sender_b->send(batch_b); });
  ta.join();
  tb.join();
  double elapsed = seconds_since(started);
  ASSERT_EQ(out_a.kind, OutcomeKind::kOk) << out_a.message;
  ASSERT_EQ(out_b.kind, OutcomeKind::kOk) << out_b.message;
  double rate = static_cast<double>(out_a.bytes_sent + out_b.bytes_sent) / elapsed;
  EXPECT_LE(rate, 1.10 * static_cast<double>(gateway_cap)) << rate / kMiB << " MiB/s";
  EXPECT_GE(rate, 0.70 * static_cast<double>(gateway_cap)) << rate / kMiB << " MiB/s";
  EXPECT_LT(elapsed, 4.0);
}

TEST(ThrottledUpload, AnUnlimitedBucketDoesNotSlowTheUpload) {
  TempDir dir;
  FakeHttpServer server(accept_parts);
  SystemClock clock;
  auto opts = throttled_options_for(server.url());
  opts.bandwidth_buckets = {std::make_shared<scheduler::TokenBucket>(clock, 0)};
  auto sender = make_stow_rs_sender(opts);
  auto started = std::chrono::steady_clock::now();
  Outcome o = sender->send(study(dir, "1.2.23.", 2, kMiB));
  ASSERT_EQ(o.kind, OutcomeKind::kOk) << o.message;
  EXPECT_LT(seconds_since(started), 1.5);
}

}  // namespace
}  // namespace dirgw::senders
