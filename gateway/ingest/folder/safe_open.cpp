#include "ingest/folder/safe_open.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace dirgw::ingest::folder {

namespace {

EntryKind kind_of(mode_t mode) {
  if (S_ISREG(mode)) return EntryKind::kRegular;
  if (S_ISDIR(mode)) return EntryKind::kDirectory;
  if (S_ISLNK(mode)) return EntryKind::kSymlink;
  if (S_ISFIFO(mode)) return EntryKind::kFifo;
  if (S_ISSOCK(mode)) return EntryKind::kSocket;
  return EntryKind::kDevice;
}

FileStamp stamp_of(const struct stat& st) {
  FileStamp s;
  s.size = static_cast<std::uint64_t>(st.st_size);
  s.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  s.ino = static_cast<std::uint64_t>(st.st_ino);
  return s;
}

Result<UniqueFd> open_checked(int dirfd, const std::string& name, int flags, EntryKind want) {
  if (!plain_component(name)) return make_error(ErrorCode::kRefused, "bad_name");
  UniqueFd fd(::openat(dirfd, name.c_str(), flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY));
  if (!fd.valid()) {
    const int err = errno;
    if (err == ENOENT) return make_error(ErrorCode::kNotFound, "gone");
    if (err == ELOOP)
      return make_error(ErrorCode::kRefused, std::string(kind_reason(EntryKind::kSymlink)));
    if (err == ENOTDIR && want == EntryKind::kDirectory)
      return make_error(ErrorCode::kRefused, "not_directory");
    return make_error(ErrorCode::kIo, "open: " + errno_text(err));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return make_error(ErrorCode::kIo, "fstat: " + errno_text(errno));
  const EntryKind k = kind_of(st.st_mode);
  if (k != want) return make_error(ErrorCode::kRefused, std::string(kind_reason(k)));
  return fd;
}

}  // namespace

EntryInfo look_at(int dirfd, const std::string& name) {
  struct stat st {};
  if (!plain_component(name) || ::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return {};
  return {kind_of(st.st_mode), stamp_of(st)};
}

std::string_view kind_reason(EntryKind kind) {
  switch (kind) {
    case EntryKind::kRegular:
      return "regular";
    case EntryKind::kDirectory:
      return "directory";
    case EntryKind::kSymlink:
      return "symlink";
    case EntryKind::kFifo:
      return "fifo";
    case EntryKind::kSocket:
      return "socket";
    case EntryKind::kDevice:
      return "device";
    case EntryKind::kGone:
      return "gone";
  }
  return "unknown";
}

bool plain_component(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

Result<UniqueFd> open_file_at(int dirfd, const std::string& name) {
  // O_NONBLOCK: opening a fifo that replaced the file after we looked must not hang the watcher.
  auto fd = open_checked(dirfd, name, O_RDONLY | O_NONBLOCK, EntryKind::kRegular);
  if (!fd) return fd;
  const int flags = ::fcntl(fd->get(), F_GETFL);
  if (flags >= 0) ::fcntl(fd->get(), F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

Result<std::vector<std::string>> list_names(int dirfd, std::size_t max) {
  const int dup = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup < 0) return make_error(ErrorCode::kIo, "open directory: " + errno_text(errno));
  DIR* d = ::fdopendir(dup);
  if (d == nullptr) {
    ::close(dup);
    return make_error(ErrorCode::kIo, "read directory: " + errno_text(errno));
  }
  std::vector<std::string> out;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    if (out.size() >= max) {
      ::closedir(d);
      return make_error(ErrorCode::kRefused, "too many entries");
    }
    out.emplace_back(name);
  }
  ::closedir(d);
  return out;
}

Result<void> remove_at(int dirfd, const std::string& name, int depth) {
  if (::unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT) return {};
  if (errno != EISDIR && errno != EPERM)
    return make_error(ErrorCode::kIo, "unlink: " + errno_text(errno));
  if (depth > 32) return make_error(ErrorCode::kRefused, "directory nested too deep to remove");
  auto sub = open_dir_at(dirfd, name);
  if (!sub)
    return sub.error().code == ErrorCode::kNotFound ? Result<void>{} : Result<void>(sub.error());
  auto names = list_names(sub->get(), 1000000);
  if (!names) return names.error();
  for (const auto& n : *names)
    if (auto r = remove_at(sub->get(), n, depth + 1); !r) return r;
  if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
    return make_error(ErrorCode::kIo, "rmdir: " + errno_text(errno));
  return {};
}

Result<UniqueFd> open_dir_at(int dirfd, const std::string& name) {
  return open_checked(dirfd, name, O_RDONLY | O_DIRECTORY, EntryKind::kDirectory);
}

}  // namespace dirgw::ingest::folder
