#include "ingest/prescan/prescan.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "unit/prescan/dicom_builder.h"

namespace dirgw::ingest {
namespace {

using test::DatasetBuilder;
using test::Enc;
using test::Meta;
using test::part10;
using test::standard_head;

constexpr std::uint32_t kContentSeq = 0x0040A730u;
constexpr std::uint32_t kImageComments = 0x00204000u;  // LT, after (0020,000E)

::testing::AssertionResult rejected_with(const Result<PrescanResult>& r, std::string_view want) {
  if (r.ok()) return ::testing::AssertionFailure() << "accepted; wanted rejection: " << want;
  if (r.error().code != ErrorCode::kPrescanRejected) {
    return ::testing::AssertionFailure() << "wrong code: " << r.error().to_string();
  }
  if (r.error().detail.find(want) == std::string::npos) {
    return ::testing::AssertionFailure()
           << "detail \"" << r.error().detail << "\" lacks \"" << want << "\"";
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult accepted(const Result<PrescanResult>& r) {
  if (r.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << r.error().to_string();
}

Result<PrescanResult> scan(std::string_view bytes, const PrescanLimits& limits = {}) {
  return prescan_bytes(bytes, limits);
}

std::string standard_dataset(Enc enc) {
  DatasetBuilder b(enc);
  standard_head(b);
  return b.take();
}

// An object with a Directory Record Sequence (0004,1220) whose one record has these Directory
// Record Type (0004,1430) and Referenced File ID (0004,1500) values.
std::string with_directory_record(Enc enc, std::string_view type, std::string_view file_id) {
  DatasetBuilder b(enc);
  b.begin_sequence(0x00041220u).begin_item();
  b.str(0x00041430u, "CS", type).str(0x00041500u, "CS", file_id);
  b.end_item().end_sequence();
  standard_head(b);
  return b.take();
}

// depth nested sequences (0040,A730), one item each, innermost item holds one element.
std::string nested_dataset(int depth, bool undefined, Enc enc = Enc::kExplicitLE,
                           std::string_view vr = "SQ") {
  DatasetBuilder b(enc);
  standard_head(b);
  for (int i = 0; i < depth; ++i)
    b.begin_sequence(kContentSeq, undefined, vr).begin_item(undefined);
  b.str(0x0040A040u, "CS", "TEXT");
  for (int i = 0; i < depth; ++i) b.end_item().end_sequence();
  return b.take();
}

// ------------------------------------------------------------------------------------------------
// Accepted objects.

TEST(PrescanAccepts, ExplicitLittleEndianAndReportsWhatItLearned) {
  const std::string ds = standard_dataset(Enc::kExplicitLE);
  const std::string file = part10(test::kExplicitLE, ds);
  auto r = scan(file);
  ASSERT_TRUE(accepted(r));
  EXPECT_EQ(r->transfer_syntax, test::kExplicitLE);
  EXPECT_EQ(r->sop_class_uid, test::kSecondaryCapture);
  EXPECT_EQ(r->sop_instance_uid, test::kSopInstance);
  EXPECT_EQ(r->dataset_sop_class_uid, test::kSecondaryCapture);
  EXPECT_EQ(r->dataset_sop_instance_uid, test::kSopInstance);
  EXPECT_EQ(r->study_uid, test::kStudy);
  EXPECT_EQ(r->series_uid, test::kSeries);
  EXPECT_EQ(r->modality, "OT");
  EXPECT_EQ(r->dataset_offset, file.size() - ds.size());
  EXPECT_FALSE(r->preamble_nonzero);
  EXPECT_TRUE(r->warnings.empty());
}

TEST(PrescanAccepts, ImplicitLittleEndian) {
  auto r = scan(part10(test::kImplicitLE, nested_dataset(3, false, Enc::kImplicitLE)));
  ASSERT_TRUE(accepted(r));
  EXPECT_EQ(r->study_uid, test::kStudy);
  EXPECT_EQ(r->modality, "OT");
}

TEST(PrescanAccepts, ExplicitBigEndian) {
  auto r = scan(part10(test::kExplicitBE, nested_dataset(3, true, Enc::kExplicitBE)));
  ASSERT_TRUE(accepted(r));
  EXPECT_EQ(r->series_uid, test::kSeries);
  auto defined = scan(part10(test::kExplicitBE, nested_dataset(3, false, Enc::kExplicitBE)));
  EXPECT_TRUE(accepted(defined));
}

TEST(PrescanAccepts, MissingModalityIsNotAReason) {
  DatasetBuilder b;
  b.str(0x00080016u, "UI", test::kSecondaryCapture)
      .str(0x00080018u, "UI", test::kSopInstance)
      .str(0x0020000Du, "UI", test::kStudy)
      .str(0x0020000Eu, "UI", test::kSeries);
  auto r = scan(part10(test::kExplicitLE, b.take()));
  ASSERT_TRUE(accepted(r));
  EXPECT_EQ(r->modality, "");
}

std::string deflatable_dataset() {
  DatasetBuilder b;
  standard_head(b);
  b.begin_sequence(kContentSeq)
      .begin_item()
      .str(0x0040A040u, "CS", "TEXT")
      .end_item()
      .end_sequence();
  b.element(0x7FE00010u, "OB", std::string(100000, '\x11'));
  return b.take();
}

TEST(PrescanAccepts, DeflatedExplicitLittleEndian) {
  const std::string deflated = test::raw_deflate(deflatable_dataset());
  auto r = scan(part10(test::kDeflated, deflated));
  ASSERT_TRUE(accepted(r));
  EXPECT_EQ(r->transfer_syntax, test::kDeflated);
  EXPECT_EQ(r->study_uid, test::kStudy);
  EXPECT_EQ(r->dataset_sop_instance_uid, test::kSopInstance);
  // PS3.5 A.5: one NUL may pad the deflated stream to even length.
  EXPECT_TRUE(accepted(scan(part10(test::kDeflated, deflated + std::string(1, '\0')))));
}

// A gzip trailer (RFC 1952: CRC-32 and size of the inflated data) after the stream, as some
// writers leave it: accepted when it matches, with or without the NUL pad; refused otherwise.
TEST(PrescanAccepts, DeflatedWithAGzipTrailerThatMatches) {
  const std::string dataset = deflatable_dataset();
  const std::string deflated = test::raw_deflate(dataset);
  auto le32 = [](std::uint32_t v) {
    return std::string{static_cast<char>(v & 0xFF), static_cast<char>((v >> 8) & 0xFF),
                       static_cast<char>((v >> 16) & 0xFF), static_cast<char>((v >> 24) & 0xFF)};
  };
  const auto crc = static_cast<std::uint32_t>(crc32(crc32(0L, Z_NULL, 0),
                                                    reinterpret_cast<const Bytef*>(dataset.data()),
                                                    static_cast<uInt>(dataset.size())));
  const auto size = static_cast<std::uint32_t>(dataset.size());
  const std::string trailer = le32(crc) + le32(size);
  auto r = scan(part10(test::kDeflated, deflated + trailer));
  ASSERT_TRUE(accepted(r));
  EXPECT_EQ(r->dataset_sop_instance_uid, test::kSopInstance);
  EXPECT_TRUE(accepted(scan(part10(test::kDeflated, deflated + trailer + std::string(1, '\0')))));
  EXPECT_TRUE(rejected_with(scan(part10(test::kDeflated, deflated + le32(crc ^ 1) + le32(size))),
                            "data after the end of the deflate stream"));
  EXPECT_TRUE(rejected_with(scan(part10(test::kDeflated, deflated + le32(crc) + le32(size + 1))),
                            "data after the end of the deflate stream"));
  EXPECT_TRUE(rejected_with(scan(part10(test::kDeflated, deflated + trailer + "xy")),
                            "data after the end of the deflate stream"));
  EXPECT_TRUE(rejected_with(scan(part10(test::kDeflated, deflated + trailer.substr(0, 7))),
                            "data after the end of the deflate stream"));
}

// DCMTK 3.6.7 throws (and so ends the process) when it reads a directory record whose record
// type or file ID has a last value longer than 16 bytes (found by fuzz_folder); what a DICOMDIR
// writes passes.
TEST(PrescanRejects, DirectoryRecordCodeStringsDcmtkCannotRead) {
  for (Enc enc : {Enc::kExplicitLE, Enc::kImplicitLE}) {
    const std::string_view ts = enc == Enc::kExplicitLE ? test::kExplicitLE : test::kImplicitLE;
    EXPECT_TRUE(accepted(
        scan(part10(ts, with_directory_record(enc, "IMAGE", "DICOM\\ST000001\\IM000001")))));
    EXPECT_TRUE(accepted(scan(part10(ts, with_directory_record(enc, "STUDY COMPONENT", "A")))));
    EXPECT_TRUE(rejected_with(
        scan(part10(ts, with_directory_record(enc, "IMAGE AND A LONG TAIL", "DICOM\\IM1"))),
        "value of (0004,1430) has a component longer than 16 bytes"));
    EXPECT_TRUE(rejected_with(
        scan(part10(ts, with_directory_record(enc, "IMAGE", "DICOM\\IM000001ABCDEFGHIJ"))),
        "value of (0004,1500) has a component longer than 16 bytes"));
    EXPECT_TRUE(
        rejected_with(scan(part10(ts, with_directory_record(enc, "IMAGE", std::string(200, 'A')))),
                      "value of (0004,1500) longer than a code string"));
  }
}

TEST(PrescanAccepts, JpipReferencedDeflateIsDeflated) {
  EXPECT_TRUE(
      accepted(scan(part10("1.2.840.10008.1.2.4.95", test::raw_deflate(deflatable_dataset())))));
}

std::string encapsulated_dataset(int fragments) {
  DatasetBuilder b;
  standard_head(b);
  b.begin_pixel_sequence().fragment("");
  for (int i = 0; i < fragments; ++i) b.fragment(std::string(1000 + 2 * i, '\xAB'));
  b.end_pixel_sequence();
  return b.take();
}

TEST(PrescanAccepts, EncapsulatedPixelDataWithFragments) {
  for (std::string_view ts :
       {test::kJpegBaseline, std::string_view("1.2.840.10008.1.2.4.51"),
        std::string_view("1.2.840.10008.1.2.4.57"), std::string_view("1.2.840.10008.1.2.4.70"),
        std::string_view("1.2.840.10008.1.2.4.80"), std::string_view("1.2.840.10008.1.2.4.81"),
        std::string_view("1.2.840.10008.1.2.4.90"), std::string_view("1.2.840.10008.1.2.4.91"),
        test::kRle, std::string_view("1.2.840.10008.1.2.4.201")}) {
    EXPECT_TRUE(accepted(scan(part10(ts, encapsulated_dataset(3))))) << ts;
  }
}

TEST(PrescanAccepts, EncapsulatedIconInsideASequence) {
  DatasetBuilder b;
  standard_head(b);
  b.begin_sequence(0x00880200u, false).begin_item(false);
  b.begin_pixel_sequence().fragment("").fragment(std::string(64, 'x')).end_pixel_sequence();
  b.end_item().end_sequence();
  EXPECT_TRUE(accepted(scan(part10(test::kJpegBaseline, b.take()))));
}

TEST(PrescanAccepts, NestingUpToMaxDepth) {
  for (bool undefined : {true, false}) {
    EXPECT_TRUE(accepted(scan(part10(test::kExplicitLE, nested_dataset(31, undefined)))));
    EXPECT_TRUE(accepted(scan(part10(test::kExplicitLE, nested_dataset(32, undefined)))));
  }
}

// A data set received over DIMSE, without preamble and meta header (prescan_dataset): the same
// rules, no object UIDs required, the transfer syntax given.
TEST(PrescanDataset, ChecksADataSetWithoutItsMetaHeader) {
  EXPECT_TRUE(accepted(prescan_dataset(nested_dataset(32, true, Enc::kImplicitLE),
                                       test::kImplicitLE, PrescanLimits{})));
  EXPECT_TRUE(accepted(prescan_dataset(nested_dataset(3, false), test::kExplicitLE, {})));
  // A storage commitment report has no SOP Instance, Study or Series UID of an object.
  DatasetBuilder report(Enc::kImplicitLE);
  report.str(0x00081195u, "UI", "1.2.3.4");
  EXPECT_TRUE(accepted(prescan_dataset(report.take(), test::kImplicitLE, {})));
  for (bool undefined : {true, false}) {
    auto r =
        prescan_dataset(nested_dataset(33, undefined, Enc::kImplicitLE), test::kImplicitLE, {});
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().detail.find("sequence nesting deeper than max_depth"), std::string::npos)
        << r.error().detail;
  }
  // Read in the transfer syntax it is given: explicit bytes as implicit VR do not pass.
  EXPECT_FALSE(prescan_dataset(nested_dataset(3, false), test::kImplicitLE, {}).ok());
}

TEST(PrescanAccepts, UnknownVrSequenceOfUndefinedLengthIsImplicitInside) {
  DatasetBuilder b;
  standard_head(b);
  b.begin_sequence(0x00291010u, true, "UN").begin_item().str(0x00291001u, "LO", "x").end_item();
  b.end_sequence();
  EXPECT_TRUE(accepted(scan(part10(test::kExplicitLE, b.take()))));
  EXPECT_TRUE(
      accepted(scan(part10(test::kExplicitLE, nested_dataset(32, true, Enc::kExplicitLE, "UN")))));
}

TEST(PrescanAccepts, ImplicitPrivateSequenceIsRecognisedAndChecked) {
  DatasetBuilder b(Enc::kImplicitLE);
  standard_head(b);
  b.str(0x00290010u, "LO", "SYNTH");
  b.begin_sequence(0x00291010u, false).begin_item(false).str(0x00291001u, "LO", "x");
  b.end_item().end_sequence();
  EXPECT_TRUE(accepted(scan(part10(test::kImplicitLE, b.take()))));
}

TEST(PrescanAccepts, DatasetTrailingPadding) {
  DatasetBuilder b;
  standard_head(b);
  b.element(0xFFFCFFFCu, "OB", std::string(4096, '\0'));
  EXPECT_TRUE(accepted(scan(part10(test::kExplicitLE, b.take()))));
}

TEST(PrescanAccepts, UidsAreComparedAfterTrimmingSpacesAndNuls) {
  Meta m;
  m.sop_instance = "1.2.3.4.5";  // odd: padded with a NUL in the meta
  DatasetBuilder b;
  b.str(0x00080016u, "UI", test::kSecondaryCapture)
      .element(0x00080018u, "UI", "1.2.3.4.5 ")  // padded with a space in the dataset
      .element(0x00080060u, "CS", "MR  ")
      .str(0x0020000Du, "UI", test::kStudy)
      .str(0x0020000Eu, "UI", test::kSeries);
  auto r = scan(part10(m, b.take()));
  ASSERT_TRUE(accepted(r));
  EXPECT_EQ(r->sop_instance_uid, "1.2.3.4.5");
  EXPECT_EQ(r->dataset_sop_instance_uid, "1.2.3.4.5");
  EXPECT_EQ(r->modality, "MR");
}

TEST(PrescanAccepts, OddLengthsWithAWarning) {
  DatasetBuilder b;
  standard_head(b);
  b.element(kImageComments, "LT", "odd");
  auto r = scan(part10(test::kExplicitLE, b.take()));
  ASSERT_TRUE(accepted(r));
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_NE(r->warnings[0].find("odd value length for (0020,4000) at offset"), std::string::npos);
}

TEST(PrescanAccepts, WarningsAreBounded) {
  DatasetBuilder b;
  standard_head(b);
  for (std::uint32_t e = 0; e < 100; ++e) b.element(0x00211000u + e, "LO", "odd");
  auto r = scan(part10(test::kExplicitLE, b.take()));
  ASSERT_TRUE(accepted(r));
  EXPECT_EQ(r->warnings.size(), PrescanResult::kMaxWarnings);
}

TEST(PrescanAccepts, FlagsANonZeroPreamble) {
  Meta m;
  m.preamble.replace(0, 4, "II*\0", 4);  // a TIFF header: CVE-2019-11687 polyglot
  auto r = scan(part10(m, standard_dataset(Enc::kExplicitLE)));
  ASSERT_TRUE(accepted(r));
  EXPECT_TRUE(r->preamble_nonzero);
}

TEST(PrescanAccepts, BinaryValuesAreExemptFromTheTextLimit) {
  PrescanLimits limits;
  limits.max_text_value = 64;
  DatasetBuilder b;
  standard_head(b);
  b.element(0x00420011u, "OB", std::string(1000, 'x'));
  b.element(0x00700022u, "FL", std::string(1000, 'x'));
  b.element(0x7FE00010u, "OW", std::string(1000, 'x'));
  EXPECT_TRUE(accepted(scan(part10(test::kExplicitLE, b.take()), limits)));

  DatasetBuilder i(Enc::kImplicitLE);
  standard_head(i);
  i.element(0x00291000u, "", std::string(1000, 'x'));  // private: VR unknown
  i.element(0x00420011u, "", std::string(1000, 'x'));
  i.element(0x7FE00010u, "", std::string(1000, 'x'));
  EXPECT_TRUE(accepted(scan(part10(test::kImplicitLE, i.take()), limits)));
}

TEST(PrescanAccepts, TextValueAtTheLimit) {
  PrescanLimits limits;
  limits.max_text_value = 64;
  DatasetBuilder b;
  standard_head(b);
  b.element(kImageComments, "LT", std::string(64, 'x'));
  EXPECT_TRUE(accepted(scan(part10(test::kExplicitLE, b.take()), limits)));
}

// A whole-slide image carries a fragment per tile: 100 001 fragments (more than a 40x slide's
// base level often has) pass the default limits, which once refused them.
TEST(PrescanAccepts, WholeSlideImageWithAFragmentPerTile) {
  DatasetBuilder b;
  standard_head(b);
  b.begin_pixel_sequence().fragment("");
  for (int i = 0; i < 100001; ++i) b.fragment(std::string("\xFF\xD8\xFF\xD9", 4));
  b.end_pixel_sequence();
  auto r = prescan_bytes(part10(test::kJpegBaseline, b.take()), PrescanLimits{});
  EXPECT_TRUE(r.ok()) << r.error().to_string();
}

// The walker keeps its state on the heap: 100 000 levels pass when the limits allow them.
TEST(PrescanAccepts, DeepNestingIsIterativeWhenLimitsAllowIt) {
  PrescanLimits limits;
  limits.max_depth = INT_MAX;
  limits.max_items = UINT64_MAX;
  constexpr int kDepth = 100000;
  DatasetBuilder head;
  standard_head(head);
  std::string ds = head.take();
  DatasetBuilder level;
  level.begin_sequence(kContentSeq).begin_item();
  const std::string open = level.take_unchecked();
  DatasetBuilder close;
  close.item_header(0xFFFEE00Du, 0).item_header(0xFFFEE0DDu, 0);
  const std::string closing = close.take();
  ds.reserve(ds.size() + kDepth * (open.size() + closing.size()));
  for (int i = 0; i < kDepth; ++i) ds += open;
  for (int i = 0; i < kDepth; ++i) ds += closing;
  EXPECT_TRUE(accepted(scan(part10(test::kExplicitLE, ds), limits)));
  // The same, never closed.
  ds.resize(ds.size() - 8);  // drop the outermost sequence delimiter
  EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, ds), limits),
                            "undefined-length sequence opened at offset"));
}

