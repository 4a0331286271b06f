// Hashing for content addresses and keyed HMACs for referring to patients in logs.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace dirgw {

// Streaming SHA-256 (OpenSSL EVP).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, std::size_t size);
  std::string hex_digest();  // finalises

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string sha256_hex(std::string_view data);
Result<std::string> sha256_file(const std::filesystem::path& path);

// HMAC-SHA-256 of `value` under `key`, hex, truncated to 16 characters: enough to correlate
// log lines, useless for reversing a health number by dictionary without the key.
std::string hmac_tag(std::string_view key, std::string_view value);

std::string hex_encode(const unsigned char* data, std::size_t size);
std::string random_hex(std::size_t bytes);

}  // namespace dirgw
