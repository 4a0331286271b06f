#include <gtest/gtest.h>

#include "config/config.h"
#include "expect_error.h"

namespace dirgw::config {
namespace {

const char* kHead = R"(facility: { name: "Lakeside General", id: LGH }
destinations: [{ name: repo, type: stow-rs, url: "https://dir.example.org/dicom-web" }]
ingest:
  folders:
)";

LoadResult load_folders(const std::string& items) {
  return load_string(std::string(kHead) + items);
}

using testing_support::expect_error;

TEST(FoldersConfig, EveryKeyIsRead) {
  auto r = load_folders(
      "    - { path: /srv/ct-export/, name: ct-export, after: move, done_days: 3, settle: 2s, "
      "rescan: 30s }\n"
      "    - { path: /srv/cd-import, name: cd, after: delete }\n");
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].message);
  const auto& f = r.config->ingest.folders;
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].path, "/srv/ct-export/");
  EXPECT_EQ(f[0].name, "ct-export");
  EXPECT_EQ(f[0].after, "move");
  EXPECT_EQ(f[0].done_days, 3);
  EXPECT_EQ(f[0].settle, std::chrono::seconds(2));
  EXPECT_EQ(f[0].rescan, std::chrono::seconds(30));
  EXPECT_EQ(f[1].after, "delete");
  EXPECT_EQ(f[1].settle, std::chrono::seconds(5));  // the default
}

TEST(FoldersConfig, NoFoldersIsFine) {
  auto r = load_string(std::string(kHead).substr(0, std::string(kHead).find("ingest:")) +
                       "ingest: { folders: [] }\n");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.config->ingest.folders.empty());
}

TEST(FoldersConfig, MissingPathAndNameAreNamed) {
  auto r = load_folders("    - { after: move }\n");
  expect_error(r, "ingest.folders[0].path", 5, "missing");
  expect_error(r, "ingest.folders[0].name", 5, "missing");
}

TEST(FoldersConfig, RelativePathIsRefused) {
  auto r = load_folders("    - { path: export, name: a }\n");
  expect_error(r, "ingest.folders[0].path", 5, "absolute path");
}

TEST(FoldersConfig, BadAfterSettleAndDaysNameKeyAndLine) {
  auto r = load_folders(
      "    - path: /srv/a\n"
      "      name: a\n"
      "      after: archive\n"
      "      settle: soon\n"
      "    - { path: /srv/b, name: b, after: delete, done_days: 3 }\n");
  expect_error(r, "ingest.folders[0].after", 7, "move or delete");
  expect_error(r, "ingest.folders[0].settle", 8, "duration");
  expect_error(r, "ingest.folders[1].done_days", 9, "only applies with after: move");
}

TEST(FoldersConfig, UnknownKeyListsTheAllowedOnes) {
  auto r = load_folders("    - { path: /srv/a, name: a, delete_after_ingest: true }\n");
  expect_error(r, "ingest.folders[0].delete_after_ingest", 5, "allowed here: after, done_days");
}

TEST(FoldersConfig, NamesMustBeSafeAndUnique) {
  auto r = load_folders(
      "    - { path: /srv/a, name: 'a/b' }\n"
      "    - { path: /srv/b, name: b }\n"
      "    - { path: /srv/c, name: b }\n");
  expect_error(r, "ingest.folders[0].name", 5, "letters, digits");
  expect_error(r, "ingest.folders[2].name", 7, "used twice");
}

TEST(FoldersConfig, NestedFoldersAreRefused) {
  auto r = load_folders(
      "    - { path: /srv/export, name: a }\n"
      "    - { path: /srv/export/sub, name: b }\n");
  expect_error(r, "ingest.folders[1].path", 6, "must not nest");
}

TEST(FoldersConfig, NotAListIsRefused) {
  auto r = load_string(std::string(kHead).substr(0, std::string(kHead).find("  folders:")) +
                       "  folders: /srv/a\n");
  expect_error(r, "ingest.folders", 4, "must be a list");
}

}  // namespace
}  // namespace dirgw::config
