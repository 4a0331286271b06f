#include "senders/transcode/sandbox.h"

#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

#include "common/files.h"

namespace dirgw::senders::transcode {

namespace {

// Debian 12's kernel headers stop at Landlock ABI 2; the later rights and the ruleset's later
// fields, as the kernel documents them (Documentation/userspace-api/landlock.rst).
constexpr std::uint64_t kFsTruncate = 1ull << 14;  // ABI 3
constexpr std::uint64_t kFsIoctlDev = 1ull << 15;  // ABI 5
constexpr std::uint64_t kNetBindTcp = 1ull << 0;   // ABI 4
constexpr std::uint64_t kNetConnectTcp = 1ull << 1;
constexpr std::uint64_t kScopeAbstractUnixSocket = 1ull << 0;  // ABI 6
constexpr std::uint64_t kScopeSignal = 1ull << 1;

struct RulesetAttr {
  std::uint64_t handled_access_fs = 0;
  std::uint64_t handled_access_net = 0;  // ABI 4
  std::uint64_t scoped = 0;              // ABI 6
};

constexpr std::uint64_t kReadOnly = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;

bool add_path(int ruleset, const std::filesystem::path& dir, std::uint64_t access,
              std::string& why) {
  UniqueFd fd(::open(dir.c_str(), O_PATH | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return true;  // nothing there to allow
    why = "open " + dir.string() + ": " + errno_text(errno);
    return false;
  }
  landlock_path_beneath_attr rule{};
  rule.allowed_access = access;
  rule.parent_fd = fd.get();
  if (::syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) != 0) {
    why = "landlock_add_rule " + dir.string() + ": " + errno_text(errno);
    return false;
  }
  return true;
}

}  // namespace

std::string enter_sandbox(const SandboxPaths& paths) {
  const long abi =
      ::syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  if (abi < 1) return "Landlock is not available in this kernel (" + errno_text(errno) + ")";
  RulesetAttr attr;
  attr.handled_access_fs =
      LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |
      LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
      LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
      LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
      LANDLOCK_ACCESS_FS_MAKE_SYM;
  std::size_t size = sizeof attr.handled_access_fs;
  if (abi >= 2) attr.handled_access_fs |= LANDLOCK_ACCESS_FS_REFER;
  if (abi >= 3) attr.handled_access_fs |= kFsTruncate;
  if (abi >= 5) attr.handled_access_fs |= kFsIoctlDev;
  if (abi >= 4) {
    attr.handled_access_net = kNetBindTcp | kNetConnectTcp;  // no rule allows any port
    size = offsetof(RulesetAttr, scoped);
  }
  if (abi >= 6) {
    attr.scoped = kScopeAbstractUnixSocket | kScopeSignal;
    size = sizeof attr;
  }
  const int ruleset = static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, size, 0));
  if (ruleset < 0) return "landlock_create_ruleset: " + errno_text(errno);
  UniqueFd owned(ruleset);
  std::string why;
  const std::uint64_t write = kReadOnly | LANDLOCK_ACCESS_FS_WRITE_FILE |
                              LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_REMOVE_FILE |
                              (abi >= 3 ? kFsTruncate : 0);
  // The system's libraries (a codec may load one late) and the process's own /proc entries
  // (the sanitizers read them): readable, nothing else of the machine.
  for (const char* system : {"/usr", "/lib", "/lib64"})
    if (!add_path(ruleset, system, kReadOnly | LANDLOCK_ACCESS_FS_EXECUTE, why)) return why;
  if (!add_path(ruleset, "/proc/self", kReadOnly, why)) return why;
  for (const auto& dir : paths.read)
    if (!add_path(ruleset, dir, kReadOnly, why)) return why;
  for (const auto& dir : paths.write)
    if (!add_path(ruleset, dir, write, why)) return why;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return "PR_SET_NO_NEW_PRIVS: " + errno_text(errno);
  if (::syscall(SYS_landlock_restrict_self, ruleset, 0) != 0)
    return "landlock_restrict_self: " + errno_text(errno);
  return {};
}

}  // namespace dirgw::senders::transcode
