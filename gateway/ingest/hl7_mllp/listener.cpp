#include "ingest/hl7_mllp/listener.h"

#include <algorithm>
#include <chrono>
#include <ctime>

#include "common/text.h"
#include "ingest/hl7_mllp/deadline.h"
#include "ingest/hl7_mllp/mllp.h"
#include "log/log.h"

namespace dirgw::ingest {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {
std::string hl7_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d%H%M%S+0000", &tm);
  return buf;
}
}  // namespace

class Hl7Listener::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Hl7Listener& owner, tcp::socket socket)
      : owner_(owner),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        deadline_(owner.cfg_.idle_timeout, owner.cfg_.message_timeout, clock_.now()),
        decoder_(static_cast<std::size_t>(owner.cfg_.max_message_size)) {
    boost::system::error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    peer_ = ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  void start() {
    socket_.set_option(tcp::no_delay(true));
    read();
  }

  void close() {
    boost::system::error_code ignored;
    timer_.cancel();
    socket_.close(ignored);
  }

 private:
  // The timer always runs to the connection's deadline (idle or message, by total time).
  void arm() {
    const TimePoint due = deadline_.due();
    if (due == TimePoint::max()) {
      timer_.cancel();
      return;
    }
    timer_.expires_after(std::max(due - clock_.now(), TimePoint::duration::zero()));
    auto self = shared_from_this();
    timer_.async_wait([self](const boost::system::error_code& ec) {
      if (!ec) self->expire();
    });
  }

  void expire() {
    const auto e = deadline_.expired(clock_.now());
    if (e == ConnectionDeadline::Expiry::kNone) {
      arm();
      return;
    }
    if (e == ConnectionDeadline::Expiry::kMessage) {
      log::warn("HL7: message not complete within message_timeout: connection closed",
                {{"peer", peer_}, {"buffered_bytes", std::to_string(decoder_.buffered())}});
      finish("message_timeout");
    } else {
      log::info("HL7: connection idle beyond idle_timeout: closed", {{"peer", peer_}});
      finish("idle");
    }
  }

  void read() {
    arm();
    auto self = shared_from_this();
    socket_.async_read_some(asio::buffer(buf_), [self](const boost::system::error_code& ec,
                                                       std::size_t n) { self->on_read(ec, n); });
  }

  void on_read(const boost::system::error_code& ec, std::size_t n) {
    if (ec) {
      finish(ec == asio::error::eof ? "" : ec.message());
      return;
    }
    auto events = decoder_.feed(std::string_view(buf_.data(), n));
    deadline_.read(clock_.now(), !decoder_.idle());
    if (events.empty()) {
      read();
      return;
    }
    deadline_.busy();
    timer_.cancel();
    // Applying a message may wait (a consent withdrawal waits for uploads under way): it runs
    // on the listener's worker thread; the connection reads nothing more until it is answered,
    // so messages are applied and acknowledged in the order received.
    auto self = shared_from_this();
    asio::post(owner_.workers_, [self, events = std::move(events)]() mutable {
      std::string out;
      bool fatal = false;
      for (auto& ev : events) {
        if (ev.kind == hl7::MllpEvent::Kind::kError && ev.error == hl7::MllpError::kTooLarge) {
          // The decoder drops the rest of the frame and stays in step: answered, not closed.
          out += self->too_large(ev.bytes);
          continue;
        }
        if (ev.kind == hl7::MllpEvent::Kind::kError &&
            ev.error == hl7::MllpError::kDataBeforeStart) {
          // Bytes outside a frame (a stray line end or space between frames, a probe): dropped;
          // the frame after them is a message like any other.
          log::warn("HL7: bytes outside an MLLP frame dropped",
                    {{"peer", self->peer_}, {"bytes", std::to_string(ev.bytes)}});
          continue;
        }
        if (ev.kind == hl7::MllpEvent::Kind::kError) {
          hl7::AckOptions o{self->owner_.next_control_id(), hl7_now(),
                            hl7::AckError::kSegmentSequence};
          auto framed =
              hl7::mllp_encode(hl7::make_ack_unparsed(hl7::AckCode::kAR, "MLLP framing error", o));
          if (framed) out += *framed;
          log::warn("HL7: MLLP framing error, connection closed", {{"peer", self->peer_}});
          fatal = true;
          break;
        }
        if (ev.message.find_first_not_of(" \t\r\n") == std::string::npos) {
          // An empty frame: some engines send one to keep the connection open. No answer.
          log::debug("HL7: empty MLLP frame ignored", {{"peer", self->peer_}});
          continue;
        }
        out += self->respond(ev.message);
      }
      asio::post(self->socket_.get_executor(), [self, out = std::move(out), fatal]() mutable {
        self->answer(std::move(out), fatal);
      });
    });
  }

  void answer(std::string out, bool fatal) {
    if (done_) return;
    // Writing the answer counts as idle time: a peer that does not read its ACKs is closed too.
    deadline_.answered(clock_.now(), !decoder_.idle());
    arm();
    if (out.empty()) {
      if (fatal)
        finish("framing");
      else
        read();
      return;
    }
    pending_ = std::move(out);
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(pending_),
                      [self, fatal](const boost::system::error_code& wec, std::size_t) {
                        if (wec || fatal) {
                          self->finish(wec ? wec.message() : "framing");
                          return;
                        }
                        self->read();
                      });
  }

  // A frame beyond ingest.hl7.max_message_size: AR naming the limit (a report with a large PDF
  // is the usual cause). Its control ID is not known (the frame was not kept).
  std::string too_large(std::size_t bytes) {
    hl7::AckOptions o{owner_.next_control_id(), hl7_now(), hl7::AckError::kSegmentSequence};
    const std::string limit = std::to_string(owner_.cfg_.max_message_size / 1024) + " KiB";
    log::warn("HL7: message refused: larger than ingest.hl7.max_message_size",
              {{"peer", peer_}, {"bytes_seen", std::to_string(bytes)}, {"limit", limit}});
    auto framed = hl7::mllp_encode(hl7::make_ack_unparsed(
        hl7::AckCode::kAR,
        "message larger than " + limit + " (ingest.hl7.max_message_size): not stored", o));
    return framed ? *framed : std::string();
  }

  // MSH-11.1 not among ingest.hl7.processing_ids (an interface test sent to the production
  // port): why, else "".
  std::string processing_refusal(const hl7::Message& msg) const {
    std::string id(trim_whitespace(msg.get("MSH-11").value_or("")));
    if (id.empty()) id = "P";  // not said: production, as HL7 assumes
    const auto& ids = owner_.cfg_.processing_ids;
    if (std::find(ids.begin(), ids.end(), id) != ids.end()) return {};
    // Named only when it is one of table 0103's: the field's text is the sender's, never echoed.
    const std::string named = id == "T"   ? "processing ID T (training/test)"
                              : id == "D" ? "processing ID D (debugging)"
                              : id == "P" ? "processing ID P (production)"
                                          : "a processing ID outside HL7 table 0103";
    return named + " not accepted here (ingest.hl7.processing_ids): not applied";
  }

  std::string respond(const std::string& payload) {
    hl7::AckOptions o{owner_.next_control_id(), hl7_now(),
                      hl7::AckError::kApplicationInternalError};
    hl7::ParseLimits limits;
    limits.max_message_bytes = static_cast<std::size_t>(owner_.cfg_.max_message_size);
    auto msg = hl7::Message::parse(payload, limits);
    std::string ack;
    if (!msg) {
      o.error = hl7::AckError::kSegmentSequence;
      ack = hl7::make_ack_unparsed(hl7::AckCode::kAR, "message does not parse", o);
      log::warn("HL7: message refused", {{"peer", peer_}, {"reason", msg.error().detail}});
    } else if (std::string why = processing_refusal(*msg); !why.empty()) {
      o.error = hl7::AckError::kUnsupportedProcessingId;
      ack = hl7::make_ack(*msg, hl7::AckCode::kAR, why, o);
      log::warn("HL7: message refused", {{"peer", peer_}, {"reason", why}});
    } else {
      Hl7Verdict v = owner_.sink_.on_message(*msg, peer_);
      o.error = v.error;
      ack = hl7::make_ack(*msg, v.code, v.text, o);
    }
    auto framed = hl7::mllp_encode(ack);
    return framed ? *framed : std::string();
  }

  void finish(const std::string& why) {
    if (done_) return;
    done_ = true;
    if (!why.empty() && why != "idle" && why != "message_timeout")
      log::debug("HL7 connection closed", {{"peer", peer_}, {"reason", why}});
    close();
    owner_.connections_.erase(shared_from_this());
  }

  Hl7Listener& owner_;
  tcp::socket socket_;
  SystemClock clock_;
  asio::steady_timer timer_;
  ConnectionDeadline deadline_;
  hl7::MllpDecoder decoder_;
  std::array<char, 65536> buf_{};
  std::string pending_;
  std::string peer_;
  bool done_ = false;
};

