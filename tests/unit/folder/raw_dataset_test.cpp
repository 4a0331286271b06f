#include "ingest/folder/raw_dataset.h"

#include <gtest/gtest.h>

#include "ingest/prescan/prescan.h"
#include "unit/prescan/dicom_builder.h"

namespace dirgw::ingest::folder {
namespace {

using ingest::PrescanResult;

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
  auto scan = ingest::prescan_bytes(part10_meta(*u, transfer_syntax_of(u->syntax)) + raw,
                                    ingest::PrescanLimits{});
  ASSERT_TRUE(scan.ok()) << scan.error().to_string();
  EXPECT_EQ(scan->transfer_syntax, "1.2.840.10008.1.2");
  EXPECT_EQ(scan->study_uid, dirgw::test::kStudy);
}

TEST(RawDataset, TextAndPart10AreNotTakenForOne) {
  EXPECT_FALSE(raw_dataset_uids("hello, this is a text file, not a dataset at all").has_value());
  EXPECT_FALSE(raw_dataset_uids(std::string(128, '\0') + "DICM").has_value());
  EXPECT_FALSE(raw_dataset_uids("").has_value());
}

// Some exporters write explicit VR little endian without a meta header.
TEST(RawDataset, AnExplicitDatasetIsFoundAndWrappedAsExplicit) {
  dirgw::test::DatasetBuilder b(dirgw::test::Enc::kExplicitLE);
  b.str(0x00080005u, "CS", "ISO_IR 100").str(0x00080008u, "CS", "ORIGINAL\\PRIMARY");
  dirgw::test::standard_head(b);
  const std::string raw = b.take();
  auto u = raw_dataset_uids(raw);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->syntax, RawSyntax::kExplicitLe);
  EXPECT_EQ(u->sop_instance, dirgw::test::kSopInstance);
  EXPECT_FALSE(dataset_uids(raw, RawSyntax::kImplicitLe).has_value());
  auto scan = ingest::prescan_bytes(part10_meta(*u, transfer_syntax_of(u->syntax)) + raw,
                                    ingest::PrescanLimits{});
  ASSERT_TRUE(scan.ok()) << scan.error().to_string();
  EXPECT_EQ(scan->transfer_syntax, "1.2.840.10008.1.2.1");
  EXPECT_EQ(scan->study_uid, dirgw::test::kStudy);
}

std::string explicit_dataset(std::string_view sop_instance = dirgw::test::kSopInstance) {
  dirgw::test::DatasetBuilder b(dirgw::test::Enc::kExplicitLE);
  b.str(0x00080005u, "CS", "ISO_IR 100");
  dirgw::test::standard_head(b, sop_instance);
  return b.take();
}

// The dataset with a meta header written again, and what the pre-scan says of it.
Result<PrescanResult> repaired(const std::string& file) {
  auto r = meta_repair(file);
  if (!r) return make_error(ErrorCode::kInternal, "no repair");
  return ingest::prescan_bytes(
      part10_meta(r->uids, r->transfer_syntax) + file.substr(r->dataset_offset),
      ingest::PrescanLimits{});
}

TEST(MetaRepair, TheMetaHeaderIsReadOnceForBothUses) {
  dirgw::test::Meta m;
  m.sop_class = "1.2.840.10008.1.3.10";  // a DICOMDIR: the intake skips it by this
  const std::string file = dirgw::test::part10(m, explicit_dataset());
  auto meta = read_meta_header(file);
  ASSERT_TRUE(meta.has_value());
  EXPECT_EQ(meta->sop_class, "1.2.840.10008.1.3.10");
  EXPECT_EQ(meta->sop_instance, dirgw::test::kSopInstance);
  EXPECT_EQ(meta->ts, "1.2.840.10008.1.2.1");
  EXPECT_TRUE(meta->version);
  EXPECT_EQ(file.compare(meta->end, 8, explicit_dataset().substr(0, 8)), 0);
  EXPECT_FALSE(read_meta_header(explicit_dataset()).has_value());  // no DICM
}

TEST(MetaRepair, AConformantMetaHeaderIsLeftAlone) {
  EXPECT_FALSE(meta_repair(dirgw::test::part10(dirgw::test::kExplicitLE, explicit_dataset())));
  EXPECT_FALSE(meta_repair(implicit_dataset()));  // no meta header at all: raw_dataset_uids
}

