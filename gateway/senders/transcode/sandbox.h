// The codec process's sandbox (Linux Landlock): after its start-up, the worker may read only the
// spool's objects, the directories it is given and the system's libraries, and write only into
// the spool's tmp/; on kernels with Landlock's network and scope support it can neither open a
// TCP connection nor signal a process outside its sandbox. An image that took over a decoder
// could then not read the pseudonymisation key, the catalog or the configuration, nor talk to
// the network: it could only spoil its own answer. A seccomp filter (enter_syscall_filter) takes
// away sockets, exec, ptrace and namespaces whatever the kernel's Landlock. Best effort: a kernel
// without Landlock (before 5.13, or with it switched off) leaves the worker unrestricted, and says
// so.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace dirgw::senders::transcode {

struct SandboxPaths {
  std::vector<std::filesystem::path> read;   // read files and list directories beneath
  std::vector<std::filesystem::path> write;  // also create, write, truncate and remove files
};

// Restricts this process and its future children for good. Empty when done; else why not.
std::string enter_sandbox(const SandboxPaths& paths);

// A seccomp filter, for good, in this process and its future children: no new sockets (so no
// network, whatever Landlock's ABI: Debian 12's kernel has ABI 2, files only), no exec (outside
// sanitizer builds, whose reports run a symbolizer), no ptrace or reading another process's
// memory, no new namespaces, no signals but to itself, none of the kernel interfaces a codec
// never needs (bpf, io_uring, keyrings, perf, userfaultfd, modules, mounts). Each is refused with
// EPERM (clone3 with ENOSYS, so that threads are made with clone, whose flags can be checked).
// Empty when done; else why not (an architecture other than x86-64 or arm64, or the kernel).
std::string enter_syscall_filter();

}  // namespace dirgw::senders::transcode
