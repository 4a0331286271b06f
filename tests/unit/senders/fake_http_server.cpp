#include "fake_http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <stdexcept>

namespace dirgw::testing {

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

bool write_all(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  return true;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 202:
      return "Accepted";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 409:
      return "Conflict";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

// Header lines after the first, up to the blank line; names lower-cased.
std::map<std::string, std::string> parse_headers(const std::string& block) {
  std::map<std::string, std::string> headers;
  std::size_t pos = 0;
  while (pos < block.size()) {
    auto eol = block.find("\r\n", pos);
    if (eol == std::string::npos) eol = block.size();
    std::string line = block.substr(pos, eol - pos);
    pos = eol + 2;
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    headers[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
  }
  return headers;
}

}  // namespace

FakeHttpServer::FakeHttpServer(Handler handler, Mode mode)
    : handler_(std::move(handler)), mode_(mode) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error("socket");
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 8) != 0)
    throw std::runtime_error("bind/listen");
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { run(); });
}

FakeHttpServer::~FakeHttpServer() {
  stop_ = true;
  thread_.join();
  ::close(listen_fd_);
}

std::vector<HttpRequest> FakeHttpServer::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

void FakeHttpServer::run() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ++connections_;
    if (mode_ == Mode::kStall) {
      stall(fd);
    } else {
      serve(fd);
    }
    ::close(fd);
  }
}

bool FakeHttpServer::fill(int fd, std::string& buf, std::size_t n) {
  char chunk[65536];
  while (buf.size() < n) {
    if (stop_) return false;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, 20);
    if (r == 0) continue;
    if (r < 0) return false;
    ssize_t got = ::recv(fd, chunk, sizeof chunk, 0);
    if (got <= 0) return false;
    buf.append(chunk, static_cast<std::size_t>(got));
  }
  return true;
}

bool FakeHttpServer::fill_until(int fd, std::string& buf, std::string_view marker,
                                std::size_t& at) {
  for (;;) {
    at = buf.find(marker);
    if (at != std::string::npos) return true;
    if (!fill(fd, buf, buf.size() + 1)) return false;
  }
}

void FakeHttpServer::serve(int fd) {
  std::string buf;
  for (;;) {
    // A TLS ClientHello (record type 0x16) on this plain port: hang up, as a confused peer would.
    if (!fill(fd, buf, 1) || buf[0] == '\x16') return;
    std::size_t end = 0;
    if (!fill_until(fd, buf, "\r\n\r\n", end)) return;
    HttpRequest req;
    std::string head = buf.substr(0, end);
    buf.erase(0, end + 4);
    auto eol = head.find("\r\n");
    std::string request_line = head.substr(0, eol);
    auto sp1 = request_line.find(' ');
    auto sp2 = request_line.find(' ', sp1 + 1);
    req.method = request_line.substr(0, sp1);
    req.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    req.headers = parse_headers(eol == std::string::npos ? std::string() : head.substr(eol + 2));

    auto expect = req.headers.find("expect");
    if (expect != req.headers.end() && lower(expect->second) == "100-continue") {
      if (!write_all(fd, "HTTP/1.1 100 Continue\r\n\r\n")) return;
    }
    std::size_t length = 0;
    if (auto cl = req.headers.find("content-length"); cl != req.headers.end())
      length = std::stoul(cl->second);
    if (!fill(fd, buf, length)) return;
    req.body = buf.substr(0, length);
    buf.erase(0, length);

    HttpResponse resp = handler_(req);
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(std::move(req));
    }
    std::string out =
        "HTTP/1.1 " + std::to_string(resp.status) + " " + reason_phrase(resp.status) + "\r\n";
    for (const auto& [k, v] : resp.headers) out.append(k).append(": ").append(v).append("\r\n");
    out += "Content-Length: " + std::to_string(resp.body.size()) + "\r\n\r\n";
    out += resp.body;
    if (!write_all(fd, out)) return;
  }
}

void FakeHttpServer::stall(int fd) {
  char chunk[65536];
  while (!stop_) {
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, 20);
    if (r < 0) return;
    if (r == 0) continue;
    ssize_t got = ::recv(fd, chunk, sizeof chunk, 0);
    if (got <= 0) {
      // Peer gave up: wait for the test to finish rather than accept again.
      while (!stop_) ::poll(nullptr, 0, 20);
      return;
    }
  }
}

std::optional<std::vector<MultipartPart>> parse_multipart(const std::string& body,
                                                          const std::string& boundary) {
  const std::string first = "--" + boundary + "\r\n";
  const std::string delim = "\r\n--" + boundary;
  if (body.compare(0, first.size(), first) != 0) return std::nullopt;
  std::vector<MultipartPart> parts;
  std::size_t pos = first.size();
  for (;;) {
    auto head_end = body.find("\r\n\r\n", pos);
    if (head_end == std::string::npos) return std::nullopt;
    MultipartPart part;
    part.headers = parse_headers(body.substr(pos, head_end - pos + 2));
    std::size_t data_start = head_end + 4;
    auto next = body.find(delim, data_start);
    if (next == std::string::npos) return std::nullopt;
    part.data = body.substr(data_start, next - data_start);
    parts.push_back(std::move(part));
    pos = next + delim.size();
    if (body.compare(pos, 4, "--\r\n") == 0) {
      if (pos + 4 != body.size()) return std::nullopt;
      return parts;
    }
    if (body.compare(pos, 2, "\r\n") != 0) return std::nullopt;
    pos += 2;
  }
}

std::string boundary_of(const std::string& content_type) {
  auto at = lower(content_type).find("boundary=");
  if (at == std::string::npos) return {};
  std::string b = content_type.substr(at + 9);
  auto semi = b.find(';');
  if (semi != std::string::npos) b = b.substr(0, semi);
  b = trim(b);
  if (b.size() >= 2 && b.front() == '"' && b.back() == '"') b = b.substr(1, b.size() - 2);
  return b;
}

}  // namespace dirgw::testing
