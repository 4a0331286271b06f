// Issue 17, item 3: Explicit VR Big Endian converted losslessly for destinations that ask.
#include "policy/stage/byte_order.h"

#include <gtest/gtest.h>

#include "dataset_builder.h"

namespace dirgw::policy {
namespace {

using test::valid_ct;

std::string pixels_of(const std::filesystem::path& file) {
  DcmFileFormat ff;
  EXPECT_TRUE(ff.loadFile(OFFilename(file.c_str())).good());
  const Uint16* words = nullptr;
  unsigned long count = 0;
  EXPECT_TRUE(ff.getDataset()->findAndGetUint16Array(DCM_PixelData, words, &count).good());
  return std::string(reinterpret_cast<const char*>(words), count * 2);
}

TEST(ByteOrder, BigEndianBecomesLittleEndianWithTheSameValues) {
  test::TempDir dir;
  auto ds = valid_ct({.rows = 8, .columns = 8, .bits_allocated = 16});
  test::save(*ds, dir / "le.dcm");
  test::save(*ds, dir / "be.dcm", EXS_BigEndianExplicit);
  EXPECT_EQ(*transfer_syntax_of(dir / "be.dcm"), kExplicitVrBigEndianUid);
  ASSERT_TRUE(convert_to_little_endian(dir / "be.dcm", dir / "out.dcm").ok());
  EXPECT_EQ(*transfer_syntax_of(dir / "out.dcm"), "1.2.840.10008.1.2.1");
  EXPECT_EQ(pixels_of(dir / "out.dcm"), pixels_of(dir / "le.dcm"));
  // The bytes on disk differ from the big endian file's: the words were swapped.
  EXPECT_NE(test::read_all(dir / "out.dcm"), test::read_all(dir / "be.dcm"));
}

TEST(ByteOrder, OnlyBigEndianIsConverted) {
  test::TempDir dir;
  auto ds = valid_ct();
  test::save(*ds, dir / "le.dcm");
  auto r = convert_to_little_endian(dir / "le.dcm", dir / "out.dcm");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kBadDicom);
  EXPECT_FALSE(std::filesystem::exists(dir / "out.dcm"));
}

}  // namespace
}  // namespace dirgw::policy
