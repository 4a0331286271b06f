// JPEG 2000 decoded with OpenJPEG for a C-STORE destination that refuses it
// (senders/transcode/jpeg2000.h), on field files: pydicom's test data (Debian's python3-pydicom,
// installed by make deps) holds JPEG 2000 objects written by other tools, one of them with the
// same image uncompressed beside it.
#include "senders/transcode/jpeg2000.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

// clang-format off
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcpixel.h"
#include "dcmtk/dcmdata/dcpixseq.h"
#include "dcmtk/dcmdata/dcpxitem.h"
#include "dcmtk/dcmdata/dcxfer.h"
// clang-format on

namespace dirgw::senders::transcode {
namespace {

const std::filesystem::path kPydicom = "/usr/lib/python3/dist-packages/pydicom/data/test_files";

std::unique_ptr<DcmFileFormat> load(const std::string& name) {
  const auto path = kPydicom / name;
  auto ff = std::make_unique<DcmFileFormat>();
  EXPECT_TRUE(ff->loadFile(path.c_str()).good())
      << path << " (python3-pydicom's test data: make deps installs it)";
  return ff;
}

std::string str(DcmItem& ds, const DcmTagKey& key) {
  OFString v;
  ds.findAndGetOFString(key, v);
  return v.c_str();
}

// The native pixel data's bytes (host order words for 16-bit data).
std::vector<std::uint8_t> native_pixels(DcmDataset& ds) {
  Uint16 bits = 0;
  ds.findAndGetUint16(DCM_BitsAllocated, bits);
  unsigned long count = 0;
  if (bits == 16) {
    const Uint16* w = nullptr;
    EXPECT_TRUE(ds.findAndGetUint16Array(DCM_PixelData, w, &count).good());
    const auto* b = reinterpret_cast<const std::uint8_t*>(w);
    return {b, b + 2 * count};
  }
  const Uint8* b = nullptr;
  EXPECT_TRUE(ds.findAndGetUint8Array(DCM_PixelData, b, &count).good());
  return {b, b + count};
}

bool still_encapsulated(DcmDataset& ds) {
  DcmElement* e = nullptr;
  if (ds.findAndGetElement(DCM_PixelData, e).bad()) return false;
  DcmPixelSequence* seq = nullptr;
  return OFstatic_cast(DcmPixelData*, e)
             ->getEncapsulatedRepresentation(ds.getOriginalXfer(), nullptr, seq)
             .good() &&
         seq != nullptr;
}

TEST(Jpeg2000, LosslessSignedMrEqualsTheUncompressedOriginal) {
  auto j2k = load("MR_small_jp2klossless.dcm");
  auto plain = load("MR_small.dcm");
  DcmDataset& ds = *j2k->getDataset();
  ASSERT_EQ(DcmXfer(ds.getOriginalXfer()).getXferID(), std::string("1.2.840.10008.1.2.4.90"));
  auto why = decode_jpeg2000(ds);
  ASSERT_FALSE(why) << *why;
  EXPECT_FALSE(still_encapsulated(ds));
  const auto decoded = native_pixels(ds);
  const auto original = native_pixels(*plain->getDataset());
  ASSERT_EQ(decoded.size(), 64u * 64u * 2u);
  EXPECT_TRUE(decoded == original) << "the lossless decode differs from MR_small.dcm";
  EXPECT_TRUE(ds.canWriteXfer(EXS_LittleEndianExplicit));
  EXPECT_EQ(str(ds, DCM_LossyImageCompression), "");
}

TEST(Jpeg2000, LossyKeepsItsMarkAndSignedRange) {
  auto ff = load("693_J2KI.dcm");
  DcmDataset& ds = *ff->getDataset();
  auto why = decode_jpeg2000(ds);
  ASSERT_FALSE(why) << *why;
  const auto px = native_pixels(ds);
  ASSERT_EQ(px.size(), 512u * 512u * 2u);
  // 14 bits stored, signed: every value within [-8192, 8191], and not all the same.
  int lo = 1 << 20, hi = -(1 << 20);
  for (std::size_t i = 0; i < px.size(); i += 2) {
    std::int16_t v;
    std::memcpy(&v, px.data() + i, 2);
    lo = std::min<int>(lo, v);
    hi = std::max<int>(hi, v);
  }
  EXPECT_GE(lo, -8192);
  EXPECT_LE(hi, 8191);
  EXPECT_LT(lo, hi);
  EXPECT_EQ(str(ds, DCM_LossyImageCompression), "01");
  EXPECT_FALSE(str(ds, DCM_LossyImageCompressionMethod).empty());
}

TEST(Jpeg2000, ColourWithTheReversibleTransformBecomesRgb) {
  auto ff = load("GDCMJ2K_TextGBR.dcm");
  DcmDataset& ds = *ff->getDataset();
  ASSERT_EQ(str(ds, DCM_PhotometricInterpretation), "YBR_RCT");
  auto why = decode_jpeg2000(ds);
  ASSERT_FALSE(why) << *why;
  EXPECT_EQ(str(ds, DCM_PhotometricInterpretation), "RGB");
  Uint16 planar = 9;
  EXPECT_TRUE(ds.findAndGetUint16(DCM_PlanarConfiguration, planar).good());
  EXPECT_EQ(planar, 0);
  const auto px = native_pixels(ds);
  ASSERT_EQ(px.size(), 400u * 400u * 3u);
  // The image is text in three colours: some pixels are strongly one channel over the others.
  int red = 0, green = 0, blue = 0;
  for (std::size_t i = 0; i < px.size(); i += 3) {
    red += px[i] > 150 && px[i + 1] < 100 && px[i + 2] < 100;
    green += px[i + 1] > 150 && px[i] < 100 && px[i + 2] < 100;
    blue += px[i + 2] > 150 && px[i] < 100 && px[i + 1] < 100;
  }
  EXPECT_GT(red, 100);
  EXPECT_GT(green, 100);
  EXPECT_GT(blue, 100);
}

TEST(Jpeg2000, APixelRepresentationMismatchStillDecodes) {
  auto ff = load("J2K_pixelrep_mismatch.dcm");
  DcmDataset& ds = *ff->getDataset();
  auto why = decode_jpeg2000(ds);
  ASSERT_FALSE(why) << *why;
  EXPECT_EQ(native_pixels(ds).size(), 512u * 512u * 2u);
}

// The MR's code stream made into multi-frame objects: one fragment per frame, frames in two
// fragments with a Basic Offset Table, and without one (the code streams' start markers).
std::vector<std::uint8_t> mr_code_stream() {
  auto ff = load("MR_small_jp2klossless.dcm");
  DcmDataset& ds = *ff->getDataset();
  DcmElement* e = nullptr;
  EXPECT_TRUE(ds.findAndGetElement(DCM_PixelData, e).good());
  DcmPixelSequence* seq = nullptr;
  EXPECT_TRUE(OFstatic_cast(DcmPixelData*, e)
                  ->getEncapsulatedRepresentation(ds.getOriginalXfer(), nullptr, seq)
                  .good());
  std::vector<std::uint8_t> out;
  for (unsigned long i = 1; i < seq->card(); ++i) {
    DcmPixelItem* item = nullptr;
    Uint8* data = nullptr;
    seq->getItem(item, i);
    item->getUint8Array(data);
    out.insert(out.end(), data, data + item->getLength());
  }
  return out;
}

std::unique_ptr<DcmFileFormat> multi_frame(const std::vector<std::vector<std::uint8_t>>& parts,
                                           int frames, const std::vector<Uint32>& table) {
  auto ff = load("MR_small_jp2klossless.dcm");
  DcmDataset& ds = *ff->getDataset();
  auto* seq = new DcmPixelSequence(DCM_PixelSequenceTag);
  auto* bot = new DcmPixelItem(DCM_PixelItemTag);
  if (!table.empty())
    bot->putUint8Array(reinterpret_cast<const Uint8*>(table.data()),
                       static_cast<Uint32>(table.size() * 4));
  seq->insert(bot);
  for (const auto& p : parts) {
    std::vector<std::uint8_t> even = p;
    if (even.size() % 2) even.push_back(0);
    auto* item = new DcmPixelItem(DCM_PixelItemTag);
    item->putUint8Array(even.data(), static_cast<Uint32>(even.size()));
    seq->insert(item);
  }
  auto* pixel = new DcmPixelData(DCM_PixelData);
  pixel->putOriginalRepresentation(ds.getOriginalXfer(), nullptr, seq);
  ds.insert(pixel, OFTrue);
  ds.putAndInsertString(DCM_NumberOfFrames, std::to_string(frames).c_str());
  return ff;
}

TEST(Jpeg2000, MultiFrameObjectsByFragmentsTableOrMarkers) {
  const auto cs = mr_code_stream();
  ASSERT_GT(cs.size(), 100u);
  const std::size_t cut = 50;
  std::vector<std::uint8_t> head(cs.begin(), cs.begin() + cut), tail(cs.begin() + cut, cs.end());
  auto plain = load("MR_small.dcm");
  const auto frame = native_pixels(*plain->getDataset());
  auto even = [](std::size_t n) { return n + (n % 2); };
  const Uint32 second = static_cast<Uint32>(8 + head.size() + 8 + even(tail.size()));
  struct Case {
    const char* name;
    std::vector<std::vector<std::uint8_t>> parts;
    std::vector<Uint32> table;
  } cases[] = {{"a fragment per frame", {cs, cs}, {}},
               {"two fragments per frame, a table", {head, tail, head, tail}, {0, second}},
               {"two fragments per frame, no table", {head, tail, head, tail}, {}}};
  for (const auto& c : cases) {
    auto ff = multi_frame(c.parts, 2, c.table);
    DcmDataset& ds = *ff->getDataset();
    auto why = decode_jpeg2000(ds);
    ASSERT_FALSE(why) << c.name << ": " << *why;
    const auto px = native_pixels(ds);
    ASSERT_EQ(px.size(), 2 * frame.size()) << c.name;
    EXPECT_TRUE(std::equal(frame.begin(), frame.end(), px.begin())) << c.name;
    EXPECT_TRUE(std::equal(frame.begin(), frame.end(), px.begin() + frame.size())) << c.name;
  }
  // Three frames announced, two code streams: refused, the data set unchanged.
  auto ff = multi_frame({head, tail, head, tail}, 3, {});
  auto why = decode_jpeg2000(*ff->getDataset());
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("Number of Frames"), std::string::npos) << *why;
  EXPECT_TRUE(still_encapsulated(*ff->getDataset()));
}

TEST(Jpeg2000, BrokenStreamsAndWrongModulesAreRefusedAndLeaveTheDataSetAlone) {
  const auto cs = mr_code_stream();
  // Truncated: the header reads, the tiles do not decode.
  {
    std::vector<std::uint8_t> cut(cs.begin(), cs.begin() + cs.size() / 3);
    auto ff = multi_frame({cut}, 1, {});
    auto why = decode_jpeg2000(*ff->getDataset());
    ASSERT_TRUE(why);
    EXPECT_TRUE(still_encapsulated(*ff->getDataset()));
  }
  // Not a code stream at all.
  {
    auto ff = multi_frame({std::vector<std::uint8_t>(200, 0x41)}, 1, {});
    auto why = decode_jpeg2000(*ff->getDataset());
    ASSERT_TRUE(why);
    EXPECT_NE(why->find("header"), std::string::npos) << *why;
  }
  // Rows that do not match the code stream; three samples for a one-component stream.
  {
    auto ff = load("MR_small_jp2klossless.dcm");
    ff->getDataset()->putAndInsertUint16(DCM_Rows, 65);
    auto why = decode_jpeg2000(*ff->getDataset());
    ASSERT_TRUE(why);
    EXPECT_NE(why->find("Rows"), std::string::npos) << *why;
    EXPECT_TRUE(still_encapsulated(*ff->getDataset()));
  }
  {
    auto ff = load("MR_small_jp2klossless.dcm");
    ff->getDataset()->putAndInsertUint16(DCM_SamplesPerPixel, 3);
    auto why = decode_jpeg2000(*ff->getDataset());
    ASSERT_TRUE(why);
    EXPECT_NE(why->find("components"), std::string::npos) << *why;
  }
  // Not JPEG 2000 at all.
  {
    auto ff = load("MR_small.dcm");
    EXPECT_TRUE(decode_jpeg2000(*ff->getDataset()));
  }
}

}  // namespace
}  // namespace dirgw::senders::transcode