// ------------------------------------------------------------------------------------------------
// The Part-10 envelope and the meta header.

TEST(PrescanRejects, EmptyAndTinyFiles) {
  EXPECT_TRUE(rejected_with(scan(""), "empty file (0 bytes)"));
  EXPECT_TRUE(rejected_with(scan("DICM"),
                            "file ends at offset 4, before the 128-byte preamble and DICM prefix"));
  EXPECT_TRUE(rejected_with(scan(std::string(131, '\0')), "file ends at offset 131"));
  EXPECT_TRUE(rejected_with(scan(std::string(128, '\0') + "DICM"),
                            "file ends inside the file meta information at offset 132"));
}

TEST(PrescanRejects, MissingDicmPrefix) {
  std::string file = part10(test::kExplicitLE, standard_dataset(Enc::kExplicitLE));
  file[129] = 'X';
  EXPECT_TRUE(rejected_with(scan(file), "no DICM prefix at offset 128 (not a DICOM Part-10 file)"));
  // A bare dataset without preamble.
  EXPECT_TRUE(rejected_with(scan(standard_dataset(Enc::kExplicitLE)), "no DICM prefix"));
}

TEST(PrescanRejects, MetaGroupMissing) {
  const std::string file = std::string(128, '\0') + "DICM" + standard_dataset(Enc::kExplicitLE);
  EXPECT_TRUE(rejected_with(scan(file), "file meta information missing at offset 132"));
}

