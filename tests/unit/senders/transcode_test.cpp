// The transcoding hook: JPEG-LS Lossless copies whose decoded pixels are the original's, byte for
// byte (8-bit, 12/16-bit signed and unsigned, RGB, multi-frame, Implicit VR), the objects that go
// as stored, and the Sender wrapper (copies offered, removed afterwards, counted).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "senders/transcode/jpeg_ls.h"
#include "senders/transcode/transcoding_sender.h"
#include "test_files.h"

// DCMTK last: its headers define macros.
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcuid.h>

namespace dirgw::senders::transcode {
namespace {

using dirgw::testing::TempDir;

struct Image {
  int rows = 64, columns = 48, samples = 1, frames = 1;
  int bits_allocated = 16, bits_stored = 16, pixel_representation = 0;
  std::string photometric = "MONOCHROME2";
  E_TransferSyntax syntax = EXS_LittleEndianExplicit;
  bool pixels = true;
  bool float_pixels = false;
  // Values written into bits above bits_stored (0: clean, as the standard asks).
  std::uint16_t high_garbage = 0;
  int flip_byte = -1;  // >= 0: that byte of the pixel data gets its low bit flipped
};

// A smooth pattern with noise, within the stored bits (sign-extended when signed).
std::string pixel_bytes(const Image& im) {
  std::mt19937 gen(7);
  const std::size_t n = static_cast<std::size_t>(im.rows) * im.columns * im.samples * im.frames;
  std::string out;
  const long max = (1L << im.bits_stored) - 1;
  for (std::size_t i = 0; i < n; ++i) {
    long v = static_cast<long>((i * 37 / 11) % static_cast<std::size_t>(max + 1)) +
             static_cast<long>(gen() % 5);
    v = std::min(v, max);
    if (im.pixel_representation == 1 && (v & (1L << (im.bits_stored - 1))))
      v -= (1L << im.bits_stored);  // negative
    if (im.bits_allocated == 8) {
      out.push_back(static_cast<char>(v & 0xFF));
    } else {
      auto w = static_cast<std::uint16_t>(v & 0xFFFF);
      if (im.bits_stored < 16 && im.pixel_representation == 0) w |= im.high_garbage;
      out.push_back(static_cast<char>(w & 0xFF));
      out.push_back(static_cast<char>(w >> 8));
    }
  }
  if (out.size() % 2) out.push_back('\0');
  if (im.flip_byte >= 0) out[static_cast<std::size_t>(im.flip_byte)] ^= 1;
  return out;
}

// Writes a Part-10 file for `im` and returns its path; `sop_uid` receives the instance UID.
std::filesystem::path write_image(const TempDir& dir, const std::string& name, const Image& im,
                                  std::string* pixels_out = nullptr) {
  DcmFileFormat ff;
  DcmDataset& ds = *ff.getDataset();
  ds.putAndInsertString(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
  ds.putAndInsertString(DCM_SOPInstanceUID, "1.2.826.0.1.3680043.10.1.99");
  ds.putAndInsertString(DCM_StudyInstanceUID, "1.2.826.0.1.3680043.10.1.1");
  ds.putAndInsertString(DCM_SeriesInstanceUID, "1.2.826.0.1.3680043.10.1.2");
  ds.putAndInsertString(DCM_Modality, "OT");
  ds.putAndInsertUint16(DCM_Rows, static_cast<Uint16>(im.rows));
  ds.putAndInsertUint16(DCM_Columns, static_cast<Uint16>(im.columns));
  ds.putAndInsertUint16(DCM_SamplesPerPixel, static_cast<Uint16>(im.samples));
  ds.putAndInsertString(DCM_PhotometricInterpretation, im.photometric.c_str());
  if (im.samples == 3) ds.putAndInsertUint16(DCM_PlanarConfiguration, 0);
  if (im.frames > 1) ds.putAndInsertString(DCM_NumberOfFrames, std::to_string(im.frames).c_str());
  ds.putAndInsertUint16(DCM_BitsAllocated, static_cast<Uint16>(im.bits_allocated));
  ds.putAndInsertUint16(DCM_BitsStored, static_cast<Uint16>(im.bits_stored));
  ds.putAndInsertUint16(DCM_HighBit, static_cast<Uint16>(im.bits_stored - 1));
  ds.putAndInsertUint16(DCM_PixelRepresentation, static_cast<Uint16>(im.pixel_representation));
  const std::string bytes = pixel_bytes(im);
  if (im.float_pixels) {
    std::vector<Float32> f(bytes.size() / 4 + 1, 1.5f);
    ds.putAndInsertFloat32Array(DCM_FloatPixelData, f.data(), static_cast<unsigned long>(f.size()));
  } else if (im.pixels) {
    if (im.bits_allocated == 8)
      ds.putAndInsertUint8Array(DCM_PixelData, reinterpret_cast<const Uint8*>(bytes.data()),
                                static_cast<unsigned long>(bytes.size()));
    else
      ds.putAndInsertUint16Array(DCM_PixelData, reinterpret_cast<const Uint16*>(bytes.data()),
                                 static_cast<unsigned long>(bytes.size() / 2));
  }
  if (pixels_out != nullptr) *pixels_out = bytes;
  const auto path = dir.path() / name;
  EXPECT_TRUE(ff.saveFile(path.c_str(), im.syntax).good());
  return path;
}

std::string meta_syntax(const std::filesystem::path& p) {
  DcmFileFormat ff;
  if (ff.loadFile(p.c_str()).bad()) return "unreadable";
  OFString ts;
  ff.getMetaInfo()->findAndGetOFString(DCM_TransferSyntaxUID, ts);
  return ts.c_str();
}

std::string sop_instance_uid(const std::filesystem::path& p) {
  DcmFileFormat ff;
  if (ff.loadFile(p.c_str()).bad()) return "unreadable";
  OFString uid;
  ff.getDataset()->findAndGetOFString(DCM_SOPInstanceUID, uid);
  return uid.c_str();
}

class Transcode : public ::testing::Test {
 protected:
  // Transcodes `im` and checks the round trip: a JPEG-LS copy, smaller, same instance, pixels
  // decoded byte for byte identical.
  void expect_round_trip(const Image& im, const std::string& name) {
    std::string pixels;
    const auto original = write_image(dir_, name, im, &pixels);
    const auto before = std::filesystem::file_size(original);
    Attempt a = transcode_jpeg_ls(original, options());
    ASSERT_EQ(a.kind, Attempt::Kind::kTranscoded) << name << ": " << a.reason;
    ASSERT_TRUE(a.copy);
    EXPECT_EQ(a.copy->path.parent_path(), tmp());
    EXPECT_EQ(a.copy->size, std::filesystem::file_size(a.copy->path));
    EXPECT_LT(a.copy->size, before) << name;
    EXPECT_EQ(meta_syntax(a.copy->path), kJpegLsLossless);
    EXPECT_EQ(sop_instance_uid(a.copy->path), "1.2.826.0.1.3680043.10.1.99");
    auto decoded = decoded_pixels_for_test(a.copy->path);
    ASSERT_TRUE(decoded);
    EXPECT_EQ(decoded->size(), pixels.size()) << name;
    EXPECT_TRUE(*decoded == pixels) << name << ": decoded pixels differ";
    EXPECT_EQ(std::filesystem::file_size(original), before);  // the original is never touched
    std::filesystem::remove(a.copy->path);
  }

  Attempt attempt(const Image& im, const std::string& name, Options o) {
    return transcode_jpeg_ls(write_image(dir_, name, im), o);
  }

  std::filesystem::path tmp() const { return dir_.path(); }
  Options options() const { return Options{tmp(), std::uint64_t{64} << 20}; }
  TempDir dir_;
};

TEST_F(Transcode, RoundTripEightBitMonochrome) {
  Image im;
  im.bits_allocated = 8;
  im.bits_stored = 8;
  expect_round_trip(im, "mono8.dcm");
}

TEST_F(Transcode, RoundTripTwelveBitUnsigned) {
  Image im;
  im.bits_stored = 12;
  expect_round_trip(im, "u12.dcm");
}

TEST_F(Transcode, RoundTripSixteenBitUnsigned) {
  Image im;
  expect_round_trip(im, "u16.dcm");
}

TEST_F(Transcode, RoundTripSixteenBitSigned) {
  Image im;
  im.pixel_representation = 1;
  expect_round_trip(im, "s16.dcm");
}

TEST_F(Transcode, RoundTripRgb) {
  Image im;
  im.samples = 3;
  im.photometric = "RGB";
  im.bits_allocated = 8;
  im.bits_stored = 8;
  expect_round_trip(im, "rgb.dcm");
}

TEST_F(Transcode, RoundTripMultiFrame) {
  Image im;
  im.frames = 5;
  im.bits_allocated = 8;
  im.bits_stored = 8;
  expect_round_trip(im, "frames.dcm");
}

TEST_F(Transcode, RoundTripImplicitVrMultiFrameSixteenBit) {
  Image im;
  im.frames = 3;
  im.syntax = EXS_LittleEndianImplicit;
  expect_round_trip(im, "implicit.dcm");
}

// 12 bits stored, sign-extended into 16 bits: the bits above bits stored are part of what must
// come back.
TEST_F(Transcode, RoundTripTwelveBitSigned) {
  Image im;
  im.bits_stored = 12;
  im.pixel_representation = 1;
  expect_round_trip(im, "s12.dcm");
}

// Bits above bits stored hold other data (old overlays). DCMTK's raw encoder keeps them (the
// check below would refuse a copy that lost them).
TEST_F(Transcode, RoundTripKeepsBitsAboveBitsStored) {
  Image im;
  im.bits_stored = 12;
  im.high_garbage = 0x8000;
  expect_round_trip(im, "garbage.dcm");
}

// The check before a copy is offered: a copy of other pixels, or of pixels described otherwise,
// is refused.
TEST_F(Transcode, VerifyRefusesACopyThatDecodesToOtherPixels) {
  Image im;
  const auto a = write_image(dir_, "a.dcm", im);
  Attempt copy = transcode_jpeg_ls(a, options());
  ASSERT_EQ(copy.kind, Attempt::Kind::kTranscoded);
  EXPECT_EQ(verify_copy(copy.copy->path, a), std::nullopt);
  Image other = im;
  other.bits_stored = 12;  // another description
  const auto b = write_image(dir_, "b.dcm", other);
  EXPECT_EQ(verify_copy(copy.copy->path, b), "the decoded copy describes its pixels differently");
  Image changed = im;
  changed.flip_byte = 11;  // same description, one pixel changed
  const auto c = write_image(dir_, "c.dcm", changed);
  EXPECT_EQ(verify_copy(copy.copy->path, c), "the decoded pixels differ from the original's");
  EXPECT_EQ(verify_copy(a, a), "the copy is not JPEG-LS Lossless");
}

TEST_F(Transcode, SkipsBigEndian) {
  Image im;
  im.syntax = EXS_BigEndianExplicit;
  Attempt a = attempt(im, "be.dcm", options());
  EXPECT_EQ(a.kind, Attempt::Kind::kSkipped);
  EXPECT_NE(a.reason.find("1.2.840.10008.1.2.2"), std::string::npos) << a.reason;
}

TEST_F(Transcode, SkipsWhatIsCompressedAlready) {
  Image im;
  const auto original = write_image(dir_, "orig.dcm", im);
  Attempt first = transcode_jpeg_ls(original, options());
  ASSERT_EQ(first.kind, Attempt::Kind::kTranscoded);
  Attempt again = transcode_jpeg_ls(first.copy->path, options());
  EXPECT_EQ(again.kind, Attempt::Kind::kSkipped);
  EXPECT_FALSE(again.copy);
}

TEST_F(Transcode, SkipsNoPixelDataFloatPixelDataAndTooBig) {
  Image none;
  none.pixels = false;
  EXPECT_EQ(attempt(none, "none.dcm", options()).reason, "no pixel data");
  Image flt;
  flt.pixels = false;
  flt.float_pixels = true;
  EXPECT_EQ(attempt(flt, "float.dcm", options()).reason, "float or double pixel data");
  Options small = options();
  small.max_pixel_bytes = 1024;
  Attempt big = attempt(Image{}, "big.dcm", small);
  EXPECT_EQ(big.kind, Attempt::Kind::kSkipped);
  EXPECT_NE(big.reason.find("max_pixel_bytes"), std::string::npos);
  // Nothing left behind in tmp: only the originals written by the test are there.
  for (const auto& e : std::filesystem::directory_iterator(tmp()))
    EXPECT_EQ(e.path().extension(), ".dcm") << e.path();
}

TEST(TranscodeSkipReason, PureRules) {
  PixelFacts f;
  f.transfer_syntax = "1.2.840.10008.1.2.1";
  f.has_pixel_data = true;
  f.rows = 2;
  f.columns = 3;
  f.samples_per_pixel = 1;
  f.bits_allocated = 16;
  f.bits_stored = 12;
  f.high_bit = 11;
  f.photometric = "MONOCHROME2";
  f.pixel_bytes = 12;
  const Options o{"/tmp", 1 << 20};
  EXPECT_EQ(skip_reason(f, o), std::nullopt);
  auto with = [&](auto change) {
    PixelFacts g = f;
    change(g);
    return skip_reason(g, o).has_value();
  };
  EXPECT_TRUE(with([](PixelFacts& g) { g.transfer_syntax = "1.2.840.10008.1.2.4.80"; }));
  EXPECT_TRUE(with([](PixelFacts& g) { g.transfer_syntax = "1.2.840.10008.1.2.1.99"; }));
  EXPECT_TRUE(with([](PixelFacts& g) { g.transfer_syntax = "1.2.840.10008.1.2.2"; }));
  EXPECT_TRUE(with([](PixelFacts& g) { g.bits_allocated = 32; }));
  EXPECT_TRUE(with([](PixelFacts& g) { g.bits_stored = 17; }));
  EXPECT_TRUE(with([](PixelFacts& g) { g.high_bit = 15; }));
  EXPECT_TRUE(with([](PixelFacts& g) { g.photometric = "YBR_FULL_422"; }));
  EXPECT_TRUE(with([](PixelFacts& g) { g.photometric = "RGB"; }));  // RGB with 1 sample
  EXPECT_TRUE(with([](PixelFacts& g) { g.pixel_bytes = 13; }));     // length mismatch
  EXPECT_TRUE(with([](PixelFacts& g) { g.float_pixel_data = true; }));
  EXPECT_TRUE(with([](PixelFacts& g) { g.has_pixel_data = false; }));
  EXPECT_TRUE(with([](PixelFacts& g) { g.pixel_bytes = 12, g.rows = 0; }));
  EXPECT_FALSE(with([](PixelFacts& g) { g.transfer_syntax = "1.2.840.10008.1.2"; }));
}

// Records what it was given (and whether the files existed during the send).
class RecordingSender final : public Sender {
 public:
  Outcome send(const std::vector<Item>& batch, const SendContext&) override {
    seen = batch;
    Outcome out{};
    for (const auto& item : batch) {
      existed.push_back(std::filesystem::exists(item.path));
      out.instances.push_back({item.sop_instance_uid, status, "", original_goes});
    }
    out.kind = OutcomeKind::kOk;
    return out;
  }
  using Sender::send;
  std::vector<Item> seen;
  std::vector<bool> existed;
  InstanceStatus status = InstanceStatus::kAccepted;
  bool original_goes = false;
};

class TranscodingSenderTest : public ::testing::Test {
 protected:
  Item item(const std::string& name, const Image& im) {
    auto p = write_image(dir_, name, im);
    return Item{"1.2.826.0.1.3680043.10.1.99", UID_SecondaryCaptureImageStorage, p,
                std::filesystem::file_size(p)};
  }
  std::unique_ptr<Sender> wrap(RecordingSender*& inner, bool syntax_parameter = true) {
    auto r = std::make_unique<RecordingSender>();
    inner = r.get();
    return make_transcoding_sender(std::move(r), Options{tmp_.path(), 64 << 20, syntax_parameter},
                                   counters_);
  }
  TempDir dir_, tmp_;
  std::shared_ptr<Counters> counters_ = std::make_shared<Counters>();
};

TEST_F(TranscodingSenderTest, OffersTheCopyAndRemovesItAfterTheSend) {
  RecordingSender* inner = nullptr;
  auto sender = wrap(inner);
  Image none;
  none.pixels = false;
  const std::vector<Item> batch = {item("a.dcm", Image{}), item("b.dcm", none)};
  Outcome out = sender->send(batch);
  ASSERT_EQ(inner->seen.size(), 2u);
  const Item& sent = inner->seen[0];
  EXPECT_EQ(sent.transfer_syntax, kJpegLsLossless);
  EXPECT_EQ(sent.original_path, batch[0].path);
  EXPECT_EQ(sent.original_size, batch[0].size);
  EXPECT_EQ(sent.path.parent_path(), tmp_.path());
  EXPECT_LT(sent.size, batch[0].size);
  EXPECT_TRUE(inner->existed[0]);
  EXPECT_FALSE(std::filesystem::exists(sent.path));  // removed after the send
  EXPECT_EQ(inner->seen[1].path, batch[1].path);     // no pixels: as stored
  EXPECT_TRUE(inner->seen[1].transfer_syntax.empty());
  EXPECT_EQ(out.instances.size(), 2u);
  const auto s = snapshot(*counters_);
  EXPECT_EQ(s.transcoded, 1u);
  EXPECT_EQ(s.skipped, 1u);
  EXPECT_EQ(s.verify_failed, 0u);
  EXPECT_EQ(s.original_bytes, batch[0].size);
  EXPECT_EQ(s.sent_bytes, sent.size);
  EXPECT_EQ(s.bytes_saved(), batch[0].size - sent.size);
  EXPECT_TRUE(std::filesystem::is_empty(tmp_.path()));
}

// Without syntax_parameter the copy's STOW-RS part is a plain application/dicom (its meta header
// names the syntax); the DIMSE fallback still has the original.
TEST_F(TranscodingSenderTest, NamesTheSyntaxOnlyWhenAskedTo) {
  RecordingSender* inner = nullptr;
  auto sender = wrap(inner, false);
  const std::vector<Item> batch = {item("a.dcm", Image{})};
  sender->send(batch);
  ASSERT_EQ(inner->seen.size(), 1u);
  EXPECT_TRUE(inner->seen[0].transfer_syntax.empty());
  EXPECT_EQ(inner->seen[0].original_path, batch[0].path);
  EXPECT_NE(inner->seen[0].path, batch[0].path);
  EXPECT_EQ(snapshot(*counters_).transcoded, 1u);
}

TEST_F(TranscodingSenderTest, CountsNothingSavedWhenTheCopyIsNotAcceptedOrTheOriginalWent) {
  RecordingSender* inner = nullptr;
  auto sender = wrap(inner);
  inner->status = InstanceStatus::kRetry;
  sender->send({item("a.dcm", Image{})});
  EXPECT_EQ(snapshot(*counters_).transcoded, 0u);
  EXPECT_EQ(snapshot(*counters_).bytes_saved(), 0u);
  inner->status = InstanceStatus::kAccepted;
  inner->original_goes = true;
  sender->send({item("b.dcm", Image{})});
  EXPECT_EQ(snapshot(*counters_).refused, 1u);
  EXPECT_EQ(snapshot(*counters_).bytes_saved(), 0u);
  EXPECT_TRUE(std::filesystem::is_empty(tmp_.path()));
}

}  // namespace
}  // namespace dirgw::senders::transcode
