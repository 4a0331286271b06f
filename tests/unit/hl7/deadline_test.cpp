// The HL7 connection's deadlines on simulated time: idle and message time-outs bounded by total
// time, however the bytes trickle in.
#include "ingest/hl7_mllp/deadline.h"

#include <gtest/gtest.h>

#include "fakes/fake_clock.h"

namespace dirgw::ingest {
namespace {

using std::chrono::seconds;
using Expiry = ConnectionDeadline::Expiry;

struct Hl7ConnectionDeadline : ::testing::Test {
  testing::FakeClock clock;
  ConnectionDeadline d{Millis(seconds(300)), Millis(seconds(60)), clock.now()};
};

TEST_F(Hl7ConnectionDeadline, SilentConnectionExpiresIdleAfterIdleTimeout) {
  clock.advance(seconds(299));
  EXPECT_EQ(d.expired(clock.now()), Expiry::kNone);
  clock.advance(seconds(1));
  EXPECT_EQ(d.expired(clock.now()), Expiry::kIdle);
}

TEST_F(Hl7ConnectionDeadline, TricklingOneMessageDoesNotExtendItsDeadline) {
  clock.advance(seconds(10));
  d.read(clock.now(), true);  // the first byte of a message
  for (int i = 0; i < 59; ++i) {
    clock.advance(seconds(1));
    d.read(clock.now(), true);  // one more byte every second: still unfinished
    EXPECT_EQ(d.expired(clock.now()), Expiry::kNone) << i;
  }
  clock.advance(seconds(1));
  d.read(clock.now(), true);
  EXPECT_EQ(d.expired(clock.now()), Expiry::kMessage);
  EXPECT_EQ(d.due(), testing::FakeClock().now() + seconds(70));
}

TEST_F(Hl7ConnectionDeadline, MessageTimeoutAppliesEvenWithinIdleTimeout) {
  d.read(clock.now(), true);
  clock.advance(seconds(61));
  EXPECT_EQ(d.expired(clock.now()), Expiry::kMessage);
}

TEST_F(Hl7ConnectionDeadline, BusyWhileAnsweringNeverExpires) {
  d.read(clock.now(), false);  // a whole message in one read
  d.busy();
  clock.advance(seconds(3600));
  EXPECT_EQ(d.expired(clock.now()), Expiry::kNone);
  EXPECT_EQ(d.due(), TimePoint::max());
}

TEST_F(Hl7ConnectionDeadline, AnsweredRestartsIdleFromTheAnswer) {
  clock.advance(seconds(250));
  d.read(clock.now(), false);
  d.busy();
  clock.advance(seconds(20));
  d.answered(clock.now(), false);
  clock.advance(seconds(299));
  EXPECT_EQ(d.expired(clock.now()), Expiry::kNone);
  clock.advance(seconds(1));
  EXPECT_EQ(d.expired(clock.now()), Expiry::kIdle);
}

TEST_F(Hl7ConnectionDeadline, MessageBegunWithTheAnsweredOneTimesFromTheAnswer) {
  d.read(clock.now(), true);
  clock.advance(seconds(50));
  d.read(clock.now(), true);  // completes the first and begins a second
  d.busy();
  clock.advance(seconds(5));
  d.answered(clock.now(), true);
  clock.advance(seconds(59));
  EXPECT_EQ(d.expired(clock.now()), Expiry::kNone);
  clock.advance(seconds(1));
  EXPECT_EQ(d.expired(clock.now()), Expiry::kMessage);
}

TEST_F(Hl7ConnectionDeadline, CompletedMessageReturnsToIdleDeadline) {
  d.read(clock.now(), true);
  clock.advance(seconds(30));
  d.read(clock.now(), false);
  EXPECT_EQ(d.kind(), Expiry::kIdle);
  clock.advance(seconds(100));
  EXPECT_EQ(d.expired(clock.now()), Expiry::kNone);
}

}  // namespace
}  // namespace dirgw::ingest
