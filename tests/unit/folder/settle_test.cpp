#include "ingest/folder/settle.h"

#include <gtest/gtest.h>

namespace dirgw::ingest::folder {
namespace {

using std::chrono::seconds;

const TimePoint kT0 = from_epoch_ms(1'800'000'000'000);

FileStamp stamp(std::uint64_t size, TimePoint mtime) {
  FileStamp s;
  s.size = size;
  s.mtime_ns = to_epoch_ms(mtime) * 1000000;
  s.ino = 7;
  return s;
}

TEST(Settle, FreshFileWaitsTheSettleTime) {
  SettleTracker t(seconds(5));
  EXPECT_FALSE(t.observe("a", stamp(10, kT0), kT0));
  EXPECT_FALSE(t.observe("a", stamp(10, kT0), kT0 + seconds(4)));
  EXPECT_TRUE(t.observe("a", stamp(10, kT0), kT0 + seconds(5)));
}

// A unit refused once is read again a settle period later, however old its mtime.
TEST(Settle, RestartWaitsTheSettleTimeFromNow) {
  SettleTracker t(seconds(5));
  const TimePoint later = kT0 + seconds(60);
  EXPECT_TRUE(t.observe("a", stamp(10, kT0), later));  // old: settled at once
  t.restart("a", stamp(10, kT0), later);
  EXPECT_FALSE(t.observe("a", stamp(10, kT0), later + seconds(4)));
  EXPECT_EQ(t.next_due(), later + seconds(5));
  EXPECT_TRUE(t.observe("a", stamp(10, kT0), later + seconds(5)));
}

TEST(Settle, GrowingFileIsLeftAlone) {
  SettleTracker t(seconds(1));
  // A writer adds a piece every 300 ms for 3 s: never ready while it writes.
  for (int i = 0; i < 10; ++i) {
    const TimePoint now = kT0 + std::chrono::milliseconds(300 * i);
    EXPECT_FALSE(t.observe("a", stamp(100 * (i + 1), now), now)) << i;
  }
  const TimePoint last = kT0 + std::chrono::milliseconds(2700);
  EXPECT_FALSE(t.observe("a", stamp(1000, last), last + std::chrono::milliseconds(900)));
  EXPECT_TRUE(t.observe("a", stamp(1000, last), last + seconds(1)));
}

TEST(Settle, ChangeWithoutNewMtimeRestartsTheWait) {
  SettleTracker t(seconds(5));
  EXPECT_FALSE(t.observe("a", stamp(10, kT0), kT0));
  // Same mtime (coarse clock on a share), new size: seen now, the wait starts again.
  EXPECT_FALSE(t.observe("a", stamp(20, kT0), kT0 + seconds(4)));
  EXPECT_FALSE(t.observe("a", stamp(20, kT0), kT0 + seconds(8)));
  EXPECT_TRUE(t.observe("a", stamp(20, kT0), kT0 + seconds(9)));
}

TEST(Settle, FileLeftWhileWeWereDownIsReadyAtOnce) {
  SettleTracker t(seconds(5));
  EXPECT_TRUE(t.observe("a", stamp(10, kT0 - seconds(60)), kT0));
}

TEST(Settle, FutureMtimeCountsAsNow) {
  SettleTracker t(seconds(5));
  EXPECT_FALSE(t.observe("a", stamp(10, kT0 + std::chrono::hours(1)), kT0));
  EXPECT_TRUE(t.observe("a", stamp(10, kT0 + std::chrono::hours(1)), kT0 + seconds(5)));
}

TEST(Settle, NextDueAndForgetting) {
  SettleTracker t(seconds(5));
  EXPECT_FALSE(t.next_due().has_value());
  t.observe("a", stamp(1, kT0), kT0);
  t.observe("b", stamp(1, kT0 + seconds(2)), kT0 + seconds(2));
  ASSERT_TRUE(t.next_due().has_value());
  EXPECT_EQ(*t.next_due(), kT0 + seconds(5));
  t.keep_only({"b"});
  EXPECT_EQ(*t.next_due(), kT0 + seconds(7));
  t.forget("b");
  EXPECT_FALSE(t.next_due().has_value());
}

}  // namespace
}  // namespace dirgw::ingest::folder
