// Test driver for the DIMSE sender (integration tests only): sends the given Part-10 files as one
// batch with make_dimse_sender() and prints one JSON line per instance, then one for the batch:
//   {"sop_instance_uid": "...", "status": "accepted|retry|permanent", "reason": "..."}
//   {"outcome": "ok|retry|permanent", "message": "...", "bytes_sent": N}
// Exit status 0 whatever the outcome (the test reads the lines); 2 for bad arguments.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/file_meta.h"
#include "log/log.h"
#include "senders/dimse/dimse_sender.h"

namespace {

const char* status_name(dirgw::senders::InstanceStatus s) {
  switch (s) {
    case dirgw::senders::InstanceStatus::kAccepted:
      return "accepted";
    case dirgw::senders::InstanceStatus::kRetry:
      return "retry";
    case dirgw::senders::InstanceStatus::kPermanent:
      return "permanent";
  }
  return "?";
}

const char* kind_name(dirgw::senders::OutcomeKind k) {
  switch (k) {
    case dirgw::senders::OutcomeKind::kOk:
      return "ok";
    case dirgw::senders::OutcomeKind::kRetry:
      return "retry";
    case dirgw::senders::OutcomeKind::kPermanent:
      return "permanent";
  }
  return "?";
}

int usage() {
  std::cerr << "usage: dimse_send_driver --host H --port P --called AE [--calling AE]\n"
               "  [--tls --ca F [--cert F --key F] [--no-verify-peer] [--no-verify-hostname]]\n"
               "  [--connect-timeout-ms N] [--acse-timeout-ms N] [--dimse-timeout-ms N]\n"
               "  [--max-pdu N] [--batches N] [--decompress never|lossless|always] FILE...\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  dirgw::log::init(dirgw::log::Level::kDebug, false);
  dirgw::senders::DimseOptions o;
  std::vector<std::string> files;
  int batches = 1;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= args.size()) throw std::runtime_error("missing value for " + a);
      return args[++i];
    };
    try {
      if (a == "--host")
        o.host = next();
      else if (a == "--port")
        o.port = static_cast<std::uint16_t>(std::stoi(next()));
      else if (a == "--called")
        o.called_ae = next();
      else if (a == "--calling")
        o.calling_ae = next();
      else if (a == "--tls")
        o.tls.enabled = true;
      else if (a == "--ca")
        o.tls.ca_file = next();
      else if (a == "--cert")
        o.tls.client_cert = next();
      else if (a == "--key")
        o.tls.client_key = next();
      else if (a == "--no-verify-peer")
        o.tls.verify_peer = false;
      else if (a == "--no-verify-hostname")
        o.tls.verify_hostname = false;
      else if (a == "--connect-timeout-ms")
        o.connect_timeout = std::chrono::milliseconds(std::stoll(next()));
      else if (a == "--acse-timeout-ms")
        o.acse_timeout = std::chrono::milliseconds(std::stoll(next()));
      else if (a == "--dimse-timeout-ms")
        o.dimse_timeout = std::chrono::milliseconds(std::stoll(next()));
      else if (a == "--max-pdu")
        o.max_pdu = static_cast<std::uint32_t>(std::stoul(next()));
      else if (a == "--batches")
        batches = std::stoi(next());
      else if (a == "--decompress") {
        const std::string v = next();
        using D = dirgw::senders::DimseOptions::Decompress;
        if (v != "never" && v != "lossless" && v != "always") return usage();
        o.decompress = v == "never" ? D::kNever : v == "lossless" ? D::kLossless : D::kAlways;
      } else if (a.rfind("--", 0) == 0)
        return usage();
      else
        files.push_back(a);
    } catch (const std::exception& e) {
      std::cerr << e.what() << "\n";
      return usage();
    }
  }
  if (o.host.empty() || o.called_ae.empty() || files.empty()) return usage();

  std::vector<dirgw::senders::Item> batch;
  for (const auto& f : files) {
    dirgw::senders::Item item;
    item.path = f;
    std::error_code ec;
    item.size = std::filesystem::file_size(f, ec);
    // The catalog's view of the file: taken from its meta, as ingest records it.
    if (auto meta = dirgw::read_file_meta(f)) {
      item.sop_instance_uid = meta->sop_instance_uid;
      item.sop_class_uid = meta->sop_class_uid;
    } else {
      item.sop_instance_uid = std::filesystem::path(f).filename().string();
    }
    batch.push_back(std::move(item));
  }

  auto sender = dirgw::senders::make_dimse_sender(o);
  for (int b = 0; b < batches; ++b) {
    const dirgw::senders::Outcome out = sender->send(batch);
    for (const auto& r : out.instances) {
      std::cout << nlohmann::json{{"sop_instance_uid", r.sop_instance_uid},
                                  {"status", status_name(r.status)},
                                  {"reason", r.reason}}
                       .dump()
                << "\n";
    }
    std::cout << nlohmann::json{{"outcome", kind_name(out.kind)},
                                {"message", out.message},
                                {"bytes_sent", out.bytes_sent}}
                     .dump()
              << std::endl;
  }
  return 0;
}
