#include "metrics/http_endpoint.h"

#include <algorithm>
#include <array>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "metrics/exposition.h"

namespace dirgw::metrics {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {
class Session;
}  // namespace

// What the handlers share with the endpoint. Handlers hold it by shared_ptr, so a completion
// that arrives after stop() (or after the endpoint is gone) finds `stopped` and does nothing.
struct HttpEndpoint::Shared {
  Shared(asio::io_context& io, const Registry& r, EndpointOptions o)
      : registry(r), options(std::move(o)), acceptor(io), retry_timer(io) {}
  const Registry& registry;
  EndpointOptions options;
  tcp::acceptor acceptor;
  asio::steady_timer retry_timer;  // after an accept error such as EMFILE: do not spin
  bool stopped = false;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;
};

namespace {

using Shared = HttpEndpoint::Shared;

struct Response {
  int status = 200;
  std::string_view reason = "OK";
  std::string_view content_type = "text/plain; charset=utf-8";
  std::string body;
  bool head = false;  // HEAD: the headers GET would have, no body
  std::string_view extra_headers;
};

Response plain(int status, std::string_view reason, std::string body) {
  Response r;
  r.status = status;
  r.reason = reason;
  r.body = std::move(body);
  return r;
}

std::string encode(const Response& r) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + std::string(r.reason) + "\r\n";
  out += "Content-Type: ";
  out += r.content_type;
  out += "\r\nContent-Length: " + std::to_string(r.body.size()) + "\r\n";
  out += "Cache-Control: no-store\r\n";
  out += r.extra_headers;
  out += "Connection: close\r\n\r\n";
  if (!r.head) out += r.body;
  return out;
}

// The end of the request header, CRLF CRLF (or bare LF LF, as a hand-typed request has).
std::size_t header_end(std::string_view s) {
  auto crlf = s.find("\r\n\r\n");
  auto lf = s.find("\n\n");
  if (crlf == std::string_view::npos) return lf;
  if (lf == std::string_view::npos) return crlf;
  return std::min(crlf, lf);
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<Shared> shared)
      : socket_(std::move(socket)), deadline_(socket_.get_executor()), shared_(std::move(shared)) {}

  ~Session() { shared_->sessions.erase(this); }

  void start() {
    shared_->sessions.emplace(this, weak_from_this());
    error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    deadline_.expires_after(shared_->options.timeout);
    deadline_.async_wait([self = shared_from_this()](const error_code& ec) {
      if (!ec) self->close();  // time is up, whatever the client is doing
    });
    read();
  }

  void close() {
    error_code ignored;
    deadline_.cancel();
    socket_.close(ignored);
  }

 private:
  void read() {
    socket_.async_read_some(
        asio::buffer(chunk_),
        [self = shared_from_this()](const error_code& ec, std::size_t n) { self->on_read(ec, n); });
  }

  void on_read(const error_code& ec, std::size_t n) {
    if (ec || shared_->stopped) return close();  // EOF before a whole header: nothing to answer
    const std::size_t limit = shared_->options.max_request_bytes;
    request_.append(chunk_.data(), n);
    auto end = header_end(request_);
    if (end == std::string_view::npos || end > limit) {
      if (request_.size() >= limit) {
        return respond(plain(431, "Request Header Fields Too Large", "request header too large\n"));
      }
      return read();
    }
    respond(route(std::string_view(request_).substr(0, end)));
  }

