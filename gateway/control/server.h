// The control socket: the daemon's side of the CLI protocol, on the daemon's io_context.
// The socket file is created 0660 (group dirgw); each request carries the caller's peer
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
};

}  // namespace dirgw::control
