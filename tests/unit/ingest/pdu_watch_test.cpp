// The watch over the bytes read from a DIMSE peer (ingest/dimse_scp/pdu_watch.h): command sets
// longer than the limit trip it, wherever the reads split the stream; data sets, other PDUs and
// a framing it cannot follow do not. On a connection we opened, the data sets DcmSCU parses in
// memory (pending C-FIND answers' identifiers, C-MOVE answers' data sets) are held and
// pre-scanned in the syntax the peer's A-ASSOCIATE-AC gave their context.
#include "ingest/dimse_scp/pdu_watch.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace dirgw::ingest {
namespace {

using Bytes = std::vector<unsigned char>;

void put32(Bytes& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(v >> s));
}

// One PDV item: length, presentation context 1, message control header, data.
Bytes pdv(bool command, bool last, std::size_t data_bytes) {
  Bytes b;
  put32(b, static_cast<std::uint32_t>(data_bytes + 2));
  b.push_back(1);
  b.push_back(static_cast<unsigned char>((command ? 1 : 0) | (last ? 2 : 0)));
  b.insert(b.end(), data_bytes, 0x5A);
  return b;
}

Bytes pdu(std::uint8_t type, const Bytes& body) {
  Bytes b{type, 0};
  put32(b, static_cast<std::uint32_t>(body.size()));
  b.insert(b.end(), body.begin(), body.end());
  return b;
}

Bytes p_data(std::initializer_list<Bytes> pdvs) {
  Bytes body;
  for (const auto& p : pdvs) body.insert(body.end(), p.begin(), p.end());
  return pdu(0x04, body);
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// Feeds `stream` in reads of `chunk` bytes; the offset of the read that tripped, or -1.
long feed_in_chunks(PduWatch& w, const Bytes& stream, std::size_t chunk) {
  for (std::size_t i = 0; i < stream.size(); i += chunk) {
    const std::size_t n = std::min(chunk, stream.size() - i);
    if (!w.feed(stream.data() + i, n)) return static_cast<long>(i);
  }
  return -1;
}

constexpr std::size_t kMax = 1024;

TEST(PduWatch, CommandsWithinTheLimitAndLargeDataSetsPass) {
  // An A-ASSOCIATE-RQ-like PDU, then messages: a command in two fragments adding up to the
  // limit, a 1 MB data set, and again; then a release request.
  const Bytes stream = cat(
      {pdu(0x01, Bytes(300, 0x20)), p_data({pdv(true, false, 600), pdv(true, true, kMax - 600)}),
       p_data({pdv(false, false, 500000)}), p_data({pdv(false, true, 500000)}),
       p_data({pdv(true, true, kMax)}), p_data({pdv(false, true, 10)}), pdu(0x05, Bytes(4, 0))});
  for (std::size_t chunk :
       {std::size_t{1}, std::size_t{7}, std::size_t{6}, std::size_t{4096}, stream.size()}) {
    PduWatch w(kMax);
    EXPECT_EQ(feed_in_chunks(w, stream, chunk), -1) << "chunk " << chunk;
    EXPECT_FALSE(w.tripped());
    EXPECT_TRUE(w.watching());
  }
}

TEST(PduWatch, ALongCommandTripsBeforeItsBytesPass) {
  const Bytes first = p_data({pdv(true, false, kMax - 10)});
  const Bytes second = p_data({pdv(true, true, 11)});  // one byte over, in its own PDU
  const Bytes stream = cat({first, second});
  for (std::size_t chunk : {std::size_t{1}, std::size_t{5}, std::size_t{4096}}) {
    PduWatch w(kMax);
    const long at = feed_in_chunks(w, stream, chunk);
    ASSERT_GE(at, 0) << "chunk " << chunk;
    // Tripped at the second fragment's item header: none of its data was let through.
    EXPECT_LE(static_cast<std::size_t>(at), first.size() + 6 + 6);
    EXPECT_TRUE(w.tripped());
    const unsigned char more = 0;
    auto again = w.feed(&more, 1);
    ASSERT_FALSE(again);
  }
  PduWatch w(kMax);
  auto r = w.feed(stream.data(), stream.size());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find("command set longer than 1024 bytes"), std::string::npos)
      << r.error().detail;
}

TEST(PduWatch, TheCountStartsAgainWithEachMessage) {
  // Many commands of just under the limit, each ended by its last fragment.
  Bytes stream;
  for (int i = 0; i < 20; ++i) {
    const Bytes m = p_data({pdv(true, false, kMax / 2), pdv(true, true, kMax / 2)});
    stream.insert(stream.end(), m.begin(), m.end());
  }
  PduWatch w(kMax);
  EXPECT_EQ(feed_in_chunks(w, stream, 100), -1);
  // A fragment not marked last carries the count on into the next PDU.
  PduWatch w2(kMax);
  const Bytes open = cat({p_data({pdv(true, false, kMax / 2)}),
                          p_data({pdv(true, false, kMax / 2)}), p_data({pdv(true, true, 1)})});
  EXPECT_GE(feed_in_chunks(w2, open, 100), 0);
}