TEST(PrescanRejects, MetaGroupLengthMissing) {
  const std::string file = std::string(128, '\0') + "DICM" + test::meta_elements(Meta{}) +
                           standard_dataset(Enc::kExplicitLE);
  EXPECT_TRUE(rejected_with(
      scan(file), "file meta information group length (0002,0000) missing at offset 132"));
}

TEST(PrescanRejects, MetaNotExplicitLittleEndian) {
  // Group length written implicit VR: tag followed by a 32-bit length.
  DatasetBuilder g(Enc::kImplicitLE);
  const std::string elements = test::meta_elements(Meta{});
  g.element(0x00020000u, "", std::string("\0\0\0\0", 4));
  std::string file = std::string(128, '\0') + "DICM" + g.take() + elements;
  EXPECT_TRUE(rejected_with(
      scan(file), "file meta information is not explicit VR little endian at offset 132"));

  // A meta element with a bad VR after a good group length.
  Meta m;
  m.extra = std::string("\x02\x00\x00\x01\x04\x00\x02\x00xx", 10);  // (0002,0100) VR 0x04 0x00
  EXPECT_TRUE(rejected_with(scan(part10(m, standard_dataset(Enc::kExplicitLE))),
                            "file meta information is not explicit VR little endian at offset"));
}

TEST(PrescanRejects, MetaGroupLengthNotUl) {
  DatasetBuilder g;
  g.element(0x00020000u, "UI", "1234");
  const std::string file = std::string(128, '\0') + "DICM" + g.take() +
                           test::meta_elements(Meta{}) + standard_dataset(Enc::kExplicitLE);
  EXPECT_TRUE(
      rejected_with(scan(file), "group length (0002,0000) is not a 4-byte UL at offset 132"));
}

