// The destinations' `transcode:` key (docs/transcoding.md): off by default, the short and the long
// form, and each error with its key and line.
#include <gtest/gtest.h>

#include <chrono>

#include "config/config.h"
#include "expect_error.h"

namespace dirgw::config {
namespace {

const char* kBase = R"yaml(facility: { name: Lakeside }
ingest: { dicom: { allowed_callers: [PACS1] } }
destinations:
  - name: hdirs
    url: https://dir.example.org/dicom-web
    transcode: jpeg-ls-lossless
  - name: pacs
    type: dimse
    dimse: { ae_title: ARCHIVE, host: 10.0.0.5 }
    transcode: { to: jpeg-ls-lossless, max_pixel_bytes: 16MiB, syntax_parameter: true }
  - name: plain
    url: https://other.example.org/dicom-web
)yaml";

using testing_support::expect_error;

std::string with(const std::string& from, const std::string& to) {
  return testing_support::replace_once(kBase, from, to);
}

TEST(TranscodeConfig, ShortAndLongFormAndOffByDefault) {
  auto r = load_string(kBase);
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].key + ": " + r.errors[0].message);
  const auto& d = r.config->destinations;
  EXPECT_EQ(d[0].transcode.to, "jpeg-ls-lossless");
  EXPECT_EQ(d[0].transcode.max_pixel_bytes, 64ull << 20);
  EXPECT_EQ(d[1].transcode.to, "jpeg-ls-lossless");
  EXPECT_EQ(d[1].transcode.max_pixel_bytes, 16ull << 20);
  EXPECT_TRUE(d[1].transcode.syntax_parameter);
  EXPECT_FALSE(d[0].transcode.syntax_parameter);
  EXPECT_TRUE(d[2].transcode.to.empty());
  auto off = load_string(with("transcode: jpeg-ls-lossless", "transcode: off"));
  ASSERT_TRUE(off.ok());
  EXPECT_TRUE(off.config->destinations[0].transcode.to.empty());
}

TEST(TranscodeConfig, ErrorsNameKeyLineAndWhatIsAllowed) {
  expect_error(load_string(with("transcode: jpeg-ls-lossless", "transcode: jpeg-baseline")),
               "destinations[0].transcode", 6, "must be jpeg-ls-lossless or off");
  expect_error(load_string(with("max_pixel_bytes: 16MiB", "max_pixel_bytes: 2GiB")),
               "destinations[1].transcode.max_pixel_bytes", 10, "between");
  expect_error(load_string(with("max_pixel_bytes: 16MiB", "max_pixel_bytes: lots")),
               "destinations[1].transcode.max_pixel_bytes", 10, "size");
  expect_error(load_string(with("to: jpeg-ls-lossless, ", "")), "destinations[1].transcode.to", 10,
               "is required");
  expect_error(load_string(with("syntax_parameter: true", "syntax_parameter: maybe")),
               "destinations[1].transcode.syntax_parameter", 10, "");
  expect_error(load_string(with("max_pixel_bytes: 16MiB", "near_lossless: 2")),
               "destinations[1].transcode.near_lossless", 10, "unknown key");
}

// The top-level `codecs:` block (the codec process's limits, docs/hostile-input.md).
TEST(CodecsConfig, DefaultsAndBounds) {
  auto r = load_string(kBase);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config->codecs.timeout, std::chrono::minutes(5));
  EXPECT_EQ(r.config->codecs.memory_limit, 4ull << 30);
  const std::string base = std::string(kBase) + "codecs: { timeout: 30s, memory_limit: 1GiB }\n";
  auto set = load_string(base);
  ASSERT_TRUE(set.ok()) << (set.errors.empty() ? "" : set.errors[0].message);
  EXPECT_EQ(set.config->codecs.timeout, std::chrono::seconds(30));
  EXPECT_EQ(set.config->codecs.memory_limit, 1ull << 30);
  expect_error(load_string(testing_support::replace_once(base, "30s", "10ms")), "codecs.timeout",
               13, "between");
  expect_error(load_string(testing_support::replace_once(base, "1GiB", "1MiB")),
               "codecs.memory_limit", 13, "between");
  expect_error(load_string(testing_support::replace_once(base, "memory_limit", "threads")),
               "codecs.threads", 13, "unknown key");
}

}  // namespace
}  // namespace dirgw::config
