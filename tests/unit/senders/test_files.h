// Temporary spool-like files for the senders' tests, in a testing::TempDir (fakes/temp_dir.h).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "fakes/temp_dir.h"
#include "senders/sender.h"

namespace dirgw::testing {

// Writes `content` to `name` in `dir` and returns the Item describing it.
inline senders::Item write_item(const TempDir& dir, const std::string& name,
                                const std::string& content, const std::string& sop_instance_uid) {
  auto p = dir.path() / name;
  std::ofstream(p, std::ios::binary) << content;
  return senders::Item{sop_instance_uid, "1.2.840.10008.5.1.4.1.1.7", p, content.size()};
}

inline std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(gen() & 0xFF);
  return s;
}

}  // namespace dirgw::testing
