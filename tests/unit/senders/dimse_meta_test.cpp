#include "common/file_meta.h"

#include <gtest/gtest.h>

#include <fstream>

// clang-format off
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcuid.h"
// clang-format on

#include "ingest/prescan/prescan.h"
#include "test_files.h"

namespace dirgw::senders::dimse {
namespace {

void put16(std::string& s, std::uint16_t v) {
  s.push_back(static_cast<char>(v & 0xFF));
  s.push_back(static_cast<char>(v >> 8));
}
void put32(std::string& s, std::uint32_t v) {
  put16(s, static_cast<std::uint16_t>(v & 0xFFFF));
  put16(s, static_cast<std::uint16_t>(v >> 16));
}
void short_el(std::string& s, std::uint16_t g, std::uint16_t e, const char* vr, std::string v) {
  if (v.size() % 2) v.push_back('\0');
  put16(s, g);
  put16(s, e);
  s += vr;
  put16(s, static_cast<std::uint16_t>(v.size()));
  s += v;
}
void long_el(std::string& s, std::uint16_t g, std::uint16_t e, const char* vr,
             const std::string& v) {
  put16(s, g);
  put16(s, e);
  s += vr;
  put16(s, 0);
  put32(s, static_cast<std::uint32_t>(v.size()));
  s += v;
}

// A meta group with `ts`, and `more` (encoded elements of group 0002) after the usual ones.
std::string meta_bytes(const std::string& ts = "1.2.840.10008.1.2.4.80",
                       const std::string& more = "") {
  std::string s(128, '\0');
  s += "DICM";
  std::string group;
  long_el(group, 0x0002, 0x0001, "OB", std::string("\0\1", 2));
  short_el(group, 0x0002, 0x0002, "UI", "1.2.840.10008.5.1.4.1.1.2");
  short_el(group, 0x0002, 0x0003, "UI", "1.2.3.4.5");
  short_el(group, 0x0002, 0x0010, "UI", ts);
  short_el(group, 0x0002, 0x0012, "UI", "1.2.3");
  group += more;
  short_el(s, 0x0002, 0x0000, "UL", std::string(4, '\0'));
  s += group;
  return s;
}

TEST(DimseMeta, ReadsUidsAndWhereTheDatasetStarts) {
  std::string file = meta_bytes();
  const std::size_t end_of_meta = file.size();
  short_el(file, 0x0008, 0x0016, "UI", "1.2.840.10008.5.1.4.1.1.2");
  auto m = parse_file_meta(file);
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  EXPECT_EQ(m->sop_class_uid, "1.2.840.10008.5.1.4.1.1.2");
  EXPECT_EQ(m->sop_instance_uid, "1.2.3.4.5");  // the NUL pad is gone
  EXPECT_EQ(m->transfer_syntax, "1.2.840.10008.1.2.4.80");
  EXPECT_EQ(m->dataset_offset, end_of_meta);
}

TEST(DimseMeta, RefusesWhatIsNotPart10) {
  EXPECT_FALSE(parse_file_meta("").ok());
  EXPECT_FALSE(parse_file_meta(std::string(200, 'x')).ok());
  std::string no_ts(128, '\0');
  no_ts += "DICM";
  short_el(no_ts, 0x0002, 0x0002, "UI", "1.2");
  short_el(no_ts, 0x0002, 0x0003, "UI", "1.3");
  auto m = parse_file_meta(no_ts);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code, ErrorCode::kBadDicom);
  EXPECT_NE(m.error().detail.find("TransferSyntaxUID"), std::string::npos);
}

TEST(DimseMeta, EveryTruncationIsAnErrorNeverACrash) {
  std::string file = meta_bytes();
  for (std::size_t n = 0; n + 1 < file.size(); ++n) {
    auto m = parse_file_meta(std::string_view(file).substr(0, n));
    // Cut inside the last element or before it: never a success that claims more than it saw.
    if (m.ok()) {
      EXPECT_LE(m->dataset_offset, n);
    }
  }
}

TEST(DimseMeta, UndefinedLengthInMetaIsRefused) {
  std::string s(128, '\0');
  s += "DICM";
  put16(s, 0x0002);
  put16(s, 0x0001);
  s += "OB";
  put16(s, 0);
  put32(s, 0xFFFFFFFF);
  EXPECT_FALSE(parse_file_meta(s).ok());
}

// read_file_meta reads 8 KiB first: a longer meta group (a large Private Information value)
// is read again in full, not refused as truncated.
TEST(DimseMeta, MetaGroupLongerThanTheFirstRead) {
  dirgw::testing::TempDir dir;
  std::string private_information;
  long_el(private_information, 0x0002, 0x0102, "OB", std::string(20000, 'p'));
  std::string file = meta_bytes("1.2.840.10008.1.2.1", private_information);
  const std::size_t end_of_meta = file.size();
  short_el(file, 0x0008, 0x0060, "CS", "CT");
  const auto path = dir.path() / "long-meta.dcm";
  {
    std::ofstream out(path, std::ios::binary);
    out << file;
  }
  auto m = read_file_meta(path);
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  EXPECT_EQ(m->transfer_syntax, "1.2.840.10008.1.2.1");
  EXPECT_EQ(m->dataset_offset, end_of_meta);
  // A file shorter than the first read is parsed from what there is.
  const auto small = dir.path() / "small.dcm";
  {
    std::ofstream out(small, std::ios::binary);
    out << meta_bytes("1.2.840.10008.1.2");
  }
  auto s = read_file_meta(small);
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  EXPECT_EQ(s->transfer_syntax, "1.2.840.10008.1.2");
}

TEST(DimseMeta, MissingFileIsNotFound) {
  auto m = read_file_meta("/nonexistent/dirgw/file.dcm");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code, ErrorCode::kNotFound);
}

// Against a file DCMTK writes, and the offset the ingest pre-scan finds for it.
TEST(DimseMeta, AgreesWithDcmtkAndThePrescan) {
  dirgw::testing::TempDir dir;
  const auto path = dir.path() / "ct.dcm";
  for (E_TransferSyntax xfer : {EXS_LittleEndianExplicit, EXS_LittleEndianImplicit}) {
    DcmFileFormat ff;
    DcmDataset* ds = ff.getDataset();
    ds->putAndInsertString(DCM_SOPClassUID, UID_CTImageStorage);
    ds->putAndInsertString(DCM_SOPInstanceUID, "1.2.826.0.1.3680043.10.1011.99.1");
    ds->putAndInsertString(DCM_StudyInstanceUID, "1.2.826.0.1.3680043.10.1011.99.2");
    ds->putAndInsertString(DCM_SeriesInstanceUID, "1.2.826.0.1.3680043.10.1011.99.3");
    ds->putAndInsertString(DCM_Modality, "CT");
    ASSERT_TRUE(ff.saveFile(path.c_str(), xfer).good());
    auto m = read_file_meta(path);
    ASSERT_TRUE(m.ok()) << m.error().to_string();
    EXPECT_EQ(m->sop_class_uid, UID_CTImageStorage);
    EXPECT_EQ(m->sop_instance_uid, "1.2.826.0.1.3680043.10.1011.99.1");
    EXPECT_EQ(m->transfer_syntax, DcmXfer(xfer).getXferID());
    auto scan = ingest::prescan_file(path, ingest::PrescanLimits{});
    ASSERT_TRUE(scan.ok()) << scan.error().to_string();
    EXPECT_EQ(m->dataset_offset, scan->dataset_offset);
  }
}

}  // namespace
}  // namespace dirgw::senders::dimse
