#include "senders/transcode/codec_worker.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>
#include <thread>

// clang-format off
#include "dcmtk/config/osconfig.h"
#include "dcmtk/oflog/oflog.h"
// clang-format on

#include "common/crypto.h"
#include "log/log.h"
#include "senders/transcode/decompress.h"
#include "senders/transcode/sandbox.h"

extern char** environ;

namespace dirgw::senders::transcode {

namespace {

// Framing: a message is a 4-byte little-endian length and that many bytes; its body is a
// sequence of fields, each a 4-byte little-endian length and its bytes. A request is
// {operation, input, copy, target syntax, max pixel bytes, syntax parameter}; an answer is
// {kind, reason, copy, copy size}.
constexpr std::uint32_t kMaxMessage = 1u << 20;

// Set once when dirgwd stops: a job in progress ends at once (its worker killed), so that a stop
// never waits for a codec's time-out.
std::atomic<bool> g_stopping{false};

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint32_t get_u32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}

std::string encode(const std::vector<std::string>& fields) {
  std::string body;
  for (const auto& f : fields) {
    put_u32(body, static_cast<std::uint32_t>(f.size()));
    body += f;
  }
  std::string out;
  put_u32(out, static_cast<std::uint32_t>(body.size()));
  return out + body;
}

std::optional<std::vector<std::string>> decode(std::string_view body) {
  std::vector<std::string> fields;
  while (!body.empty()) {
    if (body.size() < 4) return std::nullopt;
    const std::uint32_t n = get_u32(body.data());
    if (n > body.size() - 4) return std::nullopt;
    fields.emplace_back(body.substr(4, n));
    body.remove_prefix(4 + n);
  }
  return fields;
}

bool write_all(int fd, const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

enum class ReadResult { kOk, kEnd, kTimeout, kStopping, kBad };

// Reads exactly `len` bytes before `deadline` (none: wait for ever, and do not look at
// g_stopping: the worker's side).
ReadResult read_exact(int fd, char* buf, std::size_t len,
                      std::optional<std::chrono::steady_clock::time_point> deadline) {
  std::size_t done = 0;
  while (done < len) {
    if (deadline) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            *deadline - std::chrono::steady_clock::now())
                            .count();
      if (left <= 0) return ReadResult::kTimeout;
      if (g_stopping.load()) return ReadResult::kStopping;
      pollfd p{fd, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 100)));
      if (r < 0 && errno != EINTR) return ReadResult::kBad;
      if (r <= 0) continue;
    }
    const ssize_t n = ::read(fd, buf + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ReadResult::kBad;
    if (n == 0) return done == 0 ? ReadResult::kEnd : ReadResult::kBad;
    done += static_cast<std::size_t>(n);
  }
  return ReadResult::kOk;
}

ReadResult read_message(int fd, std::string& body,
                        std::optional<std::chrono::steady_clock::time_point> deadline) {
  char head[4];
  if (auto r = read_exact(fd, head, 4, deadline); r != ReadResult::kOk) return r;
  const std::uint32_t n = get_u32(head);
  if (n > kMaxMessage) return ReadResult::kBad;
  body.assign(n, '\0');
  auto r = read_exact(fd, body.data(), n, deadline);
  return r == ReadResult::kEnd ? ReadResult::kBad : r;
}

std::string describe_exit(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::sigabbrev_np(sig);
    return "ended by signal " + std::to_string(sig) +
           (name ? std::string(" (SIG") + name + ")" : "");
  }
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  return "ended";
}

std::string seconds_text(std::chrono::milliseconds ms) {
  const auto s = ms.count() / 1000;
  return ms.count() % 1000 == 0 ? std::to_string(s) + " s" : std::to_string(ms.count()) + " ms";
}

// Test-only faults (tests/integration/test_codec_isolation.py): the worker stops, hangs or is
// slow on every job, as a codec would on a hostile or very large image, or tries to open a file
// or make a TCP socket, as a codec taken over by one would (the job's answer says whether the
// sandbox let it; never what a file holds).
std::optional<Attempt> test_fault() {
  const char* fault = std::getenv("DIRGW_FAULT_FOR_TEST");
  if (fault == nullptr) return std::nullopt;
  const std::string_view f(fault);
  if (f == "codec-crash") std::abort();
  if (f == "codec-hang")
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  if (f.rfind("codec-slow:", 0) == 0) {
    // A slow decoder (a large multi-frame): the job takes this many milliseconds more, then runs.
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(fault + 11)));
    return std::nullopt;
  }
  if (f == "codec-socket") {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    return Attempt{Attempt::Kind::kSkipped,
                   std::string("test socket: ") + (fd.valid() ? "made" : errno_text(errno)),
                   std::nullopt};
  }
  if (f.rfind("codec-open:", 0) == 0) {
    const std::string path(f.substr(11));
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    return Attempt{Attempt::Kind::kSkipped,
                   "test open of " + path + ": " + (fd.valid() ? "opened" : errno_text(errno)),
                   std::nullopt};
  }
  return std::nullopt;
}

