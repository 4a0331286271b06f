#include "common/files.h"

#include <cstdio>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

namespace dirgw {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

UniqueFd::~UniqueFd() { reset(); }

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

std::string errno_text(int err) {
  char buf[256];
  return std::string(strerror_r(err, buf, sizeof buf));
}

Result<void> check_private_file(const std::filesystem::path& path, const std::string& what) {
  if (path.empty()) return make_error(ErrorCode::kConfig, "no " + what + " given");
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0)
    return make_error(ErrorCode::kConfig, what + " " + path.string() + ": " + errno_text(errno));
  if (S_ISLNK(st.st_mode))
    return make_error(ErrorCode::kConfig,
                      what + " " + path.string() +
                          " is a symbolic link: name the file itself (a link's target can be "
                          "replaced by whoever may write where the link points)");
  if (!S_ISREG(st.st_mode))
    return make_error(ErrorCode::kConfig, what + " " + path.string() + " is not a regular file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return make_error(ErrorCode::kConfig,
                      what + " " + path.string() + " has mode " + mode +
                          ": group and others must have no access (chmod 600, owned by the "
                          "gateway's user)");
  }
  return {};
}

namespace {
Error io_error(const char* what, int err) {
  return make_error(err == ENOSPC || err == EDQUOT ? ErrorCode::kDiskFull : ErrorCode::kIo,
                    std::string(what) + ": " + errno_text(err));
}
}  // namespace

Result<void> fsync_path(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return io_error("open for fsync", errno);
  if (::fsync(fd.get()) != 0) return io_error("fsync", errno);
  return {};
}

Result<void> fsync_dir(const std::filesystem::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return io_error("open directory for fsync", errno);
  if (::fsync(fd.get()) != 0) return io_error("fsync directory", errno);
  return {};
}

Result<void> write_file_durably(const std::filesystem::path& path, std::string_view data,
                                unsigned mode) {
  std::random_device rd;
  auto tmp = path;
  tmp += ".tmp" + std::to_string(rd());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (!fd.valid()) return io_error("create temporary", errno);
  const char* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd.get(), p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::unlink(tmp.c_str());
      return io_error("write", err);
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return io_error("fsync", err);
  }
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return io_error("rename", err);
  }
  return fsync_dir(path.parent_path().empty() ? "." : path.parent_path());
}

Result<void> write_durably_via(
    const std::filesystem::path& path, const std::string& what,
    const std::function<Result<void>(const std::filesystem::path&)>& write) {
  std::random_device rd;
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, ".tmp%08x%08x", rd(), rd());
  std::filesystem::path tmp = path;
  tmp += suffix;
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd.valid()) {
      const int err = errno;
      return make_error(err == ENOSPC || err == EDQUOT ? ErrorCode::kDiskFull : ErrorCode::kIo,
                        "create " + what + ": " + errno_text(err));
    }
  }
  if (auto w = write(tmp); !w) {
    ::unlink(tmp.c_str());
    return w.error();
  }
  if (auto r = fsync_path(tmp); !r) {
    ::unlink(tmp.c_str());
    return r.error();
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return make_error(ErrorCode::kIo, "rename " + what + ": " + errno_text(err));
  }
  return fsync_dir(path.parent_path().empty() ? "." : path.parent_path());
}

Result<void> make_dirs(const std::filesystem::path& dir, unsigned mode) {
  // A directory made here is durable only once its parent is synced: without that, a power cut
  // can take a new spool shard away with the objects already renamed (and synced) into it.
  std::filesystem::path cur;
  for (const auto& part : dir) {
    cur /= part;
    if (cur.empty()) continue;
    if (::mkdir(cur.c_str(), mode) == 0) {
      const auto parent = cur.parent_path();
      if (auto r = fsync_dir(parent.empty() ? std::filesystem::path(".") : parent); !r) return r;
    } else if (errno != EEXIST) {
      return io_error("mkdir", errno);
    }
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return make_error(ErrorCode::kIo, "not a directory: " + dir.string());
  return {};
}

Result<std::uint64_t> free_bytes(const std::filesystem::path& path) {
  struct statvfs st {};
  if (::statvfs(path.c_str(), &st) != 0) return io_error("statvfs", errno);
  return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
}

Result<std::string> read_small_file(const std::filesystem::path& path, std::size_t limit) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return io_error("open", errno);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("read", errno);
    }
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > limit)
      return make_error(ErrorCode::kInvalidArgument, "file larger than allowed");
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

}  // namespace dirgw
