#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <thread>

#include "control/protocol.h"
#include "control/server.h"

namespace dirgw::control {
namespace {

using nlohmann::json;

class ControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dirgw-ctl-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = (dir_ / "control.sock").string();
  }
  void TearDown() override {
    stop();
    std::filesystem::remove_all(dir_);
  }
  void start(Handler h) {
    server_ = std::make_unique<Server>(io_, path_, std::move(h));
    ASSERT_TRUE(server_->start().ok());
    thread_ = std::thread([this] { io_.run(); });
  }
  void stop() {
    if (thread_.joinable()) {
      boost::asio::post(io_, [this] { server_->stop(); });
      io_.stop();
      thread_.join();
    }
  }
  std::filesystem::path dir_;
  std::string path_;
  boost::asio::io_context io_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

TEST(Protocol, ParseRequestNeedsAnObjectWithCmd) {
  EXPECT_TRUE(parse_request(R"({"cmd":"status"})").ok());
  EXPECT_FALSE(parse_request("status").ok());
  EXPECT_FALSE(parse_request("[1,2]").ok());
  EXPECT_FALSE(parse_request(R"({"command":"status"})").ok());
  EXPECT_FALSE(parse_request(R"({"cmd":5})").ok());
  EXPECT_EQ(parse_request("{").error().detail, "request is not a JSON object");
}

TEST(Protocol, EncodeIsOneLineEvenWithNewlinesAndBadUtf8InValues) {
  std::string bad = "line1\nline2 \xff";
  auto line = encode({{"error", bad}});
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  EXPECT_FALSE(json::parse(line, nullptr, false).is_discarded());
}

TEST(Protocol, CallWithNoDaemonSaysItIsNotRunning) {
  auto r = call("/tmp/dirgw-no-such-dir/control.sock", {{"cmd", "status"}}, 1000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().detail.find("not running"), std::string::npos);
}

TEST_F(ControlTest, RoundTripCarriesPeerCredentials) {
  start([](const json& req, const Peer& peer) {
    return json{{"ok", true}, {"echo", req["cmd"]}, {"uid", peer.uid}, {"pid", peer.pid}};
  });
  auto r = call(path_, {{"cmd", "status"}});
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ((*r)["echo"], "status");
  EXPECT_EQ((*r)["uid"], ::geteuid());
  EXPECT_EQ((*r)["pid"], ::getpid());
}

TEST_F(ControlTest, SocketIsGroupOnly) {
  start([](const json&, const Peer&) { return json{{"ok", true}}; });
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST_F(ControlTest, MalformedRequestGetsAnErrorAnswerNotAHang) {
  start([](const json&, const Peer&) { return json{{"ok", true}}; });
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, path_.c_str());
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const char req[] = "not json\n";
  ASSERT_EQ(::write(fd, req, sizeof req - 1), static_cast<ssize_t>(sizeof req - 1));
  char buf[512] = {};
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  ASSERT_GT(n, 0);
  auto answer = json::parse(std::string(buf, static_cast<std::size_t>(n)));
  EXPECT_FALSE(answer["ok"].get<bool>());
  EXPECT_EQ(answer["error"], "request is not a JSON object");
}

TEST_F(ControlTest, HandlerExceptionBecomesInternalError) {
  start([](const json&, const Peer&) -> json { throw std::runtime_error("boom"); });
  auto r = call(path_, {{"cmd", "status"}});
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE((*r)["ok"].get<bool>());
  EXPECT_EQ((*r)["error"], "internal error");
}

TEST_F(ControlTest, PermissionDeniedIsReportedAsSuch) {
  start([](const json&, const Peer&) { return json{{"ok", true}}; });
  ::chmod(path_.c_str(), 0660);
  // Root connects whatever the mode: ask as an unprivileged user (nobody) in a child process.
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(5);
    auto r = call(path_, {{"cmd", "status"}}, 2000);
    ::_exit(r.ok() ? 0 : r.error().code == ErrorCode::kRefused ? 3 : 4);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3) << "expected kRefused (permission denied)";
}

}  // namespace
}  // namespace dirgw::control
