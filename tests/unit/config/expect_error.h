// The config tests' one check of an error: the error for `key`, on `line`, saying `text`.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "config/config.h"

namespace dirgw::config::testing_support {

inline void expect_error(const LoadResult& r, const std::string& key, int line,
                         const std::string& text) {
  ASSERT_FALSE(r.ok());
  std::string all;
  for (const auto& e : r.errors) {
    if (e.key == key) {
      EXPECT_EQ(e.line, line) << e.message;
      EXPECT_NE(e.message.find(text), std::string::npos) << e.message;
      return;
    }
    all += e.key + ": " + e.message + "\n";
  }
  FAIL() << "no error for " << key << "; got:\n" << all;
}

// `text` with the first `from` replaced by `to` (a variant of a test's base configuration).
inline std::string replace_once(std::string text, const std::string& from, const std::string& to) {
  auto pos = text.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  if (pos != std::string::npos) text.replace(pos, from.size(), to);
  return text;
}

}  // namespace dirgw::config::testing_support