TEST(PrescanRejects, MetaGroupLengthLies) {
  const std::string ds = standard_dataset(Enc::kExplicitLE);
  Meta m;
  // Too short by the whole last element: the next meta element starts where the dataset should.
  const std::size_t last = 8 + 30;  // (0002,0012) UI, 29 chars padded to 30
  m.group_length_delta = -static_cast<std::int64_t>(last);
  EXPECT_TRUE(rejected_with(
      scan(part10(m, ds)), "file meta information group length is shorter than the meta elements"));
  m.group_length_delta = -2;
  EXPECT_TRUE(rejected_with(scan(part10(m, ds)),
                            "file meta information element (0002,0012) crosses the end of the meta "
                            "group at offset"));
  m.group_length_delta = 8;  // swallows the first dataset element header
  EXPECT_TRUE(rejected_with(scan(part10(m, ds)),
                            "file meta information group length is longer than the meta elements"));
  m.group_length_delta = 3;
  EXPECT_TRUE(rejected_with(scan(part10(m, ds)),
                            "file meta information group length does not match its elements"));
  m.group_length_delta = 1 << 20;
  EXPECT_TRUE(rejected_with(
      scan(part10(m, ds)),
      "file meta information group length points beyond the end of the file at offset 140"));
}

TEST(PrescanRejects, MetaElementsOutOfOrderOrRepeated) {
  Meta m;
  DatasetBuilder extra;
  extra.str(0x00020010u, "UI", test::kImplicitLE);  // a second transfer syntax after (0002,0012)
  m.extra = extra.take();
  EXPECT_TRUE(rejected_with(scan(part10(m, standard_dataset(Enc::kExplicitLE))),
                            "file meta information elements repeated or out of order at offset"));
}

TEST(PrescanRejects, MetaUndefinedLength) {
  Meta m;
  DatasetBuilder extra;
  extra.header(0x00020102u, "OB", DatasetBuilder::kUndefined);
  m.extra = extra.take();
  EXPECT_TRUE(rejected_with(scan(part10(m, standard_dataset(Enc::kExplicitLE))),
                            "undefined length in the file meta information at offset"));
}

TEST(PrescanRejects, RequiredMetaElementsMissing) {
  const std::string ds = standard_dataset(Enc::kExplicitLE);
  Meta m;
  m.version = false;
  EXPECT_TRUE(
      rejected_with(scan(part10(m, ds)), "file meta information version (0002,0001) missing"));
  m = Meta{};
  m.sop_class.clear();
  EXPECT_TRUE(rejected_with(scan(part10(m, ds)),
                            "media storage SOP class UID (0002,0002) missing or empty"));
  m = Meta{};
  m.sop_instance.clear();
  EXPECT_TRUE(rejected_with(scan(part10(m, ds)),
                            "media storage SOP instance UID (0002,0003) missing or empty"));
  m = Meta{};
  m.transfer_syntax.clear();
  EXPECT_TRUE(
      rejected_with(scan(part10(m, ds)), "transfer syntax UID (0002,0010) missing or empty"));
}

TEST(PrescanRejects, MetaUidTooLong) {
  Meta m;
  m.sop_class = "1." + std::string(70, '2');
  EXPECT_TRUE(rejected_with(scan(part10(m, standard_dataset(Enc::kExplicitLE))),
                            "(0002,0002) value longer than 64 bytes at offset"));
}

TEST(PrescanRejects, UnsupportedTransferSyntax) {
  const std::string ds = standard_dataset(Enc::kExplicitLE);
  for (std::string_view ts :
       {"1.2.840.10008.1.2.8.1", "1.2.840.10008.1.2.6.1", "1.2.3", "1.2.840.10008.1.2.4.",
        "1.2.840.10008.1.2.4.50.1", "1.2.840.10008.1.2.1.98"}) {
    auto r = scan(part10(ts, ds));
    EXPECT_TRUE(rejected_with(r, "unsupported transfer syntax in (0002,0010)")) << ts;
    if (!r.ok()) {
      EXPECT_EQ(r.error().detail.find(ts), std::string::npos);
    }
  }
}

TEST(PrescanRejects, FileLargerThanMaxObjectSize) {
  PrescanLimits limits;
  limits.max_object_size = 200;
  EXPECT_TRUE(
      rejected_with(scan(part10(test::kExplicitLE, standard_dataset(Enc::kExplicitLE)), limits),
                    "file larger than max_object_size"));
}

// ------------------------------------------------------------------------------------------------
// A transfer syntax that does not describe the dataset.

TEST(PrescanRejects, ExplicitDeclaredButImplicitData) {
  EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, standard_dataset(Enc::kImplicitLE))),
                            "invalid VR for (0008,0016) (the transfer syntax says explicit VR"));
}

TEST(PrescanRejects, ImplicitDeclaredButExplicitData) {
  EXPECT_TRUE(
      rejected_with(scan(part10(test::kImplicitLE, standard_dataset(Enc::kExplicitLE))),
                    "dataset looks like explicit VR but the transfer syntax is implicit VR"));
}

TEST(PrescanRejects, ByteOrderDoesNotMatch) {
  EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitBE, standard_dataset(Enc::kExplicitLE))),
                            "dataset byte order does not match the transfer syntax"));
  EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, standard_dataset(Enc::kExplicitBE))),
                            "dataset byte order does not match the transfer syntax"));
}

// ------------------------------------------------------------------------------------------------
// Lengths, truncation and trailing bytes.

TEST(PrescanRejects, ValueBeyondEndOfFile) {
  std::string file = part10(test::kExplicitLE, standard_dataset(Enc::kExplicitLE));
  DatasetBuilder b;
  b.header(kImageComments, "LT", 1000).raw("short");
  file += b.take();
  EXPECT_TRUE(rejected_with(scan(file), "value extends beyond the end of the file at offset"));
}

TEST(PrescanRejects, ValueLengthBeyondMaxObjectSize) {
  DatasetBuilder b;
  standard_head(b);
  b.header(0x7FE00010u, "OB", 0xFFFFFFF0u);
  EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, b.take())),
                            "value length exceeds max_object_size at offset"));
}

