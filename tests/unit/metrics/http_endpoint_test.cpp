#include "metrics/http_endpoint.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <optional>
#include <thread>

#include "metrics/exposition.h"

namespace dirgw::metrics {
namespace {

namespace asio = boost::asio;

// A blocking test client on plain sockets, every wait bounded so a broken server fails the test
// instead of hanging it.
class Client {
 public:
  explicit Client(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }
  bool send(std::string_view data) {
    while (!data.empty()) {
      auto n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  // Everything until the server closes; nullopt if it has not closed within `limit`.
  std::optional<std::string> read_to_eof(
      std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    std::string out;
    const auto until = std::chrono::steady_clock::now() + limit;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
      char buf[4096];
      auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0) return out;
      if (n < 0) return errno == ECONNRESET ? std::optional<std::string>(out) : std::nullopt;
      out.append(buf, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

struct Reply {
  std::string status_line;
  std::string headers;
  std::string body;
};

Reply split(const std::string& raw) {
  Reply r;
  auto eol = raw.find("\r\n");
  auto end = raw.find("\r\n\r\n");
  if (eol == std::string::npos || end == std::string::npos) {
    r.status_line = raw;
    return r;
  }
  r.status_line = raw.substr(0, eol);
  r.headers = raw.substr(eol + 2, end - eol);
  r.body = raw.substr(end + 4);
  return r;
}

class EndpointTest : public ::testing::Test {
 protected:
  EndpointTest() {
    registry_.counter("dirgw_test_total", "A test counter.").inc(7);
    registry_.gauge_family("dirgw_test_gauge", "A gauge.", {"destination"}).with({"hdirs"}).set(2);
  }

  void start(EndpointOptions options = {}) {
    endpoint_ = std::make_unique<HttpEndpoint>(io_, registry_, std::move(options));
    auto r = endpoint_->start();
    ASSERT_TRUE(r) << r.error().to_string();
    port_ = endpoint_->port();
    ASSERT_NE(port_, 0);
    guard_.emplace(io_.get_executor());  // run() lasts until the fixture ends, not until idle
    thread_ = std::thread([this] { io_.run(); });
  }

  void stop_endpoint() {
    std::promise<void> done;
    asio::post(io_, [&] {
      endpoint_->stop();
      done.set_value();
    });
    done.get_future().wait();
  }

  ~EndpointTest() override {
    if (thread_.joinable()) {
      stop_endpoint();
      guard_.reset();
      thread_.join();
    }
  }

  Reply exchange(std::string_view request) {
    Client c(port_);
    EXPECT_TRUE(c.connected());
    EXPECT_TRUE(c.send(request));
    auto raw = c.read_to_eof();
    EXPECT_TRUE(raw.has_value()) << "server did not close the connection";
    return split(raw.value_or(""));
  }

  Registry registry_;
  asio::io_context io_;
  std::unique_ptr<HttpEndpoint> endpoint_;
  std::uint16_t port_ = 0;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard_;
  std::thread thread_;
};

TEST_F(EndpointTest, GetMetricsAnswersTheTextFormat) {
  start();
  auto r = exchange("GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n");
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_NE(r.headers.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            std::string::npos);
  EXPECT_NE(r.headers.find("Connection: close\r\n"), std::string::npos);
  const std::string expected = render_text(registry_);
  EXPECT_NE(r.headers.find("Content-Length: " + std::to_string(expected.size()) + "\r\n"),
            std::string::npos);
  EXPECT_EQ(r.body, expected);
  EXPECT_NE(r.body.find("dirgw_test_total 7\n"), std::string::npos);
  EXPECT_NE(r.body.find("dirgw_test_gauge{destination=\"hdirs\"} 2\n"), std::string::npos);
}

TEST_F(EndpointTest, QueryStringIsIgnoredAndBareLineFeedsAreAccepted) {
  start();
  auto r = exchange("GET /metrics?x=1 HTTP/1.0\n\n");
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r.body, render_text(registry_));
}

TEST_F(EndpointTest, RequestSplitAcrossWrites) {
  start();
  Client c(port_);
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send("GET /metr"));
  ASSERT_TRUE(c.send("ics HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto raw = c.read_to_eof();
  ASSERT_TRUE(raw);
  EXPECT_EQ(split(*raw).status_line, "HTTP/1.1 200 OK");
}

TEST_F(EndpointTest, HeadHasHeadersWithoutBody) {
  start();
  auto r = exchange("HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_NE(
      r.headers.find("Content-Length: " + std::to_string(render_text(registry_).size()) + "\r\n"),
      std::string::npos);
  EXPECT_EQ(r.body, "");
}

TEST_F(EndpointTest, RootPointsToMetrics) {
  start();
  auto r = exchange("GET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_NE(r.body.find("/metrics"), std::string::npos);
  EXPECT_NE(r.headers.find("Content-Type: text/plain; charset=utf-8\r\n"), std::string::npos);
}

TEST_F(EndpointTest, UnknownPathIs404) {
  start();
  auto r = exchange("GET /metricsx HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.status_line, "HTTP/1.1 404 Not Found");
}

TEST_F(EndpointTest, OtherMethodsAre405) {
  start();
  for (const char* m : {"POST", "PUT", "DELETE", "OPTIONS"}) {
    auto r = exchange(std::string(m) + " /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    EXPECT_EQ(r.status_line, "HTTP/1.1 405 Method Not Allowed") << m;
    EXPECT_NE(r.headers.find("Allow: GET, HEAD\r\n"), std::string::npos) << m;
  }
}

TEST_F(EndpointTest, MalformedRequestLineIs400) {
  start();
  EXPECT_EQ(exchange("hello\r\n\r\n").status_line, "HTTP/1.1 400 Bad Request");
  EXPECT_EQ(exchange("GET /metrics SPDY/3\r\n\r\n").status_line, "HTTP/1.1 400 Bad Request");
  EXPECT_EQ(exchange("GET  /metrics HTTP/1.1\r\n\r\n").status_line, "HTTP/1.1 400 Bad Request");
}

TEST_F(EndpointTest, OversizeHeaderIs431) {
  start();
  std::string request = "GET /metrics HTTP/1.1\r\nX-Filler: " + std::string(9000, 'a') + "\r\n\r\n";
  auto r = exchange(request);
  EXPECT_EQ(r.status_line, "HTTP/1.1 431 Request Header Fields Too Large");
}

TEST_F(EndpointTest, HeaderEndingJustPastTheLimitIs431) {
  EndpointOptions o;
  o.max_request_bytes = 64;
  start(o);
  std::string request = "GET /metrics HTTP/1.1\r\nX: " + std::string(40, 'a') + "\r\n\r\n";
  ASSERT_GT(request.size(), 64u);
  EXPECT_EQ(exchange(request).status_line, "HTTP/1.1 431 Request Header Fields Too Large");
}

// Beast parses the whole header, not only the request line: a broken field is refused.
TEST_F(EndpointTest, MalformedHeaderFieldIs400) {
  start();
  EXPECT_EQ(exchange("GET /metrics HTTP/1.1\r\nNo colon here\r\n\r\n").status_line,
            "HTTP/1.1 400 Bad Request");
  EXPECT_EQ(exchange("GET /metrics HTTP/1.1\r\nContent-Length: many\r\n\r\n").status_line,
            "HTTP/1.1 400 Bad Request");
  EXPECT_EQ(exchange("GET /metrics HTTP/2.0\r\n\r\n").status_line, "HTTP/1.1 400 Bad Request");
}

TEST_F(EndpointTest, HeaderExactlyAtTheLimitIsServed) {
  const std::string request = "GET /metrics HTTP/1.1\r\nX: aaaa\r\n\r\n";
  EndpointOptions o;
  o.max_request_bytes = request.size();
  start(o);
  EXPECT_EQ(exchange(request).status_line, "HTTP/1.1 200 OK");
}

// A body is never read; one announced larger than max_request_bytes is refused before it comes.
TEST_F(EndpointTest, AnnouncedBodyOverTheLimitIs413) {
  start();
  auto r = exchange("GET /metrics HTTP/1.1\r\nContent-Length: 100000\r\n\r\n");
  EXPECT_EQ(r.status_line, "HTTP/1.1 413 Payload Too Large");
  EXPECT_NE(r.headers.find("Connection: close\r\n"), std::string::npos);
  // A small one is ignored: the answer does not wait for it.
  EXPECT_EQ(exchange("POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\n").status_line,
            "HTTP/1.1 405 Method Not Allowed");
}

TEST_F(EndpointTest, IdleClientIsClosedAfterTheTimeout) {
  EndpointOptions o;
  o.timeout = std::chrono::milliseconds(200);
  start(o);
  Client silent(port_);
  ASSERT_TRUE(silent.connected());
  Client slow(port_);
  ASSERT_TRUE(slow.connected());
  ASSERT_TRUE(slow.send("GET /metrics HTTP/1.1\r\n"));  // never finishes its header
  const auto t0 = std::chrono::steady_clock::now();
  auto a = silent.read_to_eof(std::chrono::seconds(10));
  auto b = slow.read_to_eof(std::chrono::seconds(10));
  ASSERT_TRUE(a.has_value()) << "idle connection still open";
  ASSERT_TRUE(b.has_value()) << "slow connection still open";
  EXPECT_EQ(*a, "");  // closed without an answer
  EXPECT_EQ(*b, "");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  // The endpoint still serves.
  EXPECT_EQ(exchange("GET /metrics HTTP/1.1\r\n\r\n").status_line, "HTTP/1.1 200 OK");
}

TEST_F(EndpointTest, ConnectionsOverTheLimitAreClosed) {
  EndpointOptions o;
  o.max_connections = 1;
  start(o);
  Client first(port_);
  ASSERT_TRUE(first.connected());
  Client second(port_);
  ASSERT_TRUE(second.connected());
  auto refused = second.read_to_eof(std::chrono::seconds(10));
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(*refused, "");
  ASSERT_TRUE(first.send("GET /metrics HTTP/1.1\r\n\r\n"));
  auto served = first.read_to_eof();
  ASSERT_TRUE(served);
  EXPECT_EQ(split(*served).status_line, "HTTP/1.1 200 OK");
}

TEST_F(EndpointTest, StopClosesOpenConnections) {
  start();
  Client idle(port_);
  ASSERT_TRUE(idle.connected());
  // Make sure the server has accepted it before stopping.
  EXPECT_EQ(exchange("GET / HTTP/1.1\r\n\r\n").status_line, "HTTP/1.1 200 OK");
  stop_endpoint();
  auto r = idle.read_to_eof(std::chrono::seconds(10));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, "");
  EXPECT_EQ(endpoint_->port(), 0);
  Client after(port_);
  EXPECT_FALSE(after.connected());
}

TEST(Endpoint, StartErrorsNameTheAddress) {
  Registry registry;
  asio::io_context io;
  EndpointOptions bad;
  bad.address = "not-an-address";
  HttpEndpoint e1(io, registry, bad);
  auto r1 = e1.start();
  ASSERT_FALSE(r1);
  EXPECT_EQ(r1.error().code, ErrorCode::kConfig);
  EXPECT_NE(r1.error().detail.find("not-an-address"), std::string::npos);

  HttpEndpoint e2(io, registry, EndpointOptions{});
  ASSERT_TRUE(e2.start());
  EndpointOptions taken;
  taken.port = e2.port();
  HttpEndpoint e3(io, registry, taken);
  auto r3 = e3.start();
  ASSERT_FALSE(r3);
  EXPECT_EQ(r3.error().code, ErrorCode::kIo);
  EXPECT_NE(r3.error().detail.find("127.0.0.1 port " + std::to_string(taken.port)),
            std::string::npos);
}

}  // namespace
}  // namespace dirgw::metrics
