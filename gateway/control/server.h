// The control socket: the daemon's side of the CLI protocol. Connections live on the daemon's
// io_context; handlers run one at a time on a worker thread of the server's own (a handler may
// wait). The socket file is created 0660 (group dirgw); each request carries the caller's peer
// credentials to the handler, which may refuse it.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include "common/asio.h"

#include "common/result.h"
#include "control/protocol.h"

namespace dirgw::control {

using Handler = std::function<nlohmann::json(const nlohmann::json& request, const Peer& peer)>;

class Server {
 public:
  Server(boost::asio::io_context& io, std::string path, Handler handler);
  ~Server();
  Result<void> start();
  void stop();

 private:
  void accept();
  boost::asio::io_context& io_;
  std::string path_;
  Handler handler_;
  std::unique_ptr<boost::asio::local::stream_protocol::acceptor> acceptor_;
  boost::asio::thread_pool workers_{1};  // handlers run here, one at a time, off the event loop
};

}  // namespace dirgw::control
