// The spool: content-addressed, durable, never named after a value from a message, and the only
// code that creates, moves or deletes object files.
#include "ingest/spool/spool.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "common/crypto.h"
#include "unit/policy/dataset_builder.h"

namespace dirgw::ingest {
namespace {

namespace fs = std::filesystem;

void write(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

class SpoolTest : public ::testing::Test {
 protected:
  Spool spool() { return std::move(Spool::open(dir_ / "spool")).value(); }
  policy::test::TempDir dir_;
};

TEST_F(SpoolTest, CommitIsContentAddressedAndRemovesTheTemporary) {
  Spool s = spool();
  const auto temp = s.new_temp_path();
  EXPECT_EQ(temp.parent_path().filename(), "tmp");
  write(temp, "object bytes");
  auto stored = s.commit(temp, 1 << 20);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->sha256, sha256_hex("object bytes"));
  EXPECT_EQ(stored->size, 12u);
  EXPECT_EQ(stored->path, s.object_path(stored->sha256));
  EXPECT_TRUE(fs::exists(stored->path));
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_EQ(stored->path.parent_path().filename(), stored->sha256.substr(0, 2));
  EXPECT_FALSE(stored->already_present);
  // The same bytes again: one file, and it says so.
  const auto again = s.new_temp_path();
  write(again, "object bytes");
  auto second = s.commit(again, 1 << 20);
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->already_present);
  EXPECT_FALSE(fs::exists(again));
  auto listed = s.list_objects();
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(*listed, std::vector<std::string>{stored->sha256});
}

TEST_F(SpoolTest, AnObjectOverTheLimitIsRefusedAndLeavesNothing) {
  Spool s = spool();
  const auto temp = s.new_temp_path();
  write(temp, std::string(100, 'x'));
  auto stored = s.commit(temp, 99);
  EXPECT_FALSE(stored.ok());
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_TRUE(s.list_objects()->empty());
}

TEST_F(SpoolTest, TemporariesLeftByACrashAreRemovedAtStart) {
  Spool s = spool();
  write(s.new_temp_path(), "half");
  write(s.new_temp_path(), "written");
  auto cleaned = s.remove_temporaries();
  ASSERT_TRUE(cleaned.ok());
  EXPECT_EQ(cleaned->temporaries_removed, 2);
  EXPECT_TRUE(fs::is_empty(dir_ / "spool" / "tmp"));
}

TEST_F(SpoolTest, DerivedObjectsLiveApartAndAreNotListedAsReceived) {
  Spool s = spool();
  const auto temp = s.new_temp_path();
  write(temp, "coerced copy");
  auto derived = s.commit_derived(temp);
  ASSERT_TRUE(derived.ok());
  EXPECT_EQ(derived->path, s.derived_path(derived->sha256));
  EXPECT_NE(s.derived_path(derived->sha256), s.object_path(derived->sha256));
  EXPECT_TRUE(fs::exists(derived->path));
  EXPECT_TRUE(s.list_objects()->empty()) << "a derived copy is not a received object";
}

TEST_F(SpoolTest, MoveObjectTakesItOutOfTheSpool) {
  Spool s = spool();
  const auto temp = s.new_temp_path();
  write(temp, "does not parse");
  auto stored = s.commit(temp, 1 << 20);
  ASSERT_TRUE(stored.ok());
  ASSERT_TRUE(s.move_object(stored->sha256, dir_ / "quarantine").ok());
  EXPECT_FALSE(fs::exists(stored->path));
  EXPECT_TRUE(fs::exists(dir_ / "quarantine" / stored->sha256));
  EXPECT_TRUE(s.list_objects()->empty());
}

TEST_F(SpoolTest, ReopeningKeepsWhatWasStored) {
  std::string sha;
  {
    Spool s = spool();
    const auto temp = s.new_temp_path();
    write(temp, "kept");
    sha = s.commit(temp, 1 << 20)->sha256;
  }
  Spool again = spool();
  EXPECT_EQ(*again.list_objects(), std::vector<std::string>{sha});
}

}  // namespace
}  // namespace dirgw::ingest