TEST(PduWatch, FramingItCannotFollowIsLeftToDcmtk) {
  // A PDV item that claims more than its PDU holds: the watch stops, the bytes pass.
  Bytes body;
  put32(body, 5000);
  body.push_back(1);
  body.push_back(3);
  body.insert(body.end(), 10, 0);
  const Bytes bad = cat({pdu(0x04, body), p_data({pdv(true, true, 100000)})});
  PduWatch w(kMax);
  EXPECT_EQ(feed_in_chunks(w, bad, 64), -1);
  EXPECT_FALSE(w.watching());
  EXPECT_FALSE(w.tripped());
  // An item length below 2 likewise.
  Bytes tiny;
  put32(tiny, 1);
  tiny.push_back(1);
  tiny.push_back(3);
  PduWatch w2(kMax);
  const Bytes t = pdu(0x04, tiny);
  EXPECT_EQ(feed_in_chunks(w2, t, 3), -1);
  EXPECT_FALSE(w2.watching());
}

TEST(PduWatch, EmptyPdusAndEmptyFragments) {
  const Bytes stream = cat({pdu(0x04, {}), pdu(0x06, {}), p_data({pdv(true, true, 0)}),
                            p_data({pdv(true, true, kMax)})});
  PduWatch w(kMax);
  EXPECT_EQ(feed_in_chunks(w, stream, 1), -1);
  EXPECT_TRUE(w.watching());
}

// --- answers to our requests (check_answers) ---------------------------------------------------

constexpr const char* kImplicit = "1.2.840.10008.1.2";

void put16le(Bytes& b, std::uint16_t v) {
  b.push_back(static_cast<unsigned char>(v & 0xFF));
  b.push_back(static_cast<unsigned char>(v >> 8));
}
void put32le(Bytes& b, std::uint32_t v) {
  put16le(b, static_cast<std::uint16_t>(v & 0xFFFF));
  put16le(b, static_cast<std::uint16_t>(v >> 16));
}
Bytes item(std::uint8_t type, const Bytes& value) {
  Bytes b{type, 0, static_cast<unsigned char>(value.size() >> 8),
          static_cast<unsigned char>(value.size() & 0xFF)};
  b.insert(b.end(), value.begin(), value.end());
  return b;
}
Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }

// An A-ASSOCIATE-AC accepting context 1 in implicit VR LE, refusing context 3.
Bytes associate_ac() {
  Bytes body(68, 0x20);
  body[0] = 0;
  body[1] = 1;
  auto accepted = Bytes{1, 0, 0, 0};
  auto ts = item(0x40, text(kImplicit));
  accepted.insert(accepted.end(), ts.begin(), ts.end());
  auto refused = Bytes{3, 0, 3, 0};
  for (const Bytes& i : {item(0x10, text("1.2.840.10008.3.1.1.1")), item(0x21, accepted),
                         item(0x21, refused), item(0x50, item(0x51, {0, 0, 0x40, 0}))})
    body.insert(body.end(), i.begin(), i.end());
  return pdu(0x02, body);
}

// A response command set: command field, status, whether a data set follows.
Bytes command(std::uint16_t field, std::uint16_t status, bool data_set) {
  Bytes elements;
  auto us = [&](std::uint16_t element, std::uint16_t v) {
    put16le(elements, 0);
    put16le(elements, element);
    put32le(elements, 2);
    put16le(elements, v);
  };
  us(0x0100, field);
  us(0x0120, 1);
  us(0x0800, data_set ? 0x0000 : 0x0101);
  us(0x0900, status);
  Bytes b;
  put16le(b, 0);
  put16le(b, 0);
  put32le(b, 4);
  put32le(b, static_cast<std::uint32_t>(elements.size()));
  b.insert(b.end(), elements.begin(), elements.end());
  return b;
}

Bytes with_data(std::uint8_t context, const Bytes& cmd, const Bytes& data_set) {
  Bytes b;
  auto c = pdu(0x04, [&] {
    Bytes body;
    put32(body, static_cast<std::uint32_t>(cmd.size() + 2));
    body.push_back(context);
    body.push_back(3);
    body.insert(body.end(), cmd.begin(), cmd.end());
    return body;
  }());
  b.insert(b.end(), c.begin(), c.end());
  if (!data_set.empty()) {
    Bytes body;
    put32(body, static_cast<std::uint32_t>(data_set.size() + 2));
    body.push_back(context);
    body.push_back(2);
    body.insert(body.end(), data_set.begin(), data_set.end());
    auto d = pdu(0x04, body);
    b.insert(b.end(), d.begin(), d.end());
  }
  return b;
}

// An identifier: Study Instance UID, implicit VR LE.
Bytes identifier() {
  Bytes b;
  put16le(b, 0x0020);
  put16le(b, 0x000D);
  put32le(b, 8);
  const Bytes uid = text("1.2.3.44");  // an even length: no padding needed
  b.insert(b.end(), uid.begin(), uid.end());
  return b;
}

