// The control protocol between the `dirgw` CLI and the daemon: one JSON request per line over
// a Unix socket, one JSON response line back. {"cmd": "status"} -> {"ok": true, ...} or
// {"ok": false, "error": "..."}.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "common/result.h"

namespace dirgw::control {

inline constexpr std::size_t kMaxMessage = 1 << 20;

struct Peer {
  int pid = -1;
  unsigned uid = 0, gid = 0;
};

// Client side: connects, sends one request, returns the response (or why it could not).
// ErrorCode::kUnavailable when no daemon listens on the socket, kRefused when permission is
// denied.
Result<nlohmann::json> call(const std::string& socket_path, const nlohmann::json& request,
                            int timeout_ms = 30000);

// Parses one request line; a malformed one gives an error value.
Result<nlohmann::json> parse_request(const std::string& line);
std::string encode(const nlohmann::json& message);

}  // namespace dirgw::control