TEST(PrescanRejects, TruncatedHeaderAndTrailingGarbage) {
  const std::string good = part10(test::kExplicitLE, standard_dataset(Enc::kExplicitLE));
  EXPECT_TRUE(rejected_with(scan(good + std::string("\x10\x00\x20", 3)),
                            "file ends inside a data element header at offset"));
  EXPECT_TRUE(rejected_with(scan(good + std::string(8, '\0')),
                            "command element (0000,0000) in the dataset at offset"));
  EXPECT_TRUE(rejected_with(scan(good + "garbage!"), "invalid VR for (6167,6272)"));
  std::string truncated = good.substr(0, good.size() - 3);
  EXPECT_TRUE(rejected_with(scan(truncated), "extends beyond the end of the file"));
}

TEST(PrescanRejects, UndefinedLengthSequenceNeverClosed) {
  DatasetBuilder b;
  standard_head(b);
  b.begin_sequence(kContentSeq).begin_item().str(0x0040A040u, "CS", "TEXT").end_item();
  EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, b.take_unchecked())),
                            "undefined-length sequence opened at offset"));
  DatasetBuilder i;
  standard_head(i);
  i.begin_sequence(kContentSeq).begin_item().str(0x0040A040u, "CS", "TEXT");
  EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, i.take_unchecked())),
                            "undefined-length item opened at offset"));
}

TEST(PrescanRejects, UndefinedLengthSequenceNotClosedInsideItsItem) {
  DatasetBuilder b;
  standard_head(b);
  // Defined-length outer item holding an undefined-length sequence that never ends within it.
  DatasetBuilder inner;
  inner.begin_sequence(0x0040A731u).begin_item().str(0x0040A040u, "CS", "TEXT").end_item();
  const std::string inner_bytes = inner.take_unchecked();
  b.begin_sequence(kContentSeq, false).begin_item(false).raw(inner_bytes).end_item().end_sequence();
  b.element(0x7FE00010u, "OB", std::string(64, 'x'));
  auto r = scan(part10(test::kExplicitLE, b.take()));
  EXPECT_TRUE(rejected_with(r, "is not closed before the end of its enclosing item"));
}

TEST(PrescanRejects, LengthsCrossingTheirItem) {
  DatasetBuilder b;
  standard_head(b);
  b.begin_sequence(kContentSeq, false)
      .begin_item(false)
      .header(0x0040A160u, "UT", 100)
      .raw(std::string(10, 'x'));
  b.end_item().end_sequence();
  b.element(0x7FE00010u, "OB", std::string(200, 'x'));
  EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, b.take())),
                            "value extends beyond the end of its enclosing item at offset"));

  DatasetBuilder c;
  standard_head(c);
  // A defined-length sequence of 8 bytes holding an item that claims 16.
  c.header(kContentSeq, "SQ", 8).item_header(0xFFFEE000u, 16);
  c.element(0x7FE00010u, "OB", std::string(200, 'x'));
  EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, c.take())),
                            "item extends beyond the end of its enclosing item at offset"));

  DatasetBuilder d;
  standard_head(d);
  // An element header straddling the end of a 6-byte item.
  d.begin_sequence(kContentSeq, false).item_header(0xFFFEE000u, 6);
  d.raw(
      std::string("\x40\x00\x40\xA0"
                  "CS",
                  6));
  d.end_sequence();
  d.element(0x7FE00010u, "OB", std::string(200, 'x'));
  EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, d.take())),
                            "data element header crosses the end of its enclosing item"));
}

// ------------------------------------------------------------------------------------------------
// Sequences, items and delimiters.

TEST(PrescanRejects, NestingDeeperThanMaxDepth) {
  for (bool undefined : {true, false}) {
    auto r = scan(part10(test::kExplicitLE, nested_dataset(33, undefined)));
    EXPECT_TRUE(rejected_with(r, "sequence nesting deeper than max_depth at offset")) << undefined;
  }
  EXPECT_TRUE(
      rejected_with(scan(part10(test::kImplicitLE, nested_dataset(33, false, Enc::kImplicitLE))),
                    "sequence nesting deeper than max_depth"));
  EXPECT_TRUE(
      rejected_with(scan(part10(test::kImplicitLE, nested_dataset(33, true, Enc::kImplicitLE))),
                    "sequence nesting deeper than max_depth"));
  EXPECT_TRUE(rejected_with(
      scan(part10(test::kExplicitLE, nested_dataset(33, true, Enc::kExplicitLE, "UN"))),
      "sequence nesting deeper than max_depth"));
  EXPECT_TRUE(rejected_with(
      scan(part10(test::kExplicitLE, nested_dataset(33, false, Enc::kExplicitLE, "UN"))),
      "sequence nesting deeper than max_depth"));
}

TEST(PrescanRejects, MillionDeepNestingWithoutStackOverflow) {
  DatasetBuilder head;
  standard_head(head);
  std::string ds = head.take();
  DatasetBuilder level;
  level.begin_sequence(kContentSeq).begin_item();
  const std::string open = level.take_unchecked();
  constexpr int kDepth = 1000000;
  ds.reserve(ds.size() + kDepth * open.size());
  for (int i = 0; i < kDepth; ++i) ds += open;
  EXPECT_TRUE(
      rejected_with(scan(part10(test::kExplicitLE, ds)), "sequence nesting deeper than max_depth"));
}

TEST(PrescanRejects, TooManyItems) {
  PrescanLimits limits;
  limits.max_items = 10;
  DatasetBuilder b;
  standard_head(b);
  b.begin_sequence(kContentSeq);
  for (int i = 0; i < 11; ++i) b.begin_item().end_item();
  b.end_sequence();
  EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, b.take()), limits),
                            "more items than max_items"));
  // Fragments count as items.
  EXPECT_TRUE(rejected_with(scan(part10(test::kJpegBaseline, encapsulated_dataset(10)), limits),
                            "more items than max_items"));
}

TEST(PrescanRejects, TooManyElements) {
  PrescanLimits limits;
  limits.max_elements = 20;
  DatasetBuilder b;
  standard_head(b);
  for (std::uint32_t e = 0; e < 20; ++e) b.str(0x00211000u + e, "LO", "x");
  EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, b.take()), limits),
                            "more data elements than max_elements at offset"));
}

