// The HL7 v2 listener: MLLP over TCP on the daemon's io_context. Each complete message is
// parsed and handed to the sink, which applies it (consent, MRN -> health number links) and
// says how to acknowledge; the listener answers every message with an ACK (AA, AE or AR) in
// the order received. Bad framing gets an AR and the connection is closed.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "common/asio.h"
#include "common/result.h"
#include "config/config.h"
#include "ingest/hl7_mllp/hl7.h"

namespace dirgw::ingest {

struct Hl7Verdict {
  hl7::AckCode code = hl7::AckCode::kAA;
  std::string text;  // our words, never a value from the message
  hl7::AckError error = hl7::AckError::kApplicationInternalError;
};

class Hl7Sink {
 public:
  virtual ~Hl7Sink() = default;
  virtual Hl7Verdict on_message(const hl7::Message& message, const std::string& peer) = 0;
};

class Hl7Listener {
 public:
  Hl7Listener(boost::asio::io_context& io, const config::Hl7Ingest& cfg, Hl7Sink& sink);
  ~Hl7Listener();
  Result<void> start();
  void stop();
  int port() const { return port_; }

 private:
  class Connection;
  void accept();
  std::string next_control_id();

  boost::asio::io_context& io_;
  const config::Hl7Ingest& cfg_;
  Hl7Sink& sink_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  std::set<std::shared_ptr<Connection>> connections_;
  int port_ = 0;
  std::atomic<std::uint64_t> acks_{0};
  boost::asio::thread_pool workers_{1};  // messages are applied here, off the event loop
};

}  // namespace dirgw::ingest
