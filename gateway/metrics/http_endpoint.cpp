#include "metrics/http_endpoint.h"

#include <array>
#include <boost/beast/http.hpp>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "metrics/exposition.h"

namespace dirgw::metrics {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

// Named, not anonymous: HttpEndpoint::Shared (external linkage) holds pointers to it.
namespace detail {
class Session;
}  // namespace detail

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
  std::unordered_map<detail::Session*, std::weak_ptr<detail::Session>> sessions;
};

namespace {

using Shared = HttpEndpoint::Shared;
using Response = http::response<http::string_body>;

Response plain(http::status status, std::string body,
               std::string_view content_type = "text/plain; charset=utf-8") {
  // Boost 1.74's Beast takes boost::string_view, not std::string_view.
  Response r{status, 11};
  r.set(http::field::content_type,
        boost::beast::string_view(content_type.data(), content_type.size()));
  r.body() = std::move(body);
  return r;
}

// What to answer a request that Beast could not parse.
Response rejection(const error_code& ec) {
  if (ec == http::error::header_limit)
    return plain(http::status::request_header_fields_too_large, "request header too large\n");
  if (ec == http::error::body_limit)
    return plain(http::status::payload_too_large, "request body too large\n");
  return plain(http::status::bad_request, "bad request\n");
}

Response route(const http::request_parser<http::empty_body>::value_type& request,
               const Registry& registry) {
  if (request.version() / 10 != 1) return rejection(http::error::bad_version);
  const bool head = request.method() == http::verb::head;
  if (request.method() != http::verb::get && !head) {
    Response r = plain(http::status::method_not_allowed, "method not allowed\n");
    r.set(http::field::allow, "GET, HEAD");
    return r;
  }
  std::string_view target(request.target().data(), request.target().size());
  target = target.substr(0, target.find('?'));
  Response r =
      target == "/metrics" ? plain(http::status::ok, render_text(registry), kTextContentType)
      : target == "/"
          ? plain(http::status::ok, "dirgw metrics: GET /metrics (Prometheus text format)\n")
          : plain(http::status::not_found, "not found\n");
  if (head) {
    r.content_length(r.body().size());  // HEAD: the headers GET would have, no body
    r.body().clear();
  }
  return r;
}

}  // namespace

namespace detail {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<Shared> shared)
      : socket_(std::move(socket)), deadline_(socket_.get_executor()), shared_(std::move(shared)) {
    // The header, request line included, is at most max_request_bytes. A body is never read
    // (no method we serve has one); one announced larger than that is refused with 413.
    parser_.header_limit(static_cast<std::uint32_t>(shared_->options.max_request_bytes));
    parser_.body_limit(shared_->options.max_request_bytes);
  }

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
    append_header_bytes(std::string_view(chunk_.data(), n));
    error_code parse_ec;
    const std::size_t used = parser_.put(asio::buffer(pending_), parse_ec);
    pending_.erase(0, used);
    header_bytes_ += used;
    // Boost 1.74's header_limit bounds the request line and the fields each on its own, so the
    // whole header (its final empty line included) is measured here as well.
    const std::size_t limit = shared_->options.max_request_bytes;
    if (parse_ec == http::error::need_more || (!parse_ec && !parser_.is_header_done())) {
      if (header_bytes_ + pending_.size() >= limit)
        return respond(rejection(http::error::header_limit));
      return read();
    }
    if (parse_ec) return respond(rejection(parse_ec));
    if (header_bytes_ > limit) return respond(rejection(http::error::header_limit));
    respond(route(parser_.get(), shared_->registry));
  }

  // Beast wants CRLF line ends. RFC 9112 section 2.2 lets a server take a bare LF as one, and a
  // hand-typed request (printf 'GET /metrics HTTP/1.0\n\n' | nc) has them: they become CRLF.
  void append_header_bytes(std::string_view bytes) {
    for (char c : bytes) {
      if (c == '\n' && !after_cr_) pending_ += '\r';
      pending_ += c;
      after_cr_ = c == '\r';
    }
  }

  void respond(Response response) {
    response_ = std::move(response);
    response_.set(http::field::cache_control, "no-store");
    response_.keep_alive(false);  // one request per connection: "Connection: close"
    if (response_.find(http::field::content_length) == response_.end())
      response_.content_length(response_.body().size());
    http::async_write(socket_, response_,
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
  std::string pending_;  // received, CRLF-normalised, not yet taken by the parser
  bool after_cr_ = false;
  std::size_t header_bytes_ = 0;  // taken by the parser so far: all of them are header
  http::request_parser<http::empty_body> parser_;
  Response response_;
};

}  // namespace detail

namespace {

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
      std::make_shared<detail::Session>(std::move(socket), shared)->start();
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
  std::vector<std::shared_ptr<detail::Session>> open;
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
