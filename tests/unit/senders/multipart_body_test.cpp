#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "fake_http_server.h"
#include "senders/dicomweb/stow.h"
#include "test_files.h"

namespace dirgw::senders::dicomweb {
namespace {

using dirgw::testing::random_bytes;
using dirgw::testing::TempDir;

std::string read_all(MultipartBody& body, std::size_t chunk) {
  std::string out;
  std::string buf(chunk, '\0');
  for (;;) {
    std::size_t n = body.read(buf.data(), chunk);
    if (n == 0) break;
    EXPECT_LE(n, chunk);
    out.append(buf.data(), n);
  }
  return out;
}

TEST(MultipartBody, ByteExactFramingForTwoFiles) {
  TempDir dir;
  std::vector<Item> items = {write_item(dir, "a", "AAAA", "1.2.3.1"),
                             write_item(dir, "b", "BBBBBB", "1.2.3.2")};
  auto body = MultipartBody::open(items, "b0undary");
  ASSERT_TRUE(body.ok()) << body.error().to_string();
  const std::string expected =
      "--b0undary\r\n"
      "Content-Type: application/dicom\r\n"
      "\r\n"
      "AAAA\r\n"
      "--b0undary\r\n"
      "Content-Type: application/dicom\r\n"
      "\r\n"
      "BBBBBB\r\n"
      "--b0undary--\r\n";
  EXPECT_EQ(body->total_size(), expected.size());
  EXPECT_EQ(body->content_type(),
            "multipart/related; type=\"application/dicom\"; boundary=b0undary");
  EXPECT_EQ(read_all(*body, 4096), expected);
  EXPECT_FALSE(body->failed());
  char c;
  EXPECT_EQ(body->read(&c, 1), 0u);  // stays at the end
}

TEST(MultipartBody, TinyChunksGiveTheSameBytesAsLargeChunks) {
  TempDir dir;
  std::vector<Item> items;
  std::vector<std::string> contents;
  for (unsigned i = 0; i < 3; ++i) {
    contents.push_back(random_bytes(100000 + i * 777, i));
    items.push_back(
        write_item(dir, "f" + std::to_string(i), contents.back(), "1.2.3." + std::to_string(i)));
  }
  std::string reference;
  for (std::size_t chunk :
       {std::size_t{1}, std::size_t{7}, std::size_t{4096}, std::size_t{1} << 20}) {
    auto body = MultipartBody::open(items, make_boundary());
    ASSERT_TRUE(body.ok());
    std::string got = read_all(*body, chunk);
    EXPECT_EQ(got.size(), body->total_size()) << "chunk " << chunk;
    auto parts = dirgw::testing::parse_multipart(got, body->boundary());
    ASSERT_TRUE(parts.has_value()) << "chunk " << chunk;
    ASSERT_EQ(parts->size(), 3u);
    for (std::size_t i = 0; i < 3; ++i) {
      EXPECT_EQ((*parts)[i].data, contents[i]);
      EXPECT_EQ((*parts)[i].headers["content-type"], "application/dicom");
    }
  }
  // Same boundary, different chunk sizes: byte-identical.
  for (std::size_t chunk : {std::size_t{3}, std::size_t{65536}}) {
    auto body = MultipartBody::open(items, "fixed-boundary");
    ASSERT_TRUE(body.ok());
    std::string got = read_all(*body, chunk);
    if (reference.empty()) {
      reference = got;
    } else {
      EXPECT_EQ(got, reference);
    }
  }
}

TEST(MultipartBody, RewindAndSeekReproduceTheSameBytes) {
  TempDir dir;
  std::vector<Item> items = {write_item(dir, "a", random_bytes(5000, 1), "1.1"),
                             write_item(dir, "b", random_bytes(7000, 2), "1.2")};
  auto body = MultipartBody::open(items, "bnd");
  ASSERT_TRUE(body.ok());
  std::string full = read_all(*body, 1000);
  ASSERT_EQ(full.size(), body->total_size());

  ASSERT_TRUE(body->rewind().ok());
  EXPECT_EQ(body->position(), 0u);
  std::string half(3000, '\0');
  ASSERT_EQ(body->read(half.data(), half.size()), half.size());
  ASSERT_TRUE(body->rewind().ok());
  EXPECT_EQ(read_all(*body, 333), full);

  // Into the middle of the second file, and into framing text.
  for (std::uint64_t offset :
       {std::uint64_t{9000}, std::uint64_t{2}, full.size() - 3, full.size()}) {
    ASSERT_TRUE(body->seek(offset).ok());
    EXPECT_EQ(read_all(*body, 512), full.substr(offset)) << "offset " << offset;
  }
  EXPECT_FALSE(body->seek(full.size() + 1).ok());
}

TEST(MultipartBody, TotalSizeIsKnownBeforeReading) {
  TempDir dir;
  std::vector<Item> items = {write_item(dir, "a", std::string(12345, 'x'), "1.1")};
  auto body = MultipartBody::open(items, "0123456789abcdef");
  ASSERT_TRUE(body.ok());
  const std::uint64_t framing =
      std::string("--0123456789abcdef\r\nContent-Type: application/dicom\r\n\r\n").size() +
      std::string("\r\n--0123456789abcdef--\r\n").size();
  EXPECT_EQ(body->total_size(), 12345 + framing);
  EXPECT_EQ(read_all(*body, 100).size(), body->total_size());
}

TEST(MultipartBody, VanishedFileFailsAtOpenAndIsNamed) {
  TempDir dir;
  std::vector<Item> items = {write_item(dir, "a", "AAAA", "1.1"),
                             write_item(dir, "b", "BBBB", "1.2"),
                             write_item(dir, "c", "CCCC", "1.3")};
  std::filesystem::remove(items[1].path);
  std::vector<SpoolProblem> problems;
  auto body = MultipartBody::open(items, "bnd", &problems);
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.error().code, ErrorCode::kNotFound);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].index, 1u);
  EXPECT_FALSE(problems[0].error.retryable());
}

