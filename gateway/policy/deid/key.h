// The de-identification key: the secret behind every pseudonym (UIDs, Patient ID, date offsets).
// Whoever holds it can recompute a pseudonym from a known original value (never the reverse), so
// it is handled like a private key: a 0600 file of 32 random bytes, never printed, never logged.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace dirgw::policy::deid {

class Key {
 public:
  static constexpr std::size_t kFileSize = 32;
  static constexpr std::size_t kMinSize = 16;

  // kInvalidArgument when shorter than kMinSize bytes.
  static Result<Key> from_bytes(std::string_view bytes);

  // HMAC-SHA-256(key, purpose || 0x00 || value): the one primitive every pseudonym uses. The
  // purpose separates the uses ("uid", "patient", "date-shift", ...) so that one value never maps
  // to related outputs in two places.
  std::array<std::uint8_t, 32> mac(std::string_view purpose, std::string_view value) const;

  // Never prints the key: "[key]".
  friend std::ostream& operator<<(std::ostream& os, const Key&);

 private:
  explicit Key(std::vector<std::uint8_t> bytes) : bytes_(std::move(bytes)) {}
  std::vector<std::uint8_t> bytes_;
};

// Loads the key file, or creates it when absent: 32 bytes from OpenSSL's RAND_bytes, mode 0600,
// written durably (temporary, fsync, link into place, fsync directory) and never over an existing
// file, so two processes starting at once end up with the same key. Refuses (kConfig) a file that
// is not exactly 32 bytes or that its group or others may read or write.
Result<Key> load_or_create_key(const std::filesystem::path& path);

}  // namespace dirgw::policy::deid
