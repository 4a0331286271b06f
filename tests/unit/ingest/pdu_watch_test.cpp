// The SCP's watch over the bytes read from a peer (ingest/dimse_scp/pdu_watch.h): command sets
// longer than the limit trip it, wherever the reads split the stream; data sets, other PDUs and
// a framing it cannot follow do not.
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

}  // namespace
}  // namespace dirgw::ingest