Hl7Listener::Hl7Listener(asio::io_context& io, const config::Hl7Ingest& cfg, Hl7Sink& sink)
    : io_(io), cfg_(cfg), sink_(sink) {}

Hl7Listener::~Hl7Listener() {
  stop();
  workers_.join();
}

Result<void> Hl7Listener::start() {
  try {
    tcp::endpoint ep(asio::ip::make_address(cfg_.bind), static_cast<unsigned short>(cfg_.port));
    acceptor_ = std::make_unique<tcp::acceptor>(io_, ep, true);
    port_ = acceptor_->local_endpoint().port();
  } catch (const boost::system::system_error& e) {
    return make_error(ErrorCode::kNetwork, "cannot listen for HL7 on port " +
                                               std::to_string(cfg_.port) + ": " + e.what());
  }
  accept();
  log::info("HL7 listener ready", {{"address", cfg_.bind}, {"port", std::to_string(port_)}});
  return {};
}

void Hl7Listener::stop() {
  if (acceptor_) {
    boost::system::error_code ignored;
    acceptor_->close(ignored);
    acceptor_.reset();
  }
  auto conns = connections_;
  for (auto& c : conns) c->close();
  connections_.clear();
}

std::string Hl7Listener::next_control_id() {
  return "DIRGW" + std::to_string(std::time(nullptr)) + "-" +
         std::to_string(acks_.fetch_add(1) + 1);
}

void Hl7Listener::accept() {
  acceptor_->async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_) return;
    if (!ec) {
      if (static_cast<int>(connections_.size()) >= cfg_.max_connections) {
        log::warn("HL7: too many connections, one refused");
        boost::system::error_code ignored;
        socket.close(ignored);
      } else {
        auto c = std::make_shared<Connection>(*this, std::move(socket));
        connections_.insert(c);
        c->start();
      }
    }
    accept();
  });
}

}  // namespace dirgw::ingest
