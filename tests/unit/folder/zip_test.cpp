#include <gtest/gtest.h>

#include <chrono>

#include "ingest/folder/zip_reader.h"
#include "zip_builder.h"

namespace dirgw::ingest::folder {
namespace {

using test::make_zip;

class Collect final : public ZipVisitor {
 public:
  Result<void> begin(std::size_t, std::string_view name) override {
    names.emplace_back(name);
    bodies.emplace_back();
    return {};
  }
  Result<void> data(const char* b, std::size_t n) override {
    bodies.back().append(b, n);
    return {};
  }
  Result<void> end() override { return {}; }
  std::vector<std::string> names, bodies;
};

ZipWalk walk(const std::string& zip, Collect& c, ZipLimits limits = {}) {
  return walk_zip_memory(zip.data(), zip.size(), limits, c);
}

TEST(ZipNames, AbsoluteDotDotAndDriveLettersAreRefused) {
  EXPECT_FALSE(entry_name_problem("study/IMG1.dcm").has_value());
  EXPECT_FALSE(entry_name_problem("a..b/..c").has_value());
  EXPECT_TRUE(entry_name_problem("/etc/passwd").has_value());
  EXPECT_TRUE(entry_name_problem("\\windows\\x").has_value());
  EXPECT_TRUE(entry_name_problem("../x").has_value());
  EXPECT_TRUE(entry_name_problem("a/../../x").has_value());
  EXPECT_TRUE(entry_name_problem("a\\..\\x").has_value());
  EXPECT_TRUE(entry_name_problem("a/..").has_value());
  EXPECT_TRUE(entry_name_problem("C:x").has_value());
  EXPECT_TRUE(entry_name_problem("").has_value());
  EXPECT_TRUE(is_dicomdir_name("CD/dicomdir"));
  EXPECT_FALSE(is_dicomdir_name("CD/DICOMDIR2"));
}

TEST(Zip, RegularEntriesAreReadInOrderAndDicomdirSkipped) {
  Collect c;
  auto w = walk(make_zip({{"a/one", "1111"}, {"DICOMDIR", "index"}, {"b/two", "22"}}), c);
  EXPECT_FALSE(w.refusal.has_value()) << w.refusal->detail;
  EXPECT_EQ(c.bodies, (std::vector<std::string>{"1111", "22"}));
}

// What Windows and macOS leave in an export is skipped, as DICOMDIR is; so is an empty entry.
TEST(Zip, LitterAndEmptyEntriesAreSkipped) {
  Collect c;
  auto w = walk(make_zip({{"study/IMG1", "1111"},
                          {"study/Thumbs.db", "thumbs"},
                          {"study/DESKTOP.INI", "ini"},
                          {"__MACOSX/study/._IMG1", "appledouble"},
                          {"study/._IMG1", "appledouble"},
                          {"study/.DS_Store", "finder"},
                          {"study/empty", ""},
                          {"study/IMG2", "22"}}),
                c);
  EXPECT_FALSE(w.refusal.has_value()) << w.refusal->detail;
  EXPECT_EQ(c.bodies, (std::vector<std::string>{"1111", "22"}));
}

TEST(ZipNames, LitterNames) {
  EXPECT_TRUE(is_litter_name("Thumbs.db"));
  EXPECT_TRUE(is_litter_name("a/b/thumbs.DB"));
  EXPECT_TRUE(is_litter_name("a\\desktop.ini"));
  EXPECT_TRUE(is_litter_name("__MACOSX/x/y.dcm"));
  EXPECT_TRUE(is_litter_name("x/._y.dcm"));
  EXPECT_FALSE(is_litter_name("Thumbs.db.dcm"));
  EXPECT_FALSE(is_litter_name("study/IMG._1"));
  EXPECT_FALSE(is_litter_name("MACOSX/IMG1"));
}

TEST(Zip, DotDotEntryRefusesTheArchive) {
  Collect c;
  auto w = walk(make_zip({{"ok", "1"}, {"../evil", "2"}}), c);
  ASSERT_TRUE(w.refusal.has_value());
  EXPECT_EQ(w.refusal->reason, "zip_entry_path");
  EXPECT_EQ(w.refusal->detail.find("evil"), std::string::npos);  // names never echoed
}

TEST(Zip, SymlinkEntryRefusesTheArchive) {
  Collect c;
  auto w = walk(make_zip({{"link", "/etc/passwd", true}}), c);
  ASSERT_TRUE(w.refusal.has_value());
  EXPECT_EQ(w.refusal->reason, "zip_entry_type");
  EXPECT_TRUE(c.names.empty());
}

TEST(Zip, TooManyEntries) {
  Collect c;
  ZipLimits l;
  l.max_entries = 2;
  auto w = walk(make_zip({{"a", "1"}, {"b", "2"}, {"c", "3"}}), c, l);
  ASSERT_TRUE(w.refusal.has_value());
  EXPECT_EQ(w.refusal->reason, "zip_limits");
}

TEST(Zip, BombIsRefusedBeforeInflatingWithBoundedWork) {
  // 16 MiB of zeros compress to ~16 KiB: far beyond a 200:1 ratio once the slack is spent.
  const std::string zip = make_zip({{"bomb", std::string(16u << 20, '\0')}});
  ASSERT_LT(zip.size(), 256u * 1024);
  Collect c;
  ZipLimits l;
  l.ratio_slack = 0;
  const auto t0 = std::chrono::steady_clock::now();
  auto w = walk(zip, c, l);
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(w.refusal.has_value());
  EXPECT_EQ(w.refusal->reason, "zip_limits");
  EXPECT_TRUE(c.names.empty());  // refused on the declared size, nothing inflated
  EXPECT_LT(took, std::chrono::seconds(2));
}

TEST(Zip, TotalSizeLimitHolds) {
  Collect c;
  ZipLimits l;
  l.max_total = 5;
  auto w = walk(make_zip({{"a", "123"}, {"b", "456"}}), c, l);
  ASSERT_TRUE(w.refusal.has_value());
  EXPECT_EQ(w.refusal->reason, "zip_limits");
}

TEST(Zip, NotAZipIsUnreadable) {
  Collect c;
  const std::string junk = "PK\3\4 this is not really a zip archive at all";
  auto w = walk(junk, c);
  ASSERT_TRUE(w.refusal.has_value());
  EXPECT_EQ(w.refusal->reason, "zip_unreadable");
  EXPECT_TRUE(looks_like_zip(junk));
  EXPECT_FALSE(looks_like_zip("DICM"));
}

}  // namespace
}  // namespace dirgw::ingest::folder