std::vector<std::string> answer_fields(const Attempt& a) {
  return {std::to_string(static_cast<int>(a.kind)), a.reason,
          a.copy ? a.copy->path.string() : std::string(),
          a.copy ? std::to_string(a.copy->size) : std::string("0")};
}

Attempt run_job(const std::vector<std::string>& f) {
  if (f.size() != 6) return {Attempt::Kind::kError, "malformed codec request", std::nullopt};
  if (auto faulted = test_fault()) return *faulted;
  const std::string& op = f[0];
  if (op == "decompress") return decompress_file(f[1], f[3], f[2]);
  if (op == "jpeg-ls") {
    Options o;
    o.tmp_dir = std::filesystem::path(f[2]).parent_path();
    o.max_pixel_bytes = std::strtoull(f[4].c_str(), nullptr, 10);
    o.syntax_parameter = f[5] == "1";
    return transcode_jpeg_ls(f[1], o, f[2]);
  }
  return {Attempt::Kind::kError, "unknown codec operation", std::nullopt};
}

}  // namespace

CodecSettings daemon_codec_settings(std::chrono::milliseconds timeout, std::uint64_t memory_limit,
                                    const std::filesystem::path& spool) {
  CodecSettings s;
  s.program = "/proc/self/exe";
  s.command = {"dirgwd",         "--codec-worker",
               "--memory-limit", std::to_string(memory_limit),
               "--parent",       std::to_string(::getpid()),
               "--read",         (spool / "objects").string(),
               "--read",         (spool / "derived").string(),
               "--write",        (spool / "tmp").string()};
  s.timeout = timeout;
  return s;
}

CodecWorker::~CodecWorker() { stop(true); }

bool CodecWorker::spawn(std::string& why) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    why = "socketpair: " + errno_text(errno);
    return false;
  }
  UniqueFd ours(sv[0]), theirs(sv[1]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, theirs.get(), 0);
  posix_spawn_file_actions_adddup2(&actions, theirs.get(), 1);
  std::vector<char*> argv;
  for (auto& a : settings_.command) argv.push_back(a.data());
  // A worker that cannot sandbox itself says so once per dirgwd, not at every start.
  static std::atomic<bool> first{true};
  std::string quiet = "--sandbox-warned";
  if (!first.exchange(false)) argv.push_back(quiet.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc =
      ::posix_spawn(&pid, settings_.program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    why = settings_.program + ": " + errno_text(rc);
    return false;
  }
  pid_ = pid;
  channel_ = std::move(ours);
  ++started_;
  log::debug("codec process started", {{"pid", std::to_string(pid)}});
  return true;
}

int CodecWorker::stop(bool kill) {
  if (pid_ < 0) return 0;
  channel_.reset();                 // a worker waiting for its next job reads the end and exits
  if (kill) ::kill(pid_, SIGKILL);  // one that is dead already keeps its own exit status
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  return status;
}

void CodecWorker::stop_all_jobs() { g_stopping.store(true); }

Attempt CodecWorker::run(const std::vector<std::string>& request) {
  if (g_stopping.load())
    return {Attempt::Kind::kError, "dirgwd is stopping: not started", std::nullopt};
  const std::string message = encode(request);
  std::string why;
  // A worker that died between jobs shows only when the request is written: one fresh start.
  for (int attempt = 0;; ++attempt) {
    if (pid_ < 0 && !spawn(why))
      return {Attempt::Kind::kError, "cannot start the codec process: " + why, std::nullopt};
    if (write_all(channel_.get(), message)) break;
    stop(true);
    if (attempt == 1)
      return {Attempt::Kind::kError, "the codec process does not take requests", std::nullopt};
  }
  std::string body;
  const auto deadline = std::chrono::steady_clock::now() + settings_.timeout;
  const ReadResult r = read_message(channel_.get(), body, deadline);
  if (r == ReadResult::kStopping) {
    stop(true);
    return {Attempt::Kind::kError, "dirgwd stopped while the codec process worked on it",
            std::nullopt};
  }
  if (r == ReadResult::kTimeout) {
    stop(true);
    ++failed_;
    return {Attempt::Kind::kCodecFailed,
            "the codec process did not finish within " + seconds_text(settings_.timeout) +
                " and was stopped",
            std::nullopt};
  }
  if (r != ReadResult::kOk) {
    // It died on this object (or broke the framing): its exit says how.
    const int status = stop(true);
    ++failed_;
    return {Attempt::Kind::kCodecFailed,
            "the codec process " + describe_exit(status) + " while working on it", std::nullopt};
  }
  auto fields = decode(body);
  if (!fields || fields->size() != 4) {
    stop(true);
    ++failed_;
    return {Attempt::Kind::kCodecFailed, "the codec process answered garbage", std::nullopt};
  }
  Attempt a;
  const int kind = std::atoi((*fields)[0].c_str());
  if (kind < 0 || kind > static_cast<int>(Attempt::Kind::kCodecFailed)) {
    stop(true);
    ++failed_;
    return {Attempt::Kind::kCodecFailed, "the codec process answered garbage", std::nullopt};
  }
  a.kind = static_cast<Attempt::Kind>(kind);
  a.reason = (*fields)[1];
  if (a.kind == Attempt::Kind::kTranscoded)
    a.copy = Transcoded{(*fields)[2], std::strtoull((*fields)[3].c_str(), nullptr, 10)};
  return a;
}

