#include "ingest/folder/raw_dataset.h"

#include <gtest/gtest.h>

#include "ingest/prescan/prescan.h"
#include "unit/prescan/dicom_builder.h"

namespace dirgw::ingest::folder {
namespace {

std::string implicit_dataset() {
  dirgw::test::DatasetBuilder b(dirgw::test::Enc::kImplicitLE);
  b.str(0x00080005u, "CS", "ISO_IR 100");
  dirgw::test::standard_head(b);
  return b.take();
}

TEST(RawDataset, UidsOfAnImplicitDatasetAreFound) {
  auto u = raw_dataset_uids(implicit_dataset());
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->sop_class, dirgw::test::kSecondaryCapture);
  EXPECT_EQ(u->sop_instance, dirgw::test::kSopInstance);
}

TEST(RawDataset, WrappedDatasetPassesThePrescan) {
  const std::string raw = implicit_dataset();
  auto u = raw_dataset_uids(raw);
  ASSERT_TRUE(u.has_value());
  auto scan = ingest::prescan_bytes(implicit_le_meta(*u) + raw, ingest::PrescanLimits{});
  ASSERT_TRUE(scan.ok()) << scan.error().to_string();
  EXPECT_EQ(scan->transfer_syntax, "1.2.840.10008.1.2");
  EXPECT_EQ(scan->study_uid, dirgw::test::kStudy);
}

TEST(RawDataset, TextAndExplicitAndPart10AreNotTakenForOne) {
  EXPECT_FALSE(raw_dataset_uids("hello, this is a text file, not a dataset at all").has_value());
  dirgw::test::DatasetBuilder b(dirgw::test::Enc::kExplicitLE);
  dirgw::test::standard_head(b);
  EXPECT_FALSE(raw_dataset_uids(b.take()).has_value());
  EXPECT_FALSE(raw_dataset_uids(std::string(128, '\0') + "DICM").has_value());
  EXPECT_FALSE(raw_dataset_uids("").has_value());
}

TEST(RawDataset, UndefinedLengthBeforeTheUidsIsRefused) {
  dirgw::test::DatasetBuilder b(dirgw::test::Enc::kImplicitLE);
  b.header(0x00080006u, "SQ", dirgw::test::DatasetBuilder::kUndefined);
  EXPECT_FALSE(raw_dataset_uids(b.take_unchecked()).has_value());
}

}  // namespace
}  // namespace dirgw::ingest::folder