// Sequences nested `depth` deep, undefined lengths, implicit VR LE.
Bytes nested(int depth) {
  Bytes b;
  for (int i = 0; i < depth; ++i) {
    put16le(b, 0x0008);
    put16le(b, 0x1115);
    put32le(b, 0xFFFFFFFF);
    put16le(b, 0xFFFE);
    put16le(b, 0xE000);
    put32le(b, 0xFFFFFFFF);
  }
  for (int i = 0; i < depth; ++i) {
    for (std::uint16_t e : {std::uint16_t{0xE00D}, std::uint16_t{0xE0DD}}) {
      put16le(b, 0xFFFE);
      put16le(b, e);
      put32le(b, 0);
    }
  }
  return b;
}

constexpr std::uint16_t kFindRsp = 0x8020, kMoveRsp = 0x8021, kGetRsp = 0x8010;

TEST(PduWatchAnswers, AGoodIdentifierIsHeldUntilWholeThenLetThrough) {
  const Bytes ac = associate_ac();
  const Bytes answer = with_data(1, command(kFindRsp, 0xFF00, true), identifier());
  for (std::size_t chunk : {std::size_t{1}, std::size_t{9}, std::size_t{4096}}) {
    PduWatch w(kMax, /*check_answers=*/true);
    EXPECT_EQ(feed_in_chunks(w, ac, chunk), -1);
    bool held = false;
    for (std::size_t i = 0; i < answer.size(); i += chunk) {
      auto r = w.feed(answer.data() + i, std::min(chunk, answer.size() - i));
      ASSERT_TRUE(r.ok()) << r.error().detail;
      held = held || w.holding();
    }
    // Read in pieces, it is held between them; read whole, it is checked within the read.
    if (chunk < 100) {
      EXPECT_TRUE(held) << "chunk " << chunk;
    }
    EXPECT_FALSE(w.holding()) << "released once whole";
    EXPECT_FALSE(w.tripped());
  }
}

TEST(PduWatchAnswers, ADeepIdentifierOrMoveDataSetTripsTheWatch) {
  for (std::uint16_t field : {kFindRsp, kMoveRsp}) {
    PduWatch w(kMax, true);
    const Bytes stream =
        cat({associate_ac(), with_data(1, command(field, 0xFF00, true), nested(5000))});
    const long at = feed_in_chunks(w, stream, 1000);
    ASSERT_GE(at, 0) << std::hex << field;
    auto r = w.feed(stream.data(), 1);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().detail.find("refused before it was parsed"), std::string::npos)
        << r.error().detail;
    EXPECT_NE(r.error().detail.find("max_depth"), std::string::npos) << r.error().detail;
  }
  // Without check_answers (the SCP), nothing is held or scanned.
  PduWatch scp(kMax);
  EXPECT_EQ(
      feed_in_chunks(
          scp, cat({associate_ac(), with_data(1, command(kFindRsp, 0xFF00, true), nested(5000))}),
          1000),
      -1);
}

TEST(PduWatchAnswers, OnlyWhatDcmScuParsesIsHeld) {
  // A final C-FIND answer that announces a data set it does not send, a C-GET answer's data set
  // (DcmSCU reads neither), a pending answer without a data set.
  for (const Bytes& cmd : {command(kFindRsp, 0x0000, true), command(kGetRsp, 0xFF00, true),
                           command(kFindRsp, 0xFF00, false)}) {
    PduWatch w(kMax, true);
    ASSERT_EQ(feed_in_chunks(w, cat({associate_ac(), with_data(1, cmd, {})}), 64), -1);
    EXPECT_FALSE(w.holding());
  }
}

TEST(PduWatchAnswers, InterruptionsAndUnknownContexts) {
  // The next command where the data set was announced, none of it sent: let through.
  {
    PduWatch w(kMax, true);
    const Bytes stream = cat({associate_ac(), with_data(1, command(kFindRsp, 0xFF00, true), {}),
                              with_data(1, command(kFindRsp, 0x0000, false), {})});
    EXPECT_EQ(feed_in_chunks(w, stream, 7), -1);
    EXPECT_FALSE(w.holding());
  }
  // Part of the data set, then a command or an A-ABORT: refused (DCMTK would parse that part).
  for (const Bytes& after :
       {with_data(1, command(kFindRsp, 0x0000, false), {}), pdu(0x07, Bytes(4, 0))}) {
    PduWatch w(kMax, true);
    Bytes part;
    put32(part, 2 + 160);
    part.push_back(1);
    part.push_back(0);  // data, not last
    const Bytes deep = nested(10);
    part.insert(part.end(), deep.begin(), deep.begin() + 160);
    const Bytes stream = cat({associate_ac(), with_data(1, command(kFindRsp, 0xFF00, true), {}),
                              pdu(0x04, part), after});
    EXPECT_GE(feed_in_chunks(w, stream, 11), 0);
    EXPECT_TRUE(w.tripped());
  }
  // A data set on a context the peer did not accept.
  {
    PduWatch w(kMax, true);
    const Bytes stream =
        cat({associate_ac(), with_data(3, command(kFindRsp, 0xFF00, true), identifier())});
    EXPECT_GE(feed_in_chunks(w, stream, 64), 0);
    EXPECT_TRUE(w.tripped());
  }
}

}  // namespace
}  // namespace dirgw::ingest