Attempt CodecWorker::jpeg_ls(const std::filesystem::path& original, const Options& options) {
  if (settings_.program.empty()) return transcode_jpeg_ls(original, options);
  // The copy's name is chosen here, so that what a stopped worker left is removed here.
  const std::filesystem::path copy = options.tmp_dir / (random_hex(16) + ".jls.part");
  return run_for(copy,
                 {"jpeg-ls", original.string(), copy.string(), "",
                  std::to_string(options.max_pixel_bytes), options.syntax_parameter ? "1" : "0"});
}

Attempt CodecWorker::decompress(const std::filesystem::path& original,
                                const std::string& target_syntax,
                                const std::filesystem::path& out_dir) {
  const std::filesystem::path copy = out_dir / (random_hex(16) + ".dec.part");
  if (settings_.program.empty()) return decompress_file(original, target_syntax, copy);
  return run_for(copy, {"decompress", original.string(), copy.string(), target_syntax, "0", "0"});
}

Attempt CodecWorker::run_for(const std::filesystem::path& copy,
                             const std::vector<std::string>& request) {
  Attempt a = run(request);
  if (a.kind == Attempt::Kind::kTranscoded && a.copy && a.copy->path == copy) return a;
  ::unlink(copy.c_str());  // whatever a failed or stopped worker left under the name
  if (a.kind == Attempt::Kind::kTranscoded)
    return {Attempt::Kind::kError, "the codec process named another copy", std::nullopt};
  return a;
}

int run_codec_worker(int argc, char** argv) {
  std::uint64_t memory_limit = 0;
  pid_t parent = 0;
  SandboxPaths sandbox;
  for (int i = 1; i + 1 < argc; ++i) {
    const std::string_view a(argv[i]);
    if (a == "--memory-limit") memory_limit = std::strtoull(argv[++i], nullptr, 10);
    if (a == "--parent") parent = static_cast<pid_t>(std::atol(argv[++i]));
    if (a == "--read") sandbox.read.emplace_back(argv[++i]);
    if (a == "--write") sandbox.write.emplace_back(argv[++i]);
  }
  const bool warned = argc > 1 && std::string_view(argv[argc - 1]) == "--sandbox-warned";
  // Nothing of the daemon's but the channel and the log: no catalog, no sockets, no spool fds.
  ::close_range(3, ~0u, 0);
  // Dies with dirgwd (and exits if dirgwd is already gone).
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (parent != 0 && ::getppid() != parent) return 0;
  // No core dump: its memory holds pixel data. Not ptrace-able by other processes of the user.
  ::prctl(PR_SET_DUMPABLE, 0);
  rlimit none{0, 0};
  ::setrlimit(RLIMIT_CORE, &none);
#ifndef __SANITIZE_ADDRESS__
  // (AddressSanitizer reserves terabytes of address space for its shadow: no limit there.)
  if (memory_limit > 0) {
    rlimit as{memory_limit, memory_limit};
    ::setrlimit(RLIMIT_AS, &as);
  }
#else
  (void)memory_limit;
#endif
  OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
  // Told where it may read and write: nowhere else from now on, and no sockets, exec or
  // ptrace (sandbox.h).
  if (!sandbox.read.empty() || !sandbox.write.empty()) {
    const std::string files = enter_sandbox(sandbox);
    const std::string calls = enter_syscall_filter();
    if (!files.empty() && !warned)
      log::warn("codec process not sandboxed: it runs with dirgwd's own file access",
                {{"reason", files}});
    if (!calls.empty() && !warned)
      log::warn("codec process without its system call filter: it may open sockets",
                {{"reason", calls}});
  }
  for (;;) {
    std::string body;
    const ReadResult r = read_message(0, body, std::nullopt);
    if (r == ReadResult::kEnd) return 0;
    if (r != ReadResult::kOk) return 3;
    auto fields = decode(body);
    const Attempt a = fields
                          ? run_job(*fields)
                          : Attempt{Attempt::Kind::kError, "malformed codec request", std::nullopt};
    if (!write_all(1, encode(answer_fields(a)))) return 4;
  }
}

}  // namespace dirgw::senders::transcode
