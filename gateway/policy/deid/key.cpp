#include "policy/deid/key.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ostream>
#include <random>

#include "common/files.h"

namespace dirgw::policy::deid {

Result<Key> Key::from_bytes(std::string_view bytes) {
  if (bytes.size() < kMinSize) {
    return make_error(ErrorCode::kInvalidArgument,
                      "de-identification key: at least 16 bytes are needed");
  }
  return Key(std::vector<std::uint8_t>(bytes.begin(), bytes.end()));
}

std::array<std::uint8_t, 32> Key::mac(std::string_view purpose, std::string_view value) const {
  std::string msg;
  msg.reserve(purpose.size() + 1 + value.size());
  msg.append(purpose);
  msg.push_back('\0');
  msg.append(value);
  std::array<std::uint8_t, 32> out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), bytes_.data(), static_cast<int>(bytes_.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out.data(), &len);
  return out;
}

std::ostream& operator<<(std::ostream& os, const Key&) { return os << "[key]"; }

namespace {

Error key_error(ErrorCode code, std::string_view what, int err = 0) {
  std::string detail = "de-identification key: " + std::string(what);
  if (err != 0) detail += ": " + errno_text(err);
  return make_error(code, std::move(detail));
}

Result<Key> load_key(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) {
    const int err = errno;
    return key_error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo, "open", err);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return key_error(ErrorCode::kIo, "stat", errno);
  if (!S_ISREG(st.st_mode)) return key_error(ErrorCode::kConfig, "not a regular file");
  if ((st.st_mode & 077) != 0) {
    return key_error(ErrorCode::kConfig,
                     "the file must not be accessible to group or others (0600)");
  }
  if (st.st_size != static_cast<off_t>(Key::kFileSize)) {
    return key_error(ErrorCode::kConfig, "the file must hold exactly 32 bytes");
  }
  std::string bytes(Key::kFileSize, '\0');
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::read(fd.get(), bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return key_error(ErrorCode::kIo, "read", errno);
    if (n == 0) return key_error(ErrorCode::kConfig, "the file must hold exactly 32 bytes");
    got += static_cast<std::size_t>(n);
  }
  return Key::from_bytes(bytes);
}

Result<void> create(const std::filesystem::path& path) {
  unsigned char bytes[Key::kFileSize];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    return key_error(ErrorCode::kInternal, "RAND_bytes failed");
  }
  std::random_device rd;
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, ".tmp%08x", rd());
  std::filesystem::path tmp = path;
  tmp += suffix;
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd.valid()) {
    const int err = errno;
    return key_error(err == ENOSPC ? ErrorCode::kDiskFull : ErrorCode::kIo, "create", err);
  }
  auto fail = [&](std::string_view what, int err) {
    ::unlink(tmp.c_str());
    return key_error(err == ENOSPC ? ErrorCode::kDiskFull : ErrorCode::kIo, what, err);
  };
  if (::fchmod(fd.get(), 0600) != 0) return fail("chmod", errno);  // whatever the umask
  std::size_t done = 0;
  while (done < sizeof bytes) {
    const ssize_t n = ::write(fd.get(), bytes + done, sizeof bytes - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("write", errno);
    done += static_cast<std::size_t>(n);
  }
  OPENSSL_cleanse(bytes, sizeof bytes);
  if (::fsync(fd.get()) != 0) return fail("fsync", errno);
  fd.reset();
  // link() never replaces: when another process created the key first, keep theirs.
  if (::link(tmp.c_str(), path.c_str()) != 0 && errno != EEXIST) return fail("link", errno);
  ::unlink(tmp.c_str());
  std::filesystem::path dir = path.parent_path();
  return fsync_dir(dir.empty() ? "." : dir);
}

}  // namespace

Result<Key> load_or_create_key(const std::filesystem::path& path) {
  Result<Key> key = load_key(path);
  if (key.ok() || key.error().code != ErrorCode::kNotFound) return key;
  if (auto r = create(path); !r) return r.error();
  return load_key(path);
}

}  // namespace dirgw::policy::deid
