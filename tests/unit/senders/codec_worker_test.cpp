// The codec process (senders/transcode/codec_worker.h), with the real worker: the dirgwd built
// beside this test, started as `dirgwd --codec-worker` by CodecWorker as the daemon starts it.
#include "senders/transcode/codec_worker.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "senders/transcode/decompress.h"

namespace dirgw::senders::transcode {
namespace {

namespace fs = std::filesystem;

const fs::path kCodecFieldFiles = "/usr/lib/python3/dist-packages/pydicom/data/test_files";
constexpr const char* kExplicit = "1.2.840.10008.1.2.1";

std::string read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

CodecSettings worker(std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  CodecSettings s;
  s.program = DIRGWD_PATH;
  s.command = {"dirgwd", "--codec-worker", "--memory-limit", std::to_string(2ull << 30)};
  s.timeout = timeout;
  return s;
}

class CodecWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("codec-worker-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    ::unsetenv("DIRGW_FAULT_FOR_TEST");
  }
  void TearDown() override {
    ::unsetenv("DIRGW_FAULT_FOR_TEST");
    fs::remove_all(dir_);
  }
  std::size_t files_left() const {
    return static_cast<std::size_t>(std::distance(fs::directory_iterator(dir_), {}));
  }
  fs::path dir_;
};

TEST_F(CodecWorkerTest, DecompressesInTheWorkerAsInProcess) {
  CodecWorker w(worker());
  for (const char* name : {"MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm",
                           "MR_small_jp2klossless.dcm", "SC_rgb_jpeg_dcmtk.dcm"}) {
    const Attempt in_worker = w.decompress(kCodecFieldFiles / name, kExplicit, dir_);
    ASSERT_EQ(in_worker.kind, Attempt::Kind::kTranscoded) << name << ": " << in_worker.reason;
    ASSERT_TRUE(in_worker.copy);
    EXPECT_EQ(in_worker.copy->path.parent_path(), dir_);
    EXPECT_EQ(in_worker.copy->size, fs::file_size(in_worker.copy->path));
    const Attempt here = decompress_file(kCodecFieldFiles / name, kExplicit, dir_ / "here.dcm");
    ASSERT_EQ(here.kind, Attempt::Kind::kTranscoded) << here.reason;
    EXPECT_TRUE(read_all(in_worker.copy->path) == read_all(here.copy->path))
        << name << ": the worker's copy differs from the in-process one";
    fs::remove(in_worker.copy->path);
    fs::remove(here.copy->path);
  }
  EXPECT_EQ(w.started(), 1u) << "one worker for every job";
  EXPECT_EQ(w.failed(), 0u);
}

TEST_F(CodecWorkerTest, TranscodesToJpegLsInTheWorker) {
  CodecWorker w(worker());
  Options o;
  o.tmp_dir = dir_;
  const Attempt a = w.jpeg_ls(kCodecFieldFiles / "MR_small.dcm", o);
  ASSERT_EQ(a.kind, Attempt::Kind::kTranscoded) << a.reason;
  EXPECT_FALSE(verify_copy(a.copy->path, kCodecFieldFiles / "MR_small.dcm"));
  fs::remove(a.copy->path);
  // What the codec refuses comes back as such, with its reason.
  const Attempt skipped = w.jpeg_ls(kCodecFieldFiles / "MR_small_RLE.dcm", o);
  EXPECT_EQ(skipped.kind, Attempt::Kind::kSkipped);
  EXPECT_FALSE(skipped.reason.empty());
  EXPECT_EQ(files_left(), 0u);
}

TEST_F(CodecWorkerTest, NotDecodableIsSkippedWithTheReason) {
  CodecWorker w(worker());
  const Attempt a =
      w.decompress(kCodecFieldFiles / "MR_small_RLE.dcm", "1.2.840.10008.1.2.4.50", dir_);
  EXPECT_EQ(a.kind, Attempt::Kind::kError);
  EXPECT_NE(a.reason.find("not a native transfer syntax"), std::string::npos) << a.reason;
  const Attempt missing = w.decompress(dir_ / "no-such-file.dcm", kExplicit, dir_);
  EXPECT_EQ(missing.kind, Attempt::Kind::kError);
  EXPECT_NE(missing.reason.find("cannot read"), std::string::npos) << missing.reason;
  EXPECT_EQ(files_left(), 0u);
}

TEST_F(CodecWorkerTest, ACrashCostsTheJobAndTheNextStartsAFreshWorker) {
  CodecWorker w(worker());
  ::setenv("DIRGW_FAULT_FOR_TEST", "codec-crash", 1);
  const Attempt crashed = w.decompress(kCodecFieldFiles / "MR_small_RLE.dcm", kExplicit, dir_);
  EXPECT_EQ(crashed.kind, Attempt::Kind::kCodecFailed);
  EXPECT_NE(crashed.reason.find("ended by signal 6 (SIGABRT)"), std::string::npos)
      << crashed.reason;
  EXPECT_EQ(w.failed(), 1u);
  ::unsetenv("DIRGW_FAULT_FOR_TEST");
  const Attempt next = w.decompress(kCodecFieldFiles / "MR_small_RLE.dcm", kExplicit, dir_);
  EXPECT_EQ(next.kind, Attempt::Kind::kTranscoded) << next.reason;
  EXPECT_EQ(w.started(), 2u);
  if (next.copy) fs::remove(next.copy->path);
  EXPECT_EQ(files_left(), 0u);
}

TEST_F(CodecWorkerTest, AHungJobIsStoppedAtTheTimeOut) {
  CodecWorker w(worker(std::chrono::milliseconds(300)));
  ::setenv("DIRGW_FAULT_FOR_TEST", "codec-hang", 1);
  const auto t0 = std::chrono::steady_clock::now();
  const Attempt a = w.decompress(kCodecFieldFiles / "MR_small_RLE.dcm", kExplicit, dir_);
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(a.kind, Attempt::Kind::kCodecFailed);
  EXPECT_NE(a.reason.find("did not finish within 300 ms and was stopped"), std::string::npos)
      << a.reason;
  EXPECT_GE(took, std::chrono::milliseconds(300));
  EXPECT_EQ(w.failed(), 1u);
  EXPECT_EQ(files_left(), 0u);
}

TEST_F(CodecWorkerTest, AProgramThatCannotStartIsAnErrorToRetry) {
  CodecSettings s = worker();
  s.program = (dir_ / "no-such-program").string();
  CodecWorker w(s);
  const Attempt a = w.decompress(kCodecFieldFiles / "MR_small_RLE.dcm", kExplicit, dir_);
  EXPECT_EQ(a.kind, Attempt::Kind::kError);
  EXPECT_NE(a.reason.find("cannot start the codec process"), std::string::npos) << a.reason;
}

TEST_F(CodecWorkerTest, WithoutAProgramTheCodecsRunInThisProcess) {
  CodecWorker w(CodecSettings{});
  const Attempt a = w.decompress(kCodecFieldFiles / "MR_small_RLE.dcm", kExplicit, dir_);
  ASSERT_EQ(a.kind, Attempt::Kind::kTranscoded) << a.reason;
  EXPECT_EQ(w.started(), 0u);
  fs::remove(a.copy->path);
}

// In its sandbox (sandbox.h) the worker decodes what it may read and writes where it may; any
// other file is out of its reach (the test-only fault opens one and reports how it went).
TEST_F(CodecWorkerTest, TheSandboxedWorkerReadsAndWritesOnlyWhereItIsTold) {
  CodecSettings s = worker();
  s.command.insert(s.command.end(),
                   {"--read", kCodecFieldFiles.string(), "--write", dir_.string()});
  CodecWorker w(s);
  const Attempt a = w.decompress(kCodecFieldFiles / "MR_small_RLE.dcm", kExplicit, dir_);
  ASSERT_EQ(a.kind, Attempt::Kind::kTranscoded) << a.reason;
  fs::remove(a.copy->path);
  { std::ofstream(dir_ / "inside.txt") << "x"; }
  for (const auto& [path, expected] : std::vector<std::pair<std::string, std::string>>{
           {(dir_ / "inside.txt").string(), "opened"},
           {(kCodecFieldFiles / "MR_small.dcm").string(), "opened"},
           {"/etc/hostname", "Permission denied"},
           {std::string(DIRGWD_PATH), "Permission denied"}}) {
    ::setenv("DIRGW_FAULT_FOR_TEST", ("codec-open:" + path).c_str(), 1);
    CodecWorker probe(s);
    const Attempt t = probe.decompress(kCodecFieldFiles / "MR_small_RLE.dcm", kExplicit, dir_);
    EXPECT_EQ(t.kind, Attempt::Kind::kSkipped);
    EXPECT_NE(t.reason.find("test open of " + path + ": " + expected), std::string::npos)
        << t.reason;
  }
  // Unrestricted without the paths: the same file opens.
  ::setenv("DIRGW_FAULT_FOR_TEST", "codec-open:/etc/hostname", 1);
  CodecWorker free_worker(worker());
  const Attempt f = free_worker.decompress(kCodecFieldFiles / "MR_small_RLE.dcm", kExplicit, dir_);
  EXPECT_NE(f.reason.find("test open of /etc/hostname: opened"), std::string::npos) << f.reason;
}

// Its system call filter (sandbox.h, enter_syscall_filter): no socket, whatever the kernel's
// Landlock; decoding still works; without the sandbox's paths the same socket is made.
TEST_F(CodecWorkerTest, TheSandboxedWorkerMakesNoSocket) {
  CodecSettings s = worker();
  s.command.insert(s.command.end(),
                   {"--read", kCodecFieldFiles.string(), "--write", dir_.string()});
  {
    CodecWorker w(s);
    const Attempt a =
        w.decompress(kCodecFieldFiles / "MR_small_jpeg_ls_lossless.dcm", kExplicit, dir_);
    ASSERT_EQ(a.kind, Attempt::Kind::kTranscoded) << a.reason;
    fs::remove(a.copy->path);
  }
  ::setenv("DIRGW_FAULT_FOR_TEST", "codec-socket", 1);
  CodecWorker probe(s);
  const Attempt t = probe.decompress(kCodecFieldFiles / "MR_small_RLE.dcm", kExplicit, dir_);
  EXPECT_EQ(t.kind, Attempt::Kind::kSkipped);
  EXPECT_NE(t.reason.find("test socket: Operation not permitted"), std::string::npos) << t.reason;
  CodecWorker free_worker(worker());
  const Attempt f = free_worker.decompress(kCodecFieldFiles / "MR_small_RLE.dcm", kExplicit, dir_);
  EXPECT_NE(f.reason.find("test socket: made"), std::string::npos) << f.reason;
}

// The worker's side of the channel, spoken to directly: a malformed request gets an error
// answer, an oversized one ends the worker, and so does the end of the channel.
TEST_F(CodecWorkerTest, TheWorkerRefusesMalformedRequests) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(sv[1], 0);
    ::dup2(sv[1], 1);
    ::execl(DIRGWD_PATH, "dirgwd", "--codec-worker", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(sv[1]);
  auto frame = [](const std::string& body) {
    std::string out(4, '\0');
    for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((body.size() >> (8 * i)) & 0xff);
    return out + body;
  };
  // One field ("x"): not a request.
  const std::string one_field = std::string("\x01\0\0\0", 4) + "x";
  const std::string req = frame(one_field);
  ASSERT_EQ(::write(sv[0], req.data(), req.size()), static_cast<ssize_t>(req.size()));
  char buf[256];
  ssize_t n = ::read(sv[0], buf, sizeof buf);
  ASSERT_GT(n, 4);
  const std::string answer(buf + 4, static_cast<std::size_t>(n - 4));
  EXPECT_NE(answer.find("malformed codec request"), std::string::npos);
  // A length over the worker's limit: it gives up on the channel.
  const std::string huge("\xff\xff\xff\x7f", 4);
  ASSERT_EQ(::write(sv[0], huge.data(), huge.size()), 4);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3);
  ::close(sv[0]);
}

}  // namespace
}  // namespace dirgw::senders::transcode