// An anonymiser changed the dataset's SOP Instance UID and left the meta header's: the dataset
// wins, as it does over C-STORE (the receiver writes the meta header from the request).
TEST(MetaRepair, UidsLeftOverFromBeforeAnEditAreTakenFromTheDataset) {
  dirgw::test::Meta m;
  m.sop_instance = "1.2.3.4.5.6";
  const std::string file = dirgw::test::part10(m, explicit_dataset());
  EXPECT_FALSE(ingest::prescan_bytes(file, ingest::PrescanLimits{}).ok());
  auto r = meta_repair(file);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->uids.sop_instance, dirgw::test::kSopInstance);
  EXPECT_EQ(r->transfer_syntax, "1.2.840.10008.1.2.1");
  EXPECT_NE(r->why.find("(0002,0003) differs from the dataset's"), std::string::npos) << r->why;
  auto scan = repaired(file);
  ASSERT_TRUE(scan.ok()) << scan.error().to_string();
  EXPECT_EQ(scan->sop_instance_uid, dirgw::test::kSopInstance);

  m = dirgw::test::Meta{};
  m.sop_class = "1.2.840.10008.5.1.4.1.1.2";
  auto c = meta_repair(dirgw::test::part10(m, explicit_dataset()));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->uids.sop_class, dirgw::test::kSecondaryCapture);
  EXPECT_NE(c->why.find("(0002,0002) differs"), std::string::npos) << c->why;
}

TEST(MetaRepair, ABigEndianDatasetIsReadAsBigEndian) {
  dirgw::test::DatasetBuilder b(dirgw::test::Enc::kExplicitBE);
  dirgw::test::standard_head(b);
  dirgw::test::Meta m;
  m.transfer_syntax = std::string(dirgw::test::kExplicitBE);
  m.sop_instance = "1.2.3.4.5.6";
  const std::string file = dirgw::test::part10(m, b.take());
  auto r = meta_repair(file);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->uids.sop_instance, dirgw::test::kSopInstance);
  EXPECT_EQ(r->transfer_syntax, dirgw::test::kExplicitBE);
  auto scan = repaired(file);
  ASSERT_TRUE(scan.ok()) << scan.error().to_string();
  EXPECT_EQ(scan->dataset_sop_instance_uid, dirgw::test::kSopInstance);
}

TEST(MetaRepair, MissingMetaElementsAreWritten) {
  // No group length (0002,0000): the meta elements follow DICM directly.
  dirgw::test::Meta m;
  const std::string no_length =
      std::string(128, '\0') + "DICM" + dirgw::test::meta_elements(m) + explicit_dataset();
  auto r = meta_repair(no_length);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->why, "no group length (0002,0000)");
  EXPECT_TRUE(repaired(no_length).ok());

  m.version = false;
  m.sop_instance.clear();
  auto v = meta_repair(dirgw::test::part10(m, explicit_dataset()));
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->why, "no version (0002,0001); no media storage SOP instance UID (0002,0003)");
  EXPECT_TRUE(repaired(dirgw::test::part10(m, explicit_dataset())).ok());

  // No transfer syntax: the dataset's encoding is read from it.
  m = dirgw::test::Meta{};
  m.transfer_syntax.clear();
  auto t = meta_repair(dirgw::test::part10(m, implicit_dataset()));
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->transfer_syntax, "1.2.840.10008.1.2");
  auto scan = repaired(dirgw::test::part10(m, implicit_dataset()));
  ASSERT_TRUE(scan.ok()) << scan.error().to_string();
  EXPECT_EQ(scan->transfer_syntax, "1.2.840.10008.1.2");
}

TEST(MetaRepair, WhatCannotBeReadIsLeftToThePrescan) {
  dirgw::test::Meta m;
  m.sop_instance = "1.2.3.4.5.6";
  m.transfer_syntax = std::string(dirgw::test::kDeflated);
  EXPECT_FALSE(meta_repair(dirgw::test::part10(m, dirgw::test::raw_deflate(explicit_dataset()))));
  m = dirgw::test::Meta{};
  m.sop_instance = "1.2.3.4.5.6";
  m.group_length_delta = 2;  // a group length that disagrees with the elements
  EXPECT_FALSE(meta_repair(dirgw::test::part10(m, explicit_dataset())));
  m.group_length_delta = 0;
  dirgw::test::DatasetBuilder b(dirgw::test::Enc::kExplicitLE);
  b.str(0x00080060u, "CS", "OT");  // no SOP Class or Instance UID in the dataset
  EXPECT_FALSE(meta_repair(dirgw::test::part10(m, b.take())));
  EXPECT_FALSE(meta_repair(std::string(128, '\0') + "DICM"));
  EXPECT_FALSE(meta_repair(std::string(128, '\0') + "DICM" + std::string(3, '\2')));
}

TEST(RawDataset, UndefinedLengthBeforeTheUidsIsRefused) {
  dirgw::test::DatasetBuilder b(dirgw::test::Enc::kImplicitLE);
  b.header(0x00080006u, "SQ", dirgw::test::DatasetBuilder::kUndefined);
  EXPECT_FALSE(raw_dataset_uids(b.take_unchecked()).has_value());
}

}  // namespace
}  // namespace dirgw::ingest::folder
