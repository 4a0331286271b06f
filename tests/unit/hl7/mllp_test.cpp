// MLLP framing: streaming decode in pieces of any size, framing errors, bounded size, encoder.
#include "ingest/hl7_mllp/mllp.h"

#include <gtest/gtest.h>

#include <random>

namespace dirgw::hl7 {
namespace {

const std::string kMsg = "MSH|^~\\&|A|B|C|D|20240105||ADT^A04|1|P|2.5\rPID|1||X\r";

std::string frame(std::string_view payload) {
  return std::string(1, kMllpStart) + std::string(payload) + kMllpEnd + kMllpTrailer;
}

std::vector<std::string> messages(const std::vector<MllpEvent>& events) {
  std::vector<std::string> out;
  for (const MllpEvent& e : events) {
    if (e.kind == MllpEvent::Kind::kMessage) out.push_back(e.message);
  }
  return out;
}

std::vector<MllpError> errors(const std::vector<MllpEvent>& events) {
  std::vector<MllpError> out;
  for (const MllpEvent& e : events) {
    if (e.kind == MllpEvent::Kind::kError) out.push_back(e.error);
  }
  return out;
}

TEST(Mllp, OneFrame) {
  MllpDecoder d;
  EXPECT_TRUE(d.idle());
  auto ev = d.feed(frame(kMsg));
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, MllpEvent::Kind::kMessage);
  EXPECT_EQ(ev[0].message, kMsg);
  EXPECT_TRUE(d.idle());
}

TEST(Mllp, ByteAtATime) {
  MllpDecoder d;
  const std::string bytes = frame(kMsg) + frame("second");
  std::vector<MllpEvent> ev;
  for (char c : bytes) {
    d.feed(std::string_view(&c, 1), ev);
    if (ev.empty()) {
      EXPECT_FALSE(d.idle());
    }
  }
  EXPECT_EQ(messages(ev), (std::vector<std::string>{kMsg, "second"}));
  EXPECT_TRUE(errors(ev).empty());
  EXPECT_TRUE(d.idle());
}

TEST(Mllp, RandomSplits) {
  std::mt19937 rng(42);
  std::string bytes;
  std::vector<std::string> expected;
  for (int i = 0; i < 50; ++i) {
    expected.push_back(kMsg + std::to_string(i));
    bytes += frame(expected.back());
  }
  MllpDecoder d;
  std::vector<MllpEvent> ev;
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    std::size_t n = std::min<std::size_t>(bytes.size() - pos, rng() % 97 + 1);
    d.feed(std::string_view(bytes).substr(pos, n), ev);
    pos += n;
  }
  EXPECT_EQ(messages(ev), expected);
}

TEST(Mllp, EmptyPayload) {
  MllpDecoder d;
  EXPECT_EQ(messages(d.feed(frame(""))), std::vector<std::string>{""});
}

TEST(Mllp, DataBeforeStartIsReportedThenTheMessageDelivered) {
  MllpDecoder d;
  auto ev = d.feed("GET / HTTP/1.1\r\n" + frame(kMsg));
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].kind, MllpEvent::Kind::kError);
  EXPECT_EQ(ev[0].error, MllpError::kDataBeforeStart);
  EXPECT_EQ(ev[0].bytes, 16u);
  EXPECT_EQ(ev[1].message, kMsg);
}

