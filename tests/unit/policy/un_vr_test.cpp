// Issue 17, item 5: UN-encoded elements the dictionary knows are decoded in the copy that leaves.
#include "policy/stage/un_vr.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "dataset_builder.h"

namespace dirgw::policy {
namespace {

using test::valid_ct;

std::uint16_t u16(const std::string& s, std::size_t at) {
  return static_cast<std::uint16_t>(static_cast<unsigned char>(s[at]) |
                                    static_cast<unsigned char>(s[at + 1]) << 8);
}

// The file's bytes with the short-form elements `tags` (group << 16 | element) of the top-level
// dataset written as UN (long form, the same value bytes): what some RT exporters produce.
std::string with_un(const std::string& file, std::initializer_list<std::uint32_t> tags) {
  std::size_t pos = 144 + (static_cast<std::size_t>(u16(file, 140)) | u16(file, 142) << 16);
  std::string out = file.substr(0, pos);
  while (pos + 8 <= file.size()) {
    const std::uint32_t tag = static_cast<std::uint32_t>(u16(file, pos)) << 16 | u16(file, pos + 2);
    const std::string vr = file.substr(pos + 4, 2);
    const bool long_vr = vr == "OB" || vr == "OW" || vr == "SQ" || vr == "UN" || vr == "UT";
    const std::size_t header = long_vr ? 12 : 8;
    std::uint32_t len =
        long_vr ? (u16(file, pos + 8) | static_cast<std::uint32_t>(u16(file, pos + 10)) << 16)
                : u16(file, pos + 6);
    if (len == 0xFFFFFFFFu) break;
    if (!long_vr && std::find(tags.begin(), tags.end(), tag) != tags.end()) {
      out += file.substr(pos, 4) + std::string("UN\0\0", 4);
      for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(len >> (8 * i)));
    } else {
      out += file.substr(pos, header);
    }
    out += file.substr(pos + header, len);
    pos += header + len;
  }
  return out + file.substr(pos);
}

void write(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

TEST(UnElements, SopUidsWrittenAsUnComeBackAsTheOriginalBytes) {
  test::TempDir dir;
  auto ds = valid_ct({.rows = 8, .columns = 8, .bits_allocated = 16});
  test::save(*ds, dir / "ui.dcm");
  const std::string ui = test::read_all(dir / "ui.dcm");
  const std::string un = with_un(ui, {0x00080016, 0x00080018, 0x00280010});
  ASSERT_NE(un, ui);
  write(dir / "un.dcm", un);
  auto r = decode_un_elements(dir / "un.dcm", dir / "out.dcm");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->decoded, 3);  // SOP Class, SOP Instance (UI) and Rows (US)
  EXPECT_EQ(test::read_all(dir / "out.dcm"), ui);
  EXPECT_EQ(test::read_all(dir / "un.dcm"), un);  // the original is left as it was
}

// The walk reads headers through a 64 KiB window: an element after a value larger than the
// window is still found (the window moves past the value by its offset).
TEST(UnElements, UnElementAfterALargeValueIsDecoded) {
  test::TempDir dir;
  auto ds = valid_ct({.rows = 8, .columns = 8, .bits_allocated = 16});
  ds->putAndInsertString(DcmTag(0x0009, 0x0010, EVR_LO), "DIRGW TEST");
  const std::vector<Uint8> big(200 * 1024, 0x5A);
  ASSERT_TRUE(ds->putAndInsertUint8Array(DcmTag(0x0009, 0x1010, EVR_OB), big.data(),
                                         static_cast<unsigned long>(big.size()))
                  .good());
  test::save(*ds, dir / "ui.dcm");
  const std::string ui = test::read_all(dir / "ui.dcm");
  ASSERT_GT(ui.size(), big.size());
  const std::string un = with_un(ui, {0x00280010, 0x00280011});  // Rows, Columns: after it
  ASSERT_NE(un, ui);
  write(dir / "un.dcm", un);
  auto r = decode_un_elements(dir / "un.dcm", dir / "out.dcm");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->decoded, 2);
  EXPECT_EQ(test::read_all(dir / "out.dcm"), ui);
}

TEST(UnElements, NothingToDecodeWritesNothing) {
  test::TempDir dir;
  auto ds = valid_ct();
  test::save(*ds, dir / "ui.dcm");
  auto r = decode_un_elements(dir / "ui.dcm", dir / "out.dcm");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->decoded, 0);
  EXPECT_FALSE(std::filesystem::exists(dir / "out.dcm"));
}

TEST(UnElements, PrivateAndOddLengthUnElementsAreKept) {
  test::TempDir dir;
  auto ds = valid_ct();
  ds->putAndInsertString(DcmTag(0x0009, 0x0010, EVR_LO), "DIRGW TEST");
  test::save(*ds, dir / "ui.dcm");
  const std::string un = with_un(test::read_all(dir / "ui.dcm"), {0x00090010});
  write(dir / "un.dcm", un);
  auto r = decode_un_elements(dir / "un.dcm", dir / "out.dcm");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->decoded, 0);
  EXPECT_EQ(r->kept, 1);
}

TEST(UnElements, ImplicitVrIsNotRewritten) {
  test::TempDir dir;
  auto ds = valid_ct();
  test::save(*ds, dir / "implicit.dcm", EXS_LittleEndianImplicit);
  auto r = decode_un_elements(dir / "implicit.dcm", dir / "out.dcm");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kBadDicom);
}

}  // namespace
}  // namespace dirgw::policy
