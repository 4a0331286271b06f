// A tiny HTTP/1.1 peer on 127.0.0.1 (port 0) for the STOW-RS sender's unit tests: one thread,
// one connection at a time, keep-alive, Content-Length bodies, "Expect: 100-continue".
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace dirgw::testing {

struct HttpRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

class FakeHttpServer {
 public:
  enum class Mode {
    kAnswer,  // read requests, answer with the handler
    kStall,   // accept, read whatever comes, never answer
  };
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  explicit FakeHttpServer(Handler handler, Mode mode = Mode::kAnswer);
  ~FakeHttpServer();
  FakeHttpServer(const FakeHttpServer&) = delete;
  FakeHttpServer& operator=(const FakeHttpServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int connections() const { return connections_.load(); }
  std::vector<HttpRequest> requests() const;

 private:
  void run();
  void serve(int fd);
  void stall(int fd);
  // Reads until `n` bytes are buffered; false on close, error or stop.
  bool fill(int fd, std::string& buf, std::size_t n);
  bool fill_until(int fd, std::string& buf, std::string_view marker, std::size_t& at);

  Handler handler_;
  Mode mode_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  mutable std::mutex mu_;
  std::vector<HttpRequest> requests_;
  std::thread thread_;
};

struct MultipartPart {
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string data;
};

// Splits a multipart body (RFC 2046) strictly: nullopt unless it is well formed.
std::optional<std::vector<MultipartPart>> parse_multipart(const std::string& body,
                                                          const std::string& boundary);

// The boundary parameter of a Content-Type, unquoted; empty when absent.
std::string boundary_of(const std::string& content_type);

}  // namespace dirgw::testing
