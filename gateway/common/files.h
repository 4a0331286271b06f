// Durable file primitives: what is acknowledged must survive a crash and a power loss.
// The order is always write -> fsync(file) -> rename -> fsync(directory).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace dirgw {

// An open file descriptor that closes itself.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

Result<void> fsync_path(const std::filesystem::path& path);
Result<void> fsync_dir(const std::filesystem::path& dir);

// Writes `data` to `path` through a temporary in the same directory, durably.
Result<void> write_file_durably(const std::filesystem::path& path, std::string_view data,
                                unsigned mode = 0600);

// Writes `path` through a temporary in the same directory that `write` fills (it is created
// owner-only and new, never an existing file), then fsync, rename, fsync of the directory. On
// any failure the temporary is removed and `path` is untouched. `what` names the file in errors.
Result<void> write_durably_via(
    const std::filesystem::path& path, const std::string& what,
    const std::function<Result<void>(const std::filesystem::path&)>& write);

// mkdir -p with the given mode for what it creates.
Result<void> make_dirs(const std::filesystem::path& dir, unsigned mode = 0750);

// Free bytes available to an unprivileged writer on the file system holding `path`.
Result<std::uint64_t> free_bytes(const std::filesystem::path& path);

Result<std::string> read_small_file(const std::filesystem::path& path,
                                    std::size_t limit = 16 * 1024 * 1024);

// A file holding a secret (an OAuth2 client secret): it must be a regular file, not a symbolic
// link (whose target could be swapped for another file), with no group or other permission bits
// (0600 or 0400). The error says which rule `path` breaks; `what` names the file in it.
Result<void> check_private_file(const std::filesystem::path& path, const std::string& what);

// errno as text, for error details.
std::string errno_text(int err);

}  // namespace dirgw
