// The metrics endpoint: a minimal HTTP/1.1 server on the daemon's io_context that answers
// GET /metrics with the Prometheus text format. Off by default; binds to 127.0.0.1 unless told
// otherwise. Boost.Beast parses the request and writes the response; this module owns the
// limits. One request per connection (Connection: close); a request header is at most
// max_request_bytes (else 431), a body is never read and one announced larger than that is
// refused (413); a connection lives at most `timeout` from accept to close, so a slow or silent
// client cannot pin it; at most max_connections at once (more are closed on accept).
// Single-threaded: run the io_context on one thread and call start()/stop() from it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/asio.h"
#include "common/result.h"
#include "metrics/metrics.h"

namespace dirgw::metrics {

struct EndpointOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;  // 0: any free port (tests); see port()
  std::chrono::milliseconds timeout{5000};
  std::size_t max_request_bytes = 8192;
  std::size_t max_connections = 16;
};

class HttpEndpoint {
 public:
  // The registry must outlive the endpoint's last scrape: stop() before destroying what the
  // registry's callbacks read.
  HttpEndpoint(boost::asio::io_context& io, const Registry& registry, EndpointOptions options);
  ~HttpEndpoint();
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  // Binds and listens; errors name the address and port.
  Result<void> start();
  // Closes the listener and every open connection; no scrape runs after it returns.
  void stop();
  // The bound port after start() (the real one when options.port was 0); 0 when stopped.
  std::uint16_t port() const;

  struct Shared;

 private:
  boost::asio::io_context& io_;
  const Registry& registry_;
  EndpointOptions options_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace dirgw::metrics
