// The spool: content-addressed, durable, never named after a value from a message, and the only
// code that creates, moves or deletes object files.
#include "ingest/spool/spool.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <set>
#include <thread>

#include "common/crypto.h"
#include "unit/policy/dataset_builder.h"

namespace dirgw::ingest {
namespace {

namespace fs = std::filesystem;

void write(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

fs::path write_temp(const Spool& s, const std::string& bytes) {
  fs::path p = s.new_temp_path();
  write(p, bytes);
  return p;
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

// Slots (issue 16): the name is durable before the object arrives, so a committed slot needs only
// its data flushed; the content name is a hard link, made durable by settle(), which then removes
// the slot.
TEST_F(SpoolTest, SlotIsCommittedByLinkAndSettledLater) {
  Spool s = spool();
  auto slot = s.acquire_slot();
  ASSERT_TRUE(slot.ok()) << slot.error().to_string();
  EXPECT_EQ(slot->parent_path().filename(), "tmp");
  EXPECT_TRUE(fs::exists(*slot));
  EXPECT_EQ(fs::file_size(*slot), 0u);
  write(*slot, "slot bytes");
  auto stored = s.commit(*slot, 1 << 20);
  ASSERT_TRUE(stored.ok()) << stored.error().to_string();
  EXPECT_EQ(stored->sha256, sha256_hex("slot bytes"));
  EXPECT_TRUE(fs::exists(stored->path));
  EXPECT_TRUE(fs::exists(*slot));  // the durable copy until the link is
  EXPECT_EQ(fs::hard_link_count(stored->path), 2u);
  auto settled = s.settle();
  ASSERT_TRUE(settled.ok());
  EXPECT_EQ(*settled, 1);
  EXPECT_FALSE(fs::exists(*slot));
  EXPECT_EQ(fs::hard_link_count(stored->path), 1u);
  EXPECT_EQ(*s.settle(), 0);
}

TEST_F(SpoolTest, SlotsComeInBatchesAndAreDistinct) {
  Spool s = spool();
  std::set<fs::path> seen;
  for (int i = 0; i < 40; ++i) {
    auto slot = s.acquire_slot();
    ASSERT_TRUE(slot.ok());
    EXPECT_TRUE(seen.insert(*slot).second);
  }
}

TEST_F(SpoolTest, SameContentInTwoSlotsIsStoredOnce) {
  Spool s = spool();
  auto a = s.acquire_slot(), b = s.acquire_slot();
  write(*a, "same");
  write(*b, "same");
  auto first = s.commit(*a, 1 << 20);
  auto second = s.commit(*b, 1 << 20);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_FALSE(first->already_present);
  EXPECT_TRUE(second->already_present);
  EXPECT_FALSE(fs::exists(*b));
  EXPECT_EQ(*s.settle(), 1);
}

TEST_F(SpoolTest, AtStartACataloguedSlotWhoseLinkIsMissingIsLinkedBack) {
  Spool s = spool();
  auto kept = s.acquire_slot(), unknown = s.acquire_slot(), empty = s.acquire_slot();
  write(*kept, "acknowledged");
  write(*unknown, "never acknowledged");
  auto stored = s.commit(*kept, 1 << 20);
  ASSERT_TRUE(stored.ok());
  // A power cut before settle(): the link is lost, the slot (durable) survives.
  fs::remove(stored->path);
  const std::string known = sha256_hex("acknowledged");
  auto cleaned = s.remove_temporaries([&](const std::string& sha) { return sha == known; });
  ASSERT_TRUE(cleaned.ok()) << cleaned.error().to_string();
  EXPECT_EQ(cleaned->slots_relinked, 1);
  EXPECT_TRUE(fs::exists(s.object_path(known)));
  EXPECT_FALSE(fs::exists(s.object_path(sha256_hex("never acknowledged"))));
  EXPECT_TRUE(fs::is_empty(dir_ / "spool" / "tmp"));
  (void)empty;
}

// A kill -9 before settle() leaves the slot and a link that shows but may not be on the disk:
// start-up links the name again (so that the directory changes and its fsync writes the entry),
// fsyncs the shard, and only then removes the slot.
TEST_F(SpoolTest, AtStartACataloguedSlotWhoseLinkShowsIsLinkedAgainThenRemoved) {
  Spool s = spool();
  auto slot = s.acquire_slot();
  write(*slot, "acknowledged before a kill");
  auto stored = s.commit(*slot, 1 << 20);
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(fs::hard_link_count(stored->path), 2u);  // the same file under both names
  const std::string known = sha256_hex("acknowledged before a kill");
  auto cleaned = s.remove_temporaries([&](const std::string& sha) { return sha == known; });
  ASSERT_TRUE(cleaned.ok()) << cleaned.error().to_string();
  EXPECT_EQ(cleaned->slots_relinked, 0);  // it showed already
  EXPECT_FALSE(fs::exists(*slot));
  ASSERT_TRUE(fs::exists(stored->path));
  EXPECT_EQ(fs::hard_link_count(stored->path), 1u);
  std::ifstream in(stored->path, std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "acknowledged before a kill");
  EXPECT_TRUE(fs::is_empty(dir_ / "spool" / "tmp"));
}

// A shard directory whose fsync fails keeps its slots until the next start (a second fsync after
// an I/O error need not write the entry); the other shards settle.
TEST_F(SpoolTest, ASlotWhoseShardCannotBeFlushedIsKeptUntilTheNextStart) {
  Spool s = spool();
  auto a = s.acquire_slot(), b = s.acquire_slot();
  write(*a, "first object");
  write(*b, "second object");
  auto sa = s.commit(*a, 1 << 20);
  auto sb = s.commit(*b, 1 << 20);
  ASSERT_TRUE(sa.ok() && sb.ok());
  ASSERT_NE(sa->path.parent_path(), sb->path.parent_path()) << "two shards";
  // The first shard cannot be opened for its fsync (moved away, then back).
  const fs::path shard = sa->path.parent_path(), away = shard.string() + ".away";
  fs::rename(shard, away);
  auto settled = s.settle();
  fs::rename(away, shard);
  ASSERT_FALSE(settled.ok());
  EXPECT_NE(settled.error().detail.find("1 received object(s) kept in spool/tmp until dirgwd "
                                        "restarts"),
            std::string::npos)
      << settled.error().detail;
  std::string why;
  EXPECT_EQ(s.kept_slots(&why), 1u);
  EXPECT_FALSE(why.empty());
  EXPECT_TRUE(fs::exists(*a)) << "kept: the durable copy";
  EXPECT_FALSE(fs::exists(*b)) << "its shard was flushed: settled";
  // Never tried again in this run.
  EXPECT_EQ(*s.settle(), 0);
  EXPECT_TRUE(fs::exists(*a));
  // The next start links it again and lets it go.
  Spool again = spool();
  auto cleaned = again.remove_temporaries(
      [&](const std::string& sha) { return sha == sa->sha256 || sha == sb->sha256; });
  ASSERT_TRUE(cleaned.ok()) << cleaned.error().to_string();
  EXPECT_FALSE(fs::exists(*a));
  EXPECT_TRUE(fs::exists(sa->path));
  EXPECT_EQ(again.kept_slots(), 0u);
}

// The DICOM SCP's path (issue 16): the slot's flush starts when its last byte is in and runs on a
// spool thread while the object is hashed (and the catalog writes its rows); the object gets its
// content name only once finish_commit() has seen that flush done.
TEST_F(SpoolTest, ASlotFlushedEarlyIsLinkedOnlyWhenItsCommitIsFinished) {
  Spool s = spool();
  auto slot = s.acquire_slot();
  ASSERT_TRUE(slot.ok());
  write(*slot, "received bytes");
  auto flushing = s.start_flush(*slot);
  ASSERT_NE(flushing, nullptr);
  auto hashed = s.hash_received(*slot, 1 << 20);
  ASSERT_TRUE(hashed.ok()) << hashed.error().to_string();
  EXPECT_EQ(hashed->sha256, sha256_hex("received bytes"));
  EXPECT_EQ(hashed->size, 14u);
  EXPECT_FALSE(hashed->already_present);
  EXPECT_FALSE(fs::exists(hashed->path));  // no content name before the data is durable
  EXPECT_TRUE(fs::exists(*slot));
  auto stored = s.finish_commit(*slot, *hashed, flushing);
  ASSERT_TRUE(stored.ok()) << stored.error().to_string();
  EXPECT_EQ(stored->path, s.object_path(sha256_hex("received bytes")));
  EXPECT_EQ(fs::hard_link_count(stored->path), 2u);  // the slot stays the copy until settled
  EXPECT_EQ(*s.settle(), 1);
  EXPECT_FALSE(fs::exists(*slot));
}

TEST_F(SpoolTest, OnlySlotsAreFlushedEarly) {
  Spool s = spool();
  EXPECT_EQ(s.start_flush(s.new_temp_path()), nullptr);
  EXPECT_EQ(s.start_flush(dir_ / "slot-elsewhere"), nullptr);
  // A temporary that is not a slot is still committed, with its own fsync and directory fsync.
  const fs::path temp = s.new_temp_path();
  write(temp, "from a folder");
  auto hashed = s.hash_received(temp, 1 << 20);
  ASSERT_TRUE(hashed.ok());
  auto stored = s.finish_commit(temp, *hashed, nullptr);
  ASSERT_TRUE(stored.ok());
  EXPECT_TRUE(fs::exists(stored->path));
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_EQ(*s.settle(), 0);  // renamed, not linked: nothing to settle
}

TEST_F(SpoolTest, HashingDoesNotKeepATemporaryOverTheLimitOrBytesAlreadyThere) {
  Spool s = spool();
  auto big = s.acquire_slot();
  write(*big, std::string(100, 'x'));
  auto flushing = s.start_flush(*big);
  auto refused = s.hash_received(*big, 99);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kPrescanRejected);
  EXPECT_FALSE(fs::exists(*big));
  ASSERT_TRUE(s.commit(write_temp(s, "twice"), 1 << 20).ok());
  auto again = s.acquire_slot();
  write(*again, "twice");
  auto hashed = s.hash_received(*again, 1 << 20);
  ASSERT_TRUE(hashed.ok());
  EXPECT_TRUE(hashed->already_present);
  auto stored = s.finish_commit(*again, *hashed, s.start_flush(*again));
  ASSERT_TRUE(stored.ok());
  EXPECT_TRUE(stored->already_present);
  EXPECT_FALSE(fs::exists(*again));
}

// Slots are topped up on a spool thread before they run out, so that an association seldom
// waits for a batch of files to be created; each batch's names are durable before use.
TEST_F(SpoolTest, SlotsAreToppedUpBeforeTheyRunOut) {
  Spool s = spool();
  std::set<fs::path> taken;
  for (int i = 0; i < 17; ++i) taken.insert(*s.acquire_slot());  // 15 of the first 32 left
  const auto files = [&] {
    return std::distance(fs::directory_iterator(dir_ / "spool" / "tmp"), fs::directory_iterator{});
  };
  for (int i = 0; i < 500 && files() < 64; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(files(), 64);  // a second batch of 32, made without a caller waiting for it
  for (int i = 0; i < 40; ++i) EXPECT_TRUE(taken.insert(*s.acquire_slot()).second);
  for (const auto& p : taken) EXPECT_TRUE(fs::exists(p));
}

}  // namespace
}  // namespace dirgw::ingest