  Response route(std::string_view header) {
    auto eol = header.find('\n');
    std::string_view line = header.substr(0, eol);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto sp1 = line.find(' ');
    auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos ||
        !line.substr(sp2 + 1).starts_with("HTTP/1.")) {
      return plain(400, "Bad Request", "bad request\n");
    }
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    target = target.substr(0, target.find('?'));
    if (method != "GET" && method != "HEAD") {
      Response r = plain(405, "Method Not Allowed", "method not allowed\n");
      r.extra_headers = "Allow: GET, HEAD\r\n";
      return r;
    }
    Response r;
    if (target == "/metrics") {
      r.content_type = kTextContentType;
      r.body = render_text(shared_->registry);
    } else if (target == "/") {
      r.body = "dirgw metrics: GET /metrics (Prometheus text format)\n";
    } else {
      r = plain(404, "Not Found", "not found\n");
    }
    r.head = method == "HEAD";
    return r;
  }

  void respond(const Response& response) {
    out_ = encode(response);
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this()](const error_code& ec, std::size_t) {
                        if (ec || self->shared_->stopped) return self->close();
                        // Half-close, then read until the client closes: closing with unread
                        // bytes would reset the connection and could lose the response.
                        error_code ignored;
                        self->socket_.shutdown(tcp::socket::shutdown_send, ignored);
                        self->drain();
                      });
  }

  void drain() {
    socket_.async_read_some(asio::buffer(chunk_),
                            [self = shared_from_this()](const error_code& ec, std::size_t) {
                              if (ec || self->shared_->stopped) return self->close();
                              self->drain();
                            });
  }

  tcp::socket socket_;
  asio::steady_timer deadline_;
  std::shared_ptr<Shared> shared_;
  std::array<char, 2048> chunk_{};
  std::string request_;
  std::string out_;
};

void accept(const std::shared_ptr<Shared>& shared) {
  shared->acceptor.async_accept([shared](const error_code& ec, tcp::socket socket) {
    if (shared->stopped || ec == asio::error::operation_aborted) return;
    if (ec) {
      // Out of descriptors or similar: try again shortly instead of spinning.
      shared->retry_timer.expires_after(std::chrono::milliseconds(100));
      shared->retry_timer.async_wait([shared](const error_code& tec) {
        if (!tec && !shared->stopped) accept(shared);
      });
      return;
    }
    if (shared->sessions.size() < shared->options.max_connections) {
      std::make_shared<Session>(std::move(socket), shared)->start();
    } else {
      error_code ignored;
      socket.close(ignored);
    }
    accept(shared);
  });
}

}  // namespace

HttpEndpoint::HttpEndpoint(asio::io_context& io, const Registry& registry, EndpointOptions options)
    : io_(io), registry_(registry), options_(std::move(options)) {}

HttpEndpoint::~HttpEndpoint() {
  try {
    stop();
  } catch (...) {  // only allocation or a timer's cancel can throw; a destructor must not
  }
}

Result<void> HttpEndpoint::start() {
  if (shared_) return {};
  const std::string where = options_.address + " port " + std::to_string(options_.port);
  error_code ec;
  auto address = asio::ip::make_address(options_.address, ec);
  if (ec) return make_error(ErrorCode::kConfig, "metrics endpoint: bad address " + where);
  auto shared = std::make_shared<Shared>(io_, registry_, options_);
  tcp::endpoint endpoint(address, options_.port);
  auto& a = shared->acceptor;
  a.open(endpoint.protocol(), ec);
  if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) a.bind(endpoint, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return make_error(ErrorCode::kIo, "metrics endpoint " + where + ": " + ec.message());
  shared_ = std::move(shared);
  accept(shared_);
  return {};
}

void HttpEndpoint::stop() {
  if (!shared_) return;
  shared_->stopped = true;
  error_code ignored;
  shared_->acceptor.close(ignored);
  shared_->retry_timer.cancel();
  // Copy first: closing a session can end it, and its destructor edits the map.
  std::vector<std::shared_ptr<Session>> open;
  for (auto& [ptr, weak] : shared_->sessions)
    if (auto s = weak.lock()) open.push_back(std::move(s));
  for (auto& s : open) s->close();
  shared_.reset();
}

std::uint16_t HttpEndpoint::port() const {
  if (!shared_) return 0;
  error_code ec;
  auto ep = shared_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

}  // namespace dirgw::metrics