TEST(PrescanRejects, DelimitersInTheWrongPlace) {
  auto with = [](auto&& build) {
    DatasetBuilder b;
    standard_head(b);
    build(b);
    return part10(test::kExplicitLE, b.take_unchecked());
  };
  EXPECT_TRUE(rejected_with(scan(with([](DatasetBuilder& b) { b.item_header(0xFFFEE0DDu, 0); })),
                            "sequence delimitation item outside an undefined-length sequence"));
  EXPECT_TRUE(rejected_with(scan(with([](DatasetBuilder& b) { b.item_header(0xFFFEE00Du, 0); })),
                            "item delimitation item outside an undefined-length item"));
  EXPECT_TRUE(rejected_with(scan(with([](DatasetBuilder& b) { b.item_header(0xFFFEE000u, 0); })),
                            "item outside a sequence at offset"));
  EXPECT_TRUE(rejected_with(scan(with([](DatasetBuilder& b) { b.item_header(0xFFFEE001u, 0); })),
                            "unknown delimiter element (FFFE,E001) at offset"));
  EXPECT_TRUE(rejected_with(scan(with([](DatasetBuilder& b) {
                              b.begin_sequence(kContentSeq).item_header(0xFFFEE00Du, 0);
                            })),
                            "item delimitation item in a sequence outside any item"));
  EXPECT_TRUE(rejected_with(scan(with([](DatasetBuilder& b) {
                              b.begin_sequence(kContentSeq).str(0x0040A040u, "CS", "TEXT");
                            })),
                            "data element (0040,A040) where a sequence item was expected"));
  EXPECT_TRUE(rejected_with(scan(with([](DatasetBuilder& b) {
                              b.header(kContentSeq, "SQ", 16).item_header(0xFFFEE0DDu, 0);
                              b.raw("12345678");
                            })),
                            "sequence delimitation item inside a defined-length sequence"));
  EXPECT_TRUE(rejected_with(scan(with([](DatasetBuilder& b) {
                              b.begin_sequence(kContentSeq).item_header(0xFFFEE0DDu, 4).raw("xxxx");
                            })),
                            "sequence delimitation item with nonzero length"));
  EXPECT_TRUE(
      rejected_with(scan(with([](DatasetBuilder& b) {
                      b.begin_sequence(kContentSeq).begin_item().item_header(0xFFFEE00Du, 2);
                      b.raw("xx");
                    })),
                    "item delimitation item with nonzero length"));
  // An item delimiter inside a defined-length item.
  EXPECT_TRUE(rejected_with(scan(with([](DatasetBuilder& b) {
                              b.begin_sequence(kContentSeq).item_header(0xFFFEE000u, 8);
                              b.item_header(0xFFFEE00Du, 0).item_header(0xFFFEE0DDu, 0);
                            })),
                            "item delimitation item outside an undefined-length item"));
}

// Documented trade-off: an implicit-VR value that starts with an item tag is walked as the
// sequence DCMTK's dictionary would make of it, so a malformed one is refused.
TEST(PrescanRejects, ImplicitValueShapedLikeASequenceIsCheckedAsOne) {
  DatasetBuilder b(Enc::kImplicitLE);
  standard_head(b);
  DatasetBuilder blob(Enc::kImplicitLE);
  blob.item_header(0xFFFEE000u, 256).raw("12345678");
  b.element(0x00291010u, "", blob.take()).element(0x00291011u, "", "ab");
  EXPECT_TRUE(rejected_with(scan(part10(test::kImplicitLE, b.take())),
                            "item extends beyond the end of its enclosing item"));
}

TEST(PrescanRejects, UndefinedLengthOnANonSequence) {
  DatasetBuilder b;
  standard_head(b);
  b.header(kImageComments, "UT", DatasetBuilder::kUndefined);
  EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, b.take())),
                            "undefined length on (0020,4000) with VR UT, which is not a sequence"));
}

// ------------------------------------------------------------------------------------------------
// Encapsulated pixel data.

TEST(PrescanRejects, EncapsulatedPixelDataInANativeTransferSyntax) {
  EXPECT_TRUE(
      rejected_with(scan(part10(test::kExplicitLE, encapsulated_dataset(2))),
                    "undefined-length (encapsulated) pixel data in a native transfer syntax"));
}

TEST(PrescanRejects, BrokenEncapsulatedPixelData) {
  auto with = [](auto&& build) {
    DatasetBuilder b;
    standard_head(b);
    b.begin_pixel_sequence();
    build(b);
    return part10(test::kJpegBaseline, b.take_unchecked());
  };
  EXPECT_TRUE(rejected_with(scan(with([](DatasetBuilder& b) {
                              b.fragment("").item_header(0xFFFEE000u, DatasetBuilder::kUndefined);
                            })),
                            "encapsulated pixel data fragment with undefined length"));
  EXPECT_TRUE(rejected_with(scan(with([](DatasetBuilder& b) { b.end_pixel_sequence(); })),
                            "encapsulated pixel data without a basic offset table item"));
  EXPECT_TRUE(rejected_with(
      scan(with([](DatasetBuilder& b) { b.fragment("").str(0x7FE00020u, "LO", "x"); })),
      "data element (7FE0,0020) inside encapsulated pixel data"));
  EXPECT_TRUE(rejected_with(scan(with([](DatasetBuilder& b) {
                              b.fragment("").item_header(0xFFFEE000u, 5000).raw("abcd");
                            })),
                            "encapsulated pixel data fragment extends beyond the end of the file"));
  EXPECT_TRUE(rejected_with(scan(with([](DatasetBuilder& b) { b.fragment("").fragment("ab"); })),
                            "encapsulated pixel data opened at offset"));
  EXPECT_TRUE(rejected_with(
      scan(with([](DatasetBuilder& b) { b.fragment("").item_header(0xFFFEE0DDu, 2).raw("xx"); })),
      "sequence delimitation item with nonzero length"));
}

// ------------------------------------------------------------------------------------------------
// Element rules.

TEST(PrescanRejects, ElementsOutOfOrderOrRepeated) {
  DatasetBuilder b;
  standard_head(b);
  b.str(0x00100020u, "LO", "x");
  EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, b.take())),
                            "data element (0010,0020) out of ascending tag order at offset"));
  DatasetBuilder c;
  standard_head(c);
  c.str(0x0020000Eu, "UI", "1.2.3");  // a second Series Instance UID
  EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, c.take())),
                            "data element (0020,000E) repeated at offset"));
  // Inside an item, too.
  DatasetBuilder d;
  standard_head(d);
  d.begin_sequence(kContentSeq)
      .begin_item()
      .str(0x0040A040u, "CS", "A")
      .str(0x0040A040u, "CS", "B");
  d.end_item().end_sequence();
  EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, d.take())), "(0040,A040) repeated"));
}

TEST(PrescanRejects, ElementsOfForbiddenGroups) {
  auto with_first = [](std::uint32_t tag) {
    DatasetBuilder b;
    b.str(tag, "LO", "x");
    standard_head(b);
    return part10(test::kExplicitLE, b.take());
  };
  EXPECT_TRUE(
      rejected_with(scan(with_first(0x00000900u)), "command element (0000,0900) in the dataset"));
  EXPECT_TRUE(
      rejected_with(scan(with_first(0x00030010u)), "data element (0003,0010) in an illegal group"));
  DatasetBuilder b;
  standard_head(b);
  b.str(0xFFFF0010u, "LO", "x");
  EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, b.take())), "in an illegal group"));
  // A meta element first in the dataset reads as a too-short meta group; deeper down it is named.
  EXPECT_TRUE(
      rejected_with(scan(with_first(0x00020010u)),
                    "file meta information group length is shorter than the meta elements"));
  DatasetBuilder m;
  standard_head(m);
  m.begin_sequence(kContentSeq)
      .begin_item()
      .str(0x00020010u, "UI", "1.2")
      .end_item()
      .end_sequence();
  EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, m.take())),
                            "file meta element (0002,0010) in the dataset"));
}

