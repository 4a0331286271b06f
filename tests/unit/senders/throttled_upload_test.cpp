// Bandwidth caps on real uploads to the fake repository: the body goes through libcurl's read
// callback and the shared buckets. The buckets' arithmetic has its own tests on simulated time
// (scheduler/bandwidth_test.cpp); here the pacing of a real upload runs on simulated time too
// (StowRsOptions::pacing_sleep advances a FakeClock), so its rate is exact however busy the
// machine is. Only the two-destination test runs on the real clock, and asserts only what load
// cannot break: that together they stay under the gateway's cap.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "fake_http_server.h"
#include "fakes/fake_clock.h"
#include "scheduler/bandwidth.h"
#include "senders/sender.h"
#include "test_files.h"

namespace dirgw::senders {
namespace {

using dirgw::testing::FakeClock;
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

// The upload's sleeps advance the bucket's FakeClock: the simulated time the upload took is the
// time the pacing made it wait.
struct SimulatedPacing {
  FakeClock clock;
  std::chrono::microseconds slept{0};
  int sleeps = 0;
  std::function<void(std::chrono::microseconds)> sleeper() {
    return [this](std::chrono::microseconds d) {
      EXPECT_GT(d.count(), 0);
      EXPECT_LE(d, 100ms);  // short steps, so a rate change is noticed soon
      slept += d;
      ++sleeps;
      clock.advance(d);
    };
  }
  double seconds() const { return std::chrono::duration<double>(slept).count(); }
};

TEST(ThrottledUpload, PacesTheBodyAtTheCap) {
  TempDir dir;
  FakeHttpServer server(accept_parts);
  SimulatedPacing pacing;
  const std::uint64_t cap = 2 * kMiB, burst = 64 * 1024;
  auto destination = std::make_shared<scheduler::TokenBucket>(pacing.clock, cap, burst);
  auto opts = throttled_options_for(server.url());
  opts.bandwidth_buckets = {destination};
  opts.pacing_sleep = pacing.sleeper();
  auto sender = make_stow_rs_sender(opts);

  Outcome o = sender->send(study(dir, "1.2.20.", 4, kMiB));  // 4 MiB: 2 s at the cap
  ASSERT_EQ(o.kind, OutcomeKind::kOk) << o.message;
  ASSERT_GT(o.bytes_sent, 4 * kMiB);
  // Every byte but the first burst waited for its tokens, and no longer: the upload took
  // (body - burst) / cap of simulated time, to within the microsecond rounding of each sleep.
  double expected = static_cast<double>(o.bytes_sent - burst) / static_cast<double>(cap);
  EXPECT_NEAR(pacing.seconds(), expected, 0.01 * expected) << pacing.sleeps << " sleeps";
  double rate = static_cast<double>(o.bytes_sent) / pacing.seconds();
  EXPECT_LE(rate, 1.02 * static_cast<double>(cap)) << rate / kMiB << " MiB/s";
  EXPECT_GE(rate, 0.99 * static_cast<double>(cap)) << rate / kMiB << " MiB/s";
}

TEST(ThrottledUpload, ARateChangeTakesEffectDuringTheUpload) {
  // Office hours end a quarter of the way through: the rest goes at the new rate.
  TempDir dir;
  FakeHttpServer server(accept_parts);
  SimulatedPacing pacing;
  const std::uint64_t slow = 1 * kMiB, fast = 4 * kMiB, burst = 64 * 1024;
  auto destination = std::make_shared<scheduler::TokenBucket>(pacing.clock, slow, burst);
  auto opts = throttled_options_for(server.url());
  opts.bandwidth_buckets = {destination};
  auto sleep = pacing.sleeper();
  bool changed = false;
  opts.pacing_sleep = [&](std::chrono::microseconds d) {
    sleep(d);
    if (!changed && pacing.slept >= 1s) {
      destination->set_rate(fast, burst);
      changed = true;
    }
  };
  auto sender = make_stow_rs_sender(opts);

  Outcome o = sender->send(study(dir, "1.2.24.", 4, kMiB));
  ASSERT_EQ(o.kind, OutcomeKind::kOk) << o.message;
  ASSERT_TRUE(changed);
  // About 1 MiB in the first second, the remaining 3 MiB at 4 MiB/s: about 1.75 s, where the
  // old rate alone would have needed 4.
  EXPECT_GT(pacing.seconds(), 1.6);
  EXPECT_LT(pacing.seconds(), 1.9);
}

TEST(ThrottledUpload, TwoDestinationsShareTheGatewayCap) {
  // On the real clock: two uploads at once, each in its own thread (a FakeClock advanced by both
  // would not model two waits overlapping). How evenly they share is tested on simulated time
  // (AcquireBlocking.TwoTransfersShareTheGatewayCap).
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
  // Each destination alone could go at 3 MiB/s, so 6 MiB/s together: the gateway's bucket is
  // what keeps them to 2 MiB/s (plus its 64 KiB burst). A slow machine only lowers the rate.
  double rate = static_cast<double>(out_a.bytes_sent + out_b.bytes_sent) / elapsed;
  EXPECT_LE(rate, 1.10 * static_cast<double>(gateway_cap)) << rate / kMiB << " MiB/s";
}

TEST(ThrottledUpload, AnUnlimitedBucketNeverWaits) {
  TempDir dir;
  FakeHttpServer server(accept_parts);
  SimulatedPacing pacing;
  auto opts = throttled_options_for(server.url());
  opts.bandwidth_buckets = {std::make_shared<scheduler::TokenBucket>(pacing.clock, 0)};
  opts.pacing_sleep = pacing.sleeper();
  auto sender = make_stow_rs_sender(opts);
  Outcome o = sender->send(study(dir, "1.2.23.", 2, kMiB));
  ASSERT_EQ(o.kind, OutcomeKind::kOk) << o.message;
  EXPECT_EQ(pacing.sleeps, 0);
}

}  // namespace
}  // namespace dirgw::senders
