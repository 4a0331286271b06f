// Temporary spool-like files for the senders' tests.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "senders/sender.h"

namespace dirgw::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "dirgw-senders-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

  // Writes `content` to `name` and returns the Item describing it.
  senders::Item write(const std::string& name, const std::string& content,
                      const std::string& sop_instance_uid) const {
    auto p = path_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return senders::Item{sop_instance_uid, "1.2.840.10008.5.1.4.1.1.7", p, content.size()};
  }

 private:
  std::filesystem::path path_;
};

inline std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(gen() & 0xFF);
  return s;
}

}  // namespace dirgw::testing