TEST(PrescanRejects, TextValueLongerThanTheLimit) {
  PrescanLimits limits;
  limits.max_text_value = 64;
  for (std::string_view vr : {"LT", "UT", "LO", "UC"}) {
    DatasetBuilder b;
    standard_head(b);
    b.element(kImageComments, vr, std::string(66, 'x'));
    EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, b.take()), limits),
                              "value of (0020,4000) longer than max_text_value at offset"))
        << vr;
  }
  DatasetBuilder i(Enc::kImplicitLE);
  standard_head(i);
  i.element(kImageComments, "", std::string(66, 'x'));
  EXPECT_TRUE(rejected_with(scan(part10(test::kImplicitLE, i.take()), limits),
                            "value of (0020,4000) longer than max_text_value"));
  // Default limit: 1 MiB.
  DatasetBuilder big;
  standard_head(big);
  big.element(kImageComments, "UT", std::string((1u << 20) + 2, 'x'));
  EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, big.take())), "max_text_value"));
}

TEST(PrescanRejects, ExtractedValuesLongerThanTheirVrAllows) {
  EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE,
                                        [] {
                                          DatasetBuilder b;
                                          standard_head(b, "1." + std::string(69, '3'));
                                          return b.take();
                                        }())),
                            "value of (0008,0018) longer than 64 bytes at offset"));
  DatasetBuilder m;
  m.str(0x00080016u, "UI", test::kSecondaryCapture)
      .str(0x00080018u, "UI", test::kSopInstance)
      .str(0x00080060u, "CS", std::string(18, 'M'));
  EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, m.take())),
                            "value of (0008,0060) longer than 16 bytes at offset"));
}

// ------------------------------------------------------------------------------------------------
// What the dataset must carry.

TEST(PrescanRejects, RequiredDatasetUidsMissing) {
  struct Case {
    std::uint32_t skip;
    const char* want;
  } cases[] = {
      {0x00080016u, "dataset has no SOP Class UID (0008,0016) (dataset at offset"},
      {0x00080018u, "dataset has no SOP Instance UID (0008,0018)"},
      {0x0020000Du, "dataset has no Study Instance UID (0020,000D)"},
      {0x0020000Eu, "dataset has no Series Instance UID (0020,000E)"},
  };
  for (const auto& c : cases) {
    DatasetBuilder b;
    if (c.skip != 0x00080016u) b.str(0x00080016u, "UI", test::kSecondaryCapture);
    if (c.skip != 0x00080018u) b.str(0x00080018u, "UI", test::kSopInstance);
    if (c.skip != 0x0020000Du) b.str(0x0020000Du, "UI", test::kStudy);
    if (c.skip != 0x0020000Eu) b.str(0x0020000Eu, "UI", test::kSeries);
    EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, b.take())), c.want)) << c.want;
  }
  // Present but empty counts as missing.
  DatasetBuilder e;
  e.str(0x00080016u, "UI", test::kSecondaryCapture)
      .str(0x00080018u, "UI", test::kSopInstance)
      .element(0x0020000Du, "UI", "")
      .str(0x0020000Eu, "UI", test::kSeries);
  EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, e.take())),
                            "dataset has no Study Instance UID (0020,000D)"));
  // Only the top level counts: a Study Instance UID inside an item is not the object's.
  DatasetBuilder n;
  n.str(0x00080016u, "UI", test::kSecondaryCapture).str(0x00080018u, "UI", test::kSopInstance);
  n.begin_sequence(0x00081115u).begin_item().str(0x0020000Du, "UI", test::kStudy).end_item();
  n.end_sequence().str(0x0020000Eu, "UI", test::kSeries);
  EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, n.take())),
                            "dataset has no Study Instance UID"));
}

// In explicit VR, DCMTK reads an element with the VR it states: a SOP Instance UID stated as US
// is a list of numbers to every later stage (found by fuzz_policy). The values the catalog keeps
// must be stated with their own VR.
TEST(PrescanRejects, IdentityValuesStatedWithAnotherVr) {
  struct {
    std::uint32_t tag;
    const char* vr;
    const char* want;
  } cases[] = {
      {0x00080018u, "US", "(0008,0018) has VR US, not UI at offset"},
      {0x00080016u, "OB", "(0008,0016) has VR OB, not UI"},
      {0x0020000Du, "LO", "(0020,000D) has VR LO, not UI"},
      {0x0020000Eu, "SH", "(0020,000E) has VR SH, not UI"},
      {0x00080060u, "LO", "(0008,0060) has VR LO, not CS"},
      {0x00100020u, "OB", "(0010,0020) has VR OB, not LO"},
  };
  for (const auto& c : cases) {
    DatasetBuilder b;
    auto put = [&](std::uint32_t tag, const char* vr, std::string_view value) {
      b.str(tag, tag == c.tag ? c.vr : vr, value);
    };
    put(0x00080016u, "UI", test::kSecondaryCapture);
    put(0x00080018u, "UI", test::kSopInstance);
    put(0x00080060u, "CS", "OT");
    put(0x00100020u, "LO", "PID-1");
    put(0x0020000Du, "UI", test::kStudy);
    put(0x0020000Eu, "UI", test::kSeries);
    EXPECT_TRUE(rejected_with(scan(part10(test::kExplicitLE, b.take())), c.want)) << c.want;
  }
  // UN is taken (objects from the field state standard attributes so).
  DatasetBuilder un;
  un.element(0x00080016u, "UN", test::kSecondaryCapture)
      .str(0x00080018u, "UI", test::kSopInstance)
      .str(0x0020000Du, "UI", test::kStudy)
      .str(0x0020000Eu, "UI", test::kSeries);
  auto r = scan(part10(test::kExplicitLE, un.take()));
  ASSERT_TRUE(r.ok()) << r.error().detail;
  EXPECT_EQ(r->dataset_sop_class_uid, test::kSecondaryCapture);
}

