#include "control/protocol.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/files.h"

namespace dirgw::control {

Result<nlohmann::json> parse_request(const std::string& line) {
  if (line.size() > kMaxMessage)
    return make_error(ErrorCode::kInvalidArgument, "request too large");
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return make_error(ErrorCode::kInvalidArgument, "request is not a JSON object");
  if (!j.contains("cmd") || !j["cmd"].is_string())
    return make_error(ErrorCode::kInvalidArgument, "request has no \"cmd\"");
  return j;
}

std::string encode(const nlohmann::json& message) {
  return message.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

Result<nlohmann::json> call(const std::string& socket_path, const nlohmann::json& request,
                            int timeout_ms) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path)
    return make_error(ErrorCode::kInvalidArgument, "socket path too long");
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return make_error(ErrorCode::kIo, "socket: " + errno_text(errno));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    if (err == EACCES || err == EPERM)
      return make_error(ErrorCode::kRefused,
                        "permission denied on " + socket_path +
                            " (run as root or as a member of the dirgw group)");
    return make_error(ErrorCode::kUnavailable,
                      "the dirgw daemon is not running (nothing answers on " + socket_path + ": " +
                          errno_text(err) + ")");
  }
  const std::string out = encode(request);
  std::size_t off = 0;
  while (off < out.size()) {
    ssize_t n = ::send(fd.get(), out.data() + off, out.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(ErrorCode::kUnavailable,
                        "daemon closed the connection: " + errno_text(errno));
    }
    off += static_cast<std::size_t>(n);
  }
  std::string in;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[65536];
  while (in.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) return make_error(ErrorCode::kTimeout, "the daemon did not answer in time");
    pollfd p{fd.get(), POLLIN, 0};
    int rc = ::poll(&p, 1, static_cast<int>(left));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) return make_error(ErrorCode::kTimeout, "the daemon did not answer in time");
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return make_error(ErrorCode::kUnavailable, "the daemon closed the connection");
    in.append(buf, static_cast<std::size_t>(n));
    if (in.size() > kMaxMessage * 64) return make_error(ErrorCode::kProtocol, "answer too large");
  }
  auto j = nlohmann::json::parse(in.substr(0, in.find('\n')), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return make_error(ErrorCode::kProtocol, "the daemon's answer is not JSON");
  return j;
}

}  // namespace dirgw::control