// Some senders end a frame with 0x1C 0x0D 0x0A: the LF is part of the end, not junk.
TEST(Mllp, CrLfAfterTheEndBlockIsTaken) {
  MllpDecoder d;
  auto ev = d.feed(frame("a") + "\n" + frame("b") + "\n");
  EXPECT_EQ(messages(ev), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(errors(ev).empty());
  EXPECT_TRUE(d.idle());
  // Byte at a time, the same.
  MllpDecoder e;
  std::vector<MllpEvent> all;
  for (char c : frame("a") + "\n" + frame("b")) e.feed(std::string_view(&c, 1), all);
  EXPECT_EQ(messages(all), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(errors(all).empty());
}

TEST(Mllp, MoreLineEndsBetweenFramesAreJunk) {
  MllpDecoder d;
  auto ev = d.feed(frame("a") + "\n \r\n" + frame("b"));
  EXPECT_EQ(messages(ev), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(errors(ev), std::vector<MllpError>{MllpError::kDataBeforeStart});
  EXPECT_TRUE(d.feed("\n\n").empty());  // junk is reported when the next frame starts
  EXPECT_FALSE(d.idle());
}

TEST(Mllp, StartInsideFrame) {
  MllpDecoder d;
  auto ev = d.feed(std::string(1, kMllpStart) + "partial" + frame(kMsg));
  EXPECT_EQ(errors(ev), std::vector<MllpError>{MllpError::kUnexpectedStart});
  EXPECT_EQ(messages(ev), std::vector<std::string>{kMsg});
}

// Some senders end a frame with the end block alone (or with LF) and wait for the ACK: the
// payload is whole at the end block and is yielded at once, with no error.
TEST(Mllp, EndBlockWithoutCarriageReturn) {
  MllpDecoder d;
  auto ev = d.feed(std::string(1, kMllpStart) + "first" + kMllpEnd);
  EXPECT_TRUE(errors(ev).empty());
  EXPECT_EQ(messages(ev), std::vector<std::string>{"first"});
  EXPECT_TRUE(d.idle());     // nothing partial: the peer may wait for its ACK
  ev = d.feed(frame(kMsg));  // the next frame right after the end block
  EXPECT_TRUE(errors(ev).empty());
  EXPECT_EQ(messages(ev), std::vector<std::string>{kMsg});
  ev = d.feed(std::string(1, kMllpStart) + "lf" + kMllpEnd + "\n" + frame("ok"));
  EXPECT_TRUE(errors(ev).empty());
  EXPECT_EQ(messages(ev), (std::vector<std::string>{"lf", "ok"}));
  // Anything else after the end block is outside a frame, as before.
  ev = d.feed(std::string(1, kMllpStart) + "taken" + kMllpEnd + "x" + frame("next"));
  EXPECT_EQ(errors(ev), std::vector<MllpError>{MllpError::kDataBeforeStart});
  EXPECT_EQ(messages(ev), (std::vector<std::string>{"taken", "next"}));
}

TEST(Mllp, TooLargeIsDroppedAndTheNextFrameDecoded) {
  MllpDecoder d(1000);
  EXPECT_EQ(messages(d.feed(frame(std::string(1000, 'x')))).size(), 1u);  // exactly the limit
  std::vector<MllpEvent> ev;
  d.feed(std::string(1, kMllpStart), ev);
  for (int i = 0; i < 100; ++i) d.feed(std::string(100, 'y'), ev);  // 10 000 bytes, in pieces
  EXPECT_LE(d.buffered(), 1000u);
  d.feed(std::string(1, kMllpEnd) + kMllpTrailer + frame("next"), ev);
  EXPECT_EQ(errors(ev), std::vector<MllpError>{MllpError::kTooLarge});
  EXPECT_EQ(messages(ev), std::vector<std::string>{"next"});
}

TEST(Mllp, EndlessJunkIsReportedWithoutWaiting) {
  MllpDecoder d(1000);
  std::vector<MllpEvent> ev;
  for (int i = 0; i < 30; ++i) d.feed(std::string(100, 'j'), ev);
  EXPECT_EQ(errors(ev).size(), 3u);
  EXPECT_EQ(d.buffered(), 0u);
}

TEST(Mllp, BinaryGarbageNeverCrashes) {
  std::mt19937 rng(7);
  MllpDecoder d(4096);
  std::vector<MllpEvent> ev;
  for (int i = 0; i < 2000; ++i) {
    std::string chunk(rng() % 512, '\0');
    for (char& c : chunk) c = static_cast<char>(rng() % 8 == 0 ? "\x0B\x1C\x0D"[rng() % 3] : rng());
    d.feed(chunk, ev);
    EXPECT_LE(d.buffered(), 4096u);
    ev.clear();
  }
  // Whatever came before, a clean frame after a clean end decodes.
  d.feed(std::string(1, kMllpEnd) + kMllpTrailer, ev);
  ev.clear();
  d.feed(frame("clean"), ev);
  EXPECT_EQ(messages(ev).back(), "clean");
}

TEST(Mllp, Encode) {
  Result<std::string> e = mllp_encode(kMsg);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(*e, frame(kMsg));
  MllpDecoder d;
  EXPECT_EQ(messages(d.feed(*e)), std::vector<std::string>{kMsg});
  EXPECT_FALSE(mllp_encode("a\x0B"
                           "b")
                   .ok());
  EXPECT_FALSE(mllp_encode("a\x1C"
                           "b")
                   .ok());
  EXPECT_FALSE(mllp_encode(std::string(11, 'x'), 10).ok());
}

TEST(Mllp, Describe) {
  EXPECT_EQ(describe(MllpError::kTooLarge), "message larger than allowed");
  EXPECT_FALSE(describe(MllpError::kDataBeforeStart).empty());
}

}  // namespace
}  // namespace dirgw::hl7