TEST(PrescanRejects, MetaAndDatasetSopDisagree) {
  Meta m;
  m.sop_instance = "1.2.3.999";
  auto r = scan(part10(m, standard_dataset(Enc::kExplicitLE)));
  EXPECT_TRUE(rejected_with(
      r, "SOP Instance UID (0008,0018) differs from the meta header's (0002,0003) at offset"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().detail.find("1.2.3.999"), std::string::npos);
  EXPECT_EQ(r.error().detail.find(test::kSopInstance), std::string::npos);
  m = Meta{};
  m.sop_class = "1.2.840.10008.5.1.4.1.1.2";
  EXPECT_TRUE(
      rejected_with(scan(part10(m, standard_dataset(Enc::kExplicitLE))),
                    "SOP Class UID (0008,0016) differs from the meta header's (0002,0002)"));
}

// ------------------------------------------------------------------------------------------------
// Deflate.

TEST(PrescanRejects, DeflateBomb) {
  PrescanLimits limits;
  limits.max_inflated_size = 1 << 20;
  DatasetBuilder b;
  standard_head(b);
  b.element(0x7FE00010u, "OB", std::string(8u << 20, '\0'));
  const std::string deflated = test::raw_deflate(b.take(), 9);
  ASSERT_LT(deflated.size(), 16u * 1024);
  EXPECT_TRUE(rejected_with(scan(part10(test::kDeflated, deflated), limits),
                            "inflated dataset larger than max_inflated_size at offset"));
  // The default limit lets the same object through.
  EXPECT_TRUE(accepted(scan(part10(test::kDeflated, deflated))));
}

TEST(PrescanRejects, BrokenDeflateStreams) {
  const std::string deflated = test::raw_deflate(deflatable_dataset());
  EXPECT_TRUE(
      rejected_with(scan(part10(test::kDeflated, deflated.substr(0, deflated.size() / 2))),
                    "deflated dataset ends before the end of its deflate stream at offset"));
  EXPECT_TRUE(rejected_with(scan(part10(test::kDeflated, deflated + "xyz")),
                            "data after the end of the deflate stream at offset"));
  EXPECT_TRUE(rejected_with(scan(part10(test::kDeflated, deflated + std::string(2, '\0'))),
                            "data after the end of the deflate stream"));
  std::string corrupt = deflated;
  corrupt[0] = '\xFF';  // reserved block type 11
  EXPECT_TRUE(
      rejected_with(scan(part10(test::kDeflated, corrupt)), "corrupt deflate stream at offset"));
  // Not deflated at all.
  EXPECT_FALSE(scan(part10(test::kDeflated, deflatable_dataset())).ok());
}

TEST(PrescanRejects, StructureErrorsInsideTheInflatedStream) {
  DatasetBuilder b;
  standard_head(b);
  b.begin_sequence(kContentSeq).begin_item();
  EXPECT_TRUE(rejected_with(scan(part10(test::kDeflated, test::raw_deflate(b.take_unchecked()))),
                            "is not closed before the end of the data"));
  DatasetBuilder c;
  standard_head(c);
  c.header(0x7FE00010u, "OB", 1000).raw("short");
  EXPECT_TRUE(rejected_with(scan(part10(test::kDeflated, test::raw_deflate(c.take()))),
                            "value extends beyond the end of the data at offset"));
  EXPECT_TRUE(
      rejected_with(scan(part10(test::kDeflated, test::raw_deflate(nested_dataset(33, true)))),
                    "of the inflated dataset"));
}

// ------------------------------------------------------------------------------------------------
// Files.

class PrescanFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dirgw-prescan-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path write(const std::string& name, std::string_view bytes) {
    auto path = dir_ / name;
    std::ofstream(path, std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path;
  }

  std::filesystem::path dir_;
};

TEST_F(PrescanFile, SameAnswerAsBytes) {
  const std::string bytes = part10(test::kExplicitLE, nested_dataset(5, true));
  auto from_file = prescan_file(write("a.dcm", bytes), {});
  ASSERT_TRUE(accepted(from_file));
  auto from_bytes = scan(bytes);
  ASSERT_TRUE(accepted(from_bytes));
  EXPECT_EQ(from_file->dataset_offset, from_bytes->dataset_offset);
  EXPECT_EQ(from_file->study_uid, from_bytes->study_uid);
  const std::string bad = part10(test::kExplicitLE, nested_dataset(33, true));
  auto bad_file = prescan_file(write("b.dcm", bad), {});
  ASSERT_FALSE(bad_file.ok());
  EXPECT_EQ(bad_file.error().detail, scan(bad).error().detail);
}

TEST_F(PrescanFile, LargePixelDataIsSkippedNotRead) {
  // 1 GiB of pixel data, sparse on disk: the scan must skip it, not read it.
  DatasetBuilder b;
  standard_head(b);
  constexpr std::uint32_t kPixels = 1u << 30;
  b.header(0x7FE00010u, "OW", kPixels);
  const auto path = write("big.dcm", part10(test::kExplicitLE, b.take()));
  const auto size = std::filesystem::file_size(path) + kPixels;
  std::filesystem::resize_file(path, size);
  auto r = prescan_file(path, {});
  ASSERT_TRUE(accepted(r));
  EXPECT_EQ(r->modality, "OT");
  std::filesystem::resize_file(path, size - 2);
  EXPECT_TRUE(rejected_with(prescan_file(path, {}), "value extends beyond the end of the file"));
}

TEST_F(PrescanFile, MissingFileIsAnIoError) {
  auto r = prescan_file(dir_ / "nope.dcm", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kIo);
  auto d = prescan_file(dir_, {});
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, ErrorCode::kIo);
}

// Real files written by DCMTK's own tools, in every transfer syntax they can produce.
bool run(const std::string& command) {
  const int rc = std::system(("(" + command + ") >/dev/null 2>&1").c_str());
  return rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
}

std::string bmp(int w, int h) {
  const int row = (w * 3 + 3) / 4 * 4;
  const std::uint32_t data = static_cast<std::uint32_t>(row * h);
  std::string out = "BM";
  auto u32 = [&](std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  };
  auto u16 = [&](std::uint16_t v) {
    out.push_back(static_cast<char>(v & 0xFF));
    out.push_back(static_cast<char>(v >> 8));
  };
  u32(54 + data);
  u32(0);
  u32(54);
  u32(40);
  u32(static_cast<std::uint32_t>(w));
  u32(static_cast<std::uint32_t>(h));
  u16(1);
  u16(24);
  u32(0);
  u32(data);
  u32(2835);
  u32(2835);
  u32(0);
  u32(0);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < row; ++x) out.push_back(static_cast<char>((x * 7 + y * 13) & 0xFF));
  }
  return out;
}

TEST_F(PrescanFile, FilesWrittenByDcmtkTools) {
  if (!run("command -v img2dcm && command -v dcmconv && command -v dcmcjpeg && command -v "
           "dcmcrle")) {
    GTEST_SKIP() << "DCMTK tools not installed";
  }
  const auto in = write("in.bmp", bmp(33, 17));
  const std::string d = dir_.string() + "/";
  ASSERT_TRUE(run("img2dcm -i BMP " + in.string() + " " + d + "sc.dcm"));
  struct Case {
    const char* name;
    const char* command;
    std::string_view ts;
  } cases[] = {
      {"sc.dcm", nullptr, test::kExplicitLE},
      {"i.dcm", "dcmconv +ti", test::kImplicitLE},
      {"b.dcm", "dcmconv +tb", test::kExplicitBE},
      {"d.dcm", "dcmconv +td", test::kDeflated},
      {"j.dcm", "dcmcjpeg", "1.2.840.10008.1.2.4.70"},
      {"jb.dcm", "dcmcjpeg +eb", test::kJpegBaseline},
      {"r.dcm", "dcmcrle", test::kRle},
  };
  std::string study;
  for (const auto& c : cases) {
    if (c.command != nullptr) {
      std::string command = c.command;
      command.append(" ").append(d).append("sc.dcm ").append(d).append(c.name);
      ASSERT_TRUE(run(command)) << c.name;
    }
    auto r = prescan_file(d + c.name, {});
    ASSERT_TRUE(accepted(r)) << c.name;
    EXPECT_EQ(r->transfer_syntax, c.ts) << c.name;
    EXPECT_EQ(r->sop_instance_uid, r->dataset_sop_instance_uid);
    EXPECT_FALSE(r->study_uid.empty());
    if (study.empty()) study = r->study_uid;
    EXPECT_EQ(r->study_uid, study) << c.name;
  }
}

}  // namespace
}  // namespace dirgw::ingest
