#include "control/server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/log.h"

namespace dirgw::control {

namespace asio = boost::asio;
using stream = asio::local::stream_protocol;

namespace {
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(stream::socket socket, const Handler& handler, asio::thread_pool& workers)
      : socket_(std::move(socket)), handler_(handler), workers_(workers), buffer_(kMaxMessage) {}

  void start() {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
      peer_ = Peer{cred.pid, cred.uid, cred.gid};
    auto self = shared_from_this();
    asio::async_read_until(
        socket_, buffer_, '\n',
        [self](const boost::system::error_code& ec, std::size_t n) { self->on_read(ec, n); });
  }

 private:
  void on_read(const boost::system::error_code& ec, std::size_t n) {
    if (ec) {
      if (ec == asio::error::eof) return;
      reply({{"ok", false}, {"error", "request too large or unreadable"}});
      return;
    }
    std::string line(asio::buffers_begin(buffer_.data()),
                     asio::buffers_begin(buffer_.data()) + static_cast<long>(n));
    auto req = parse_request(line);
    if (!req) {
      reply({{"ok", false}, {"error", req.error().detail}});
      return;
    }
    // Handlers may wait (a consent withdrawal waits for uploads under way): they run on the
    // server's own threads, never on the event loop that feeds the watchdog.
    auto self = shared_from_this();
    asio::post(workers_, [self, request = std::move(*req)] {
      nlohmann::json response;
      try {
        response = self->handler_(request, self->peer_);
      } catch (const std::exception& e) {
        log::error("control request failed", {{"error", e.what()}});
        response = {{"ok", false}, {"error", "internal error"}};
      }
      asio::post(self->socket_.get_executor(),
                 [self, response = std::move(response)] { self->reply(response); });
    });
  }

  void reply(const nlohmann::json& response) {
    out_ = encode(response);
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(out_),
                      [self](const boost::system::error_code&, std::size_t) {
                        boost::system::error_code ignored;
                        self->socket_.shutdown(stream::socket::shutdown_both, ignored);
                      });
  }

  stream::socket socket_;
  const Handler& handler_;
  asio::thread_pool& workers_;
  asio::streambuf buffer_;
  Peer peer_;
  std::string out_;
};
}  // namespace

Server::Server(asio::io_context& io, std::string path, Handler handler)
    : io_(io), path_(std::move(path)), handler_(std::move(handler)) {}

Server::~Server() {
  stop();
  workers_.join();
}

Result<void> Server::start() {
  ::unlink(path_.c_str());
  try {
    acceptor_ = std::make_unique<stream::acceptor>(io_, stream::endpoint(path_));
  } catch (const boost::system::system_error& e) {
    return make_error(ErrorCode::kIo, "control socket " + path_ + ": " + e.what());
  }
  ::chmod(path_.c_str(), 0660);
  accept();
  return {};
}

void Server::stop() {
  if (acceptor_) {
    boost::system::error_code ignored;
    acceptor_->close(ignored);
    acceptor_.reset();
    ::unlink(path_.c_str());
  }
}

void Server::accept() {
  acceptor_->async_accept([this](const boost::system::error_code& ec, stream::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_) return;
    if (!ec) std::make_shared<Session>(std::move(socket), handler_, workers_)->start();
    accept();
  });
}

}  // namespace dirgw::control
