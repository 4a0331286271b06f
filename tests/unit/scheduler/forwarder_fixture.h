// The forwarder tests' common fixture (scheduler_test, schedule_test).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fakes/fake_clock.h"
#include "scheduler/scheduler.h"

namespace dirgw::scheduler::testing_support {

namespace fs = std::filesystem;
using std::chrono::seconds;

// A sender that answers from a script and remembers what it was asked to send.
class ScriptedSender final : public senders::Sender {
 public:
  using Script = std::function<senders::Outcome(const std::vector<senders::Item>&)>;
  std::deque<Script> script;
  std::vector<std::vector<std::string>> calls;

  using senders::Sender::send;
  senders::Outcome send(const std::vector<senders::Item>& batch,
                        const senders::SendContext& context) override {
    std::vector<std::string> uids;
    for (const auto& i : batch) uids.push_back(i.sop_instance_uid);
    calls.push_back(uids);
    // Like the STOW-RS sender: the request has left before the answer comes.
    if (context.request_sent) context.request_sent();
    if (script.empty()) return all(batch, senders::InstanceStatus::kAccepted, 200);
    auto s = std::move(script.front());
    script.pop_front();
    return s(batch);
  }

  static senders::Outcome all(const std::vector<senders::Item>& batch, senders::InstanceStatus st,
                              int http) {
    senders::Outcome o;
    o.kind = st == senders::InstanceStatus::kAccepted ? senders::OutcomeKind::kOk
             : st == senders::InstanceStatus::kRetry  ? senders::OutcomeKind::kRetry
                                                      : senders::OutcomeKind::kPermanent;
    o.http_status = http;
    for (const auto& i : batch) o.instances.push_back({i.sop_instance_uid, st, "scripted"});
    return o;
  }
};

// A forwarder for destination "repo" over a temporary catalog and spool, with a scripted
// sender and a fake clock.
class ForwarderFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dirgw-forwarder-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    dest_.name = "repo";
    dest_.url = "http://127.0.0.1:1/dicom-web";
    dest_.batch_max_instances = 10;
    dest_.retry_initial = seconds(10);
    dest_.retry_max = seconds(80);
    catalog_ = std::move(catalog::Catalog::open(dir_ / "c.db", {"repo"}, clock_)).value();
    spool_ =
        std::make_unique<ingest::Spool>(std::move(ingest::Spool::open(dir_ / "spool")).value());
    forwarder_ = std::make_unique<Forwarder>(dest_, *catalog_, *spool_, sender_, clock_, 42);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void receive(const std::string& study, int n) {
    catalog::NewInstance in;
    in.study_uid = study;
    in.series_uid = study + ".1";
    in.sop_instance_uid = study + ".1." + std::to_string(n);
    in.sop_class_uid = "1.2.840.10008.5.1.4.1.1.2";
    in.transfer_syntax = "1.2.840.10008.1.2.1";
    in.sha256 = std::string(60, 'a') + std::to_string(1000 + n);
    in.size = 100;
    ASSERT_TRUE(catalog_->ingest.record_instance(in).ok());
  }

  std::string state(const std::string& study) {
    for (const auto& s : *catalog_->queries.studies("", 100))
      if (s.study_uid == study) return s.destination_states.at(0).second;
    return "";
  }

  fs::path dir_;
  testing::FakeClock clock_;
  config::Destination dest_;
  std::unique_ptr<catalog::Catalog> catalog_;
  std::unique_ptr<ingest::Spool> spool_;
  ScriptedSender sender_;
  std::unique_ptr<Forwarder> forwarder_;
};

}  // namespace dirgw::scheduler::testing_support
