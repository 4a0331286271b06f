#include "senders/transcode/sandbox.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <vector>

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

namespace {

#if defined(__x86_64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#endif

// The system calls refused outright (those this architecture has).
constexpr int kRefused[] = {
#ifdef __NR_socket
    __NR_socket,
#endif
#ifdef __NR_socketpair
    __NR_socketpair,
#endif
#ifdef __NR_connect
    __NR_connect,
#endif
#ifdef __NR_bind
    __NR_bind,
#endif
#ifdef __NR_listen
    __NR_listen,
#endif
#ifdef __NR_accept
    __NR_accept,
#endif
#ifdef __NR_accept4
    __NR_accept4,
#endif
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    // Sanitizer reports run llvm-symbolizer; LeakSanitizer stops the world with ptrace.
    __NR_execve,
    __NR_execveat,
    __NR_ptrace,
    __NR_tkill,
#endif
    __NR_process_vm_readv,
    __NR_process_vm_writev,
#ifdef __NR_pidfd_getfd
    __NR_pidfd_getfd,
#endif
    __NR_unshare,
    __NR_setns,
    __NR_mount,
    __NR_umount2,
    __NR_pivot_root,
    __NR_chroot,
    __NR_bpf,
    __NR_perf_event_open,
    __NR_userfaultfd,
    __NR_keyctl,
    __NR_add_key,
    __NR_request_key,
    __NR_init_module,
    __NR_finit_module,
    __NR_delete_module,
    __NR_kexec_load,
    __NR_reboot,
    __NR_swapon,
    __NR_swapoff,
    __NR_acct,
    __NR_open_by_handle_at,
    __NR_name_to_handle_at,
    __NR_io_uring_setup,
    __NR_io_uring_enter,
    __NR_io_uring_register,
#ifdef __NR_fsopen
    __NR_fsopen,
    __NR_fsmount,
    __NR_move_mount,
    __NR_open_tree,
#endif
};

constexpr std::uint32_t kNamespaceFlags = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS |
                                          CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
                                          CLONE_NEWNET | CLONE_NEWTIME;

sock_filter statement(std::uint16_t code, std::uint32_t k) { return BPF_STMT(code, k); }
sock_filter jump(std::uint16_t code, std::uint32_t k, std::uint8_t jt, std::uint8_t jf) {
  return BPF_JUMP(code, k, jt, jf);
}
constexpr std::uint32_t kAllow = SECCOMP_RET_ALLOW;
constexpr std::uint32_t kEperm = SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA);
// The low 32 bits of argument `n` (both architectures are little endian).
constexpr std::uint32_t arg_low(unsigned n) {
  return static_cast<std::uint32_t>(offsetof(seccomp_data, args) + 8 * n);
}

}  // namespace

std::string enter_syscall_filter() {
#if !defined(__x86_64__) && !defined(__aarch64__)
  return "no system call filter for this architecture";
#else
  std::vector<sock_filter> f;
  // Another architecture's calling convention (i386's int 0x80 on x86-64): killed.
  f.push_back(statement(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)));
  f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0));
  f.push_back(statement(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
  f.push_back(statement(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
#if defined(__x86_64__)
  // The x32 ABI's numbers (bit 30): refused.
  f.push_back(jump(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1));
  f.push_back(statement(BPF_RET | BPF_K, kEperm));
#endif
  for (int nr : kRefused) {
    f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(nr), 0, 1));
    f.push_back(statement(BPF_RET | BPF_K, kEperm));
  }
#ifdef __NR_clone3
  // clone3's flags are in memory, out of the filter's reach: ENOSYS makes glibc use clone.
  f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1));
  f.push_back(statement(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS));
#endif
  // clone: threads and processes, but no new namespace (the flags are its first argument).
  f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 4));
  f.push_back(statement(BPF_LD | BPF_W | BPF_ABS, arg_low(0)));
  f.push_back(jump(BPF_JMP | BPF_JSET | BPF_K, kNamespaceFlags, 0, 1));
  f.push_back(statement(BPF_RET | BPF_K, kEperm));
  f.push_back(statement(BPF_RET | BPF_K, kAllow));
  // kill and tgkill: to itself only (abort() raises SIGABRT with tgkill).
  const auto self = static_cast<std::uint32_t>(::getpid());
  for (int nr : {__NR_kill, __NR_tgkill}) {
    f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(nr), 0, 4));
    f.push_back(statement(BPF_LD | BPF_W | BPF_ABS, arg_low(0)));
    f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, self, 0, 1));
    f.push_back(statement(BPF_RET | BPF_K, kAllow));
    f.push_back(statement(BPF_RET | BPF_K, kEperm));
  }
  f.push_back(statement(BPF_RET | BPF_K, kAllow));
  sock_fprog program{static_cast<unsigned short>(f.size()), f.data()};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return "PR_SET_NO_NEW_PRIVS: " + errno_text(errno);
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program, 0, 0) != 0)
    return "PR_SET_SECCOMP: " + errno_text(errno);
  return {};
#endif
}

}  // namespace dirgw::senders::transcode
