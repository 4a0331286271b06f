// The codec process's sandbox (Linux Landlock): after its start-up, the worker may read only the
// spool's objects, the directories it is given and the system's libraries, and write only into
// the spool's tmp/; on kernels with Landlock's network and scope support it can neither open a
// TCP connection nor signal a process outside its sandbox. An image that took over a decoder
// could then not read the pseudonymisation key, the catalog or the configuration, nor talk to
// the network: it could only spoil its own answer. Best effort: a kernel without Landlock (before
// 5.13, or with it switched off) leaves the worker unrestricted, and says so.
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

}  // namespace dirgw::senders::transcode