TEST(MultipartBody, SizeDifferentFromTheCatalogFailsAtOpen) {
  TempDir dir;
  std::vector<Item> items = {write_item(dir, "a", "AAAA", "1.1"),
                             write_item(dir, "b", "BBBB", "1.2")};
  items[0].size = 5;
  items[1].size = 3;
  std::vector<SpoolProblem> problems;
  auto body = MultipartBody::open(items, "bnd", &problems);
  ASSERT_FALSE(body.ok());
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_EQ(problems[0].index, 0u);
  EXPECT_EQ(problems[1].index, 1u);
}

TEST(MultipartBody, FileThatVanishesDuringTheUploadStopsTheStream) {
  TempDir dir;
  std::vector<Item> items = {write_item(dir, "a", random_bytes(4000, 1), "1.1"),
                             write_item(dir, "b", random_bytes(4000, 2), "1.2")};
  auto body = MultipartBody::open(items, "bnd");
  ASSERT_TRUE(body.ok());
  char buf[100];
  ASSERT_EQ(body->read(buf, sizeof buf), sizeof buf);
  std::filesystem::remove(items[1].path);
  std::string rest = read_all(*body, 512);
  EXPECT_TRUE(body->failed());
  ASSERT_TRUE(body->error().has_value());
  EXPECT_LT(rest.size() + sizeof buf, body->total_size());
  char c;
  EXPECT_EQ(body->read(&c, 1), 0u);
}

TEST(MultipartBody, FileReplacedAfterOpenIsDetected) {
  TempDir dir;
  std::vector<Item> items = {write_item(dir, "a", "AAAA", "1.1"),
                             write_item(dir, "b", "BBBB", "1.2")};
  auto body = MultipartBody::open(items, "bnd");
  ASSERT_TRUE(body.ok());
  // Same size, another inode (both exist at once, so the inode cannot be reused).
  auto replacement = write_item(dir, "b2", "ZZZZ", "1.2");
  std::filesystem::rename(replacement.path, items[1].path);
  read_all(*body, 64);
  EXPECT_TRUE(body->failed());
}

TEST(MultipartBody, RefusesEmptyBatchesAndUnsafeBoundaries) {
  TempDir dir;
  EXPECT_FALSE(MultipartBody::open({}, "bnd").ok());
  std::vector<Item> items = {write_item(dir, "a", "AAAA", "1.1")};
  EXPECT_FALSE(MultipartBody::open(items, "").ok());
  EXPECT_FALSE(MultipartBody::open(items, "has space").ok());
  EXPECT_FALSE(MultipartBody::open(items, "quote\"d").ok());
  EXPECT_FALSE(MultipartBody::open(items, std::string(71, 'a')).ok());
}

TEST(MultipartBody, BoundariesAreLongRandomAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string b = make_boundary();
    EXPECT_GE(b.size(), 32u);
    EXPECT_LE(b.size(), 70u);
    EXPECT_TRUE(seen.insert(b).second);
  }
}

// A transcoded copy names its transfer syntax in its part (PS3.18 8.7.3.5.2); an item sent as
// stored does not.
TEST(MultipartBody, TranscodedPartNamesItsTransferSyntax) {
  TempDir dir;
  std::vector<Item> items = {write_item(dir, "a", "AAAA", "1.2.3.1"),
                             write_item(dir, "b", "BB", "1.2.3.2")};
  items[1].transfer_syntax = "1.2.840.10008.1.2.4.80";
  auto body = MultipartBody::open(items, "b0undary");
  ASSERT_TRUE(body.ok()) << body.error().to_string();
  const std::string expected =
      "--b0undary\r\n"
      "Content-Type: application/dicom\r\n"
      "\r\n"
      "AAAA\r\n"
      "--b0undary\r\n"
      "Content-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.4.80\r\n"
      "\r\n"
      "BB\r\n"
      "--b0undary--\r\n";
  EXPECT_EQ(body->total_size(), expected.size());
  EXPECT_EQ(read_all(*body, 7), expected);
}

}  // namespace
}  // namespace dirgw::senders::dicomweb
