#include "senders/transcode/jpeg_ls.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <new>

#include "common/crypto.h"
#include "common/dcmtk_guard.h"

// DCMTK last: its headers define macros.
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/dcmjpls/djencode.h>
#include <dcmtk/dcmjpls/djrparam.h>

namespace dirgw::senders::transcode {

namespace {

// DCMTK's codec list is process-wide: register the JPEG-LS codecs once, never deregister (other
// threads may be encoding). Raw (not "cooked") encoding takes the stored sample values as they
// are, without DicomImage's modality transforms; SOP Instance UIDs are never replaced.
void register_codecs_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    DJLSEncoderRegistration::registerCodecs(0, 0, 0, 0, /*preferCookedEncoding=*/OFFalse,
                                            /*fragmentSize=*/0, /*createOffsetTable=*/OFTrue,
                                            EJLSUC_never, /*convertToSC=*/OFFalse);
    DJLSDecoderRegistration::registerCodecs(EJLSUC_never, EJLSPC_restore);
  });
}

// Values over 4 KiB (Pixel Data) stay in the file until something needs them.
constexpr Uint32 kMaxReadLength = 4096;

long long_of(DcmDataset& ds, const DcmTagKey& tag, long fallback) {
  Uint16 u = 0;
  if (ds.findAndGetUint16(tag, u).good()) return u;
  Sint32 s = 0;
  if (ds.findAndGetSint32(tag, s).good()) return s;  // Number of Frames is IS
  return fallback;
}

std::string string_of(DcmDataset& ds, const DcmTagKey& tag) {
  OFString v;
  if (ds.findAndGetOFStringArray(tag, v).bad()) return {};
  return v.c_str();
}

PixelFacts facts_of(DcmDataset& ds) {
  PixelFacts f;
  f.transfer_syntax = DcmXfer(ds.getOriginalXfer()).getXferID();
  DcmElement* pixels = nullptr;
  f.has_pixel_data = ds.findAndGetElement(DCM_PixelData, pixels).good() && pixels != nullptr;
  if (f.has_pixel_data) f.pixel_bytes = pixels->getLength();
  f.float_pixel_data = ds.tagExists(DCM_FloatPixelData) || ds.tagExists(DCM_DoubleFloatPixelData);
  f.rows = long_of(ds, DCM_Rows, 0);
  f.columns = long_of(ds, DCM_Columns, 0);
  f.samples_per_pixel = long_of(ds, DCM_SamplesPerPixel, 0);
  f.frames = long_of(ds, DCM_NumberOfFrames, 1);
  f.bits_allocated = long_of(ds, DCM_BitsAllocated, 0);
  f.bits_stored = long_of(ds, DCM_BitsStored, 0);
  f.high_bit = long_of(ds, DCM_HighBit, 0);
  f.pixel_representation = long_of(ds, DCM_PixelRepresentation, 0);
  f.photometric = string_of(ds, DCM_PhotometricInterpretation);
  return f;
}

// The attributes that say how to read the pixel bytes: the decoded copy must say the same.
const DcmTagKey kDescription[] = {DCM_SOPInstanceUID,
                                  DCM_Rows,
                                  DCM_Columns,
                                  DCM_SamplesPerPixel,
                                  DCM_BitsAllocated,
                                  DCM_BitsStored,
                                  DCM_HighBit,
                                  DCM_PixelRepresentation,
                                  DCM_PhotometricInterpretation,
                                  DCM_PlanarConfiguration,
                                  DCM_NumberOfFrames};

std::string description_of(DcmDataset& ds) {
  std::string out;
  for (const DcmTagKey& tag : kDescription) {
    OFString v;
    if (ds.findAndGetOFStringArray(tag, v).good()) out += v.c_str();
    out += '\\';
  }
  return out;
}

// The native pixel bytes of a data set in memory (loaded from its file if need be).
std::optional<std::string> pixel_bytes(DcmDataset& ds) {
  DcmElement* e = nullptr;
  if (ds.findAndGetElement(DCM_PixelData, e).bad() || e == nullptr) return std::nullopt;
  Uint8* data = nullptr;
  if (e->getUint8Array(data).bad() || (data == nullptr && e->getLength() > 0)) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(data), e->getLength());
}

// Same length and bytes. Both data sets are native (unencapsulated) in memory.
bool same_pixels(DcmDataset& original, DcmDataset& decoded) {
  DcmElement* a = nullptr;
  DcmElement* b = nullptr;
  if (original.findAndGetElement(DCM_PixelData, a).bad() ||
      decoded.findAndGetElement(DCM_PixelData, b).bad() || a == nullptr || b == nullptr)
    return false;
  if (a->getLength() != b->getLength()) return false;
  Uint8* x = nullptr;
  Uint8* y = nullptr;
  if (a->getUint8Array(x).bad() || b->getUint8Array(y).bad() || x == nullptr || y == nullptr)
    return false;
  return std::memcmp(x, y, a->getLength()) == 0;
}

Attempt skipped(std::string why) { return {Attempt::Kind::kSkipped, std::move(why), std::nullopt}; }
Attempt failed(Attempt::Kind kind, std::string why, const std::filesystem::path& copy) {
  ::unlink(copy.c_str());
  return {kind, std::move(why), std::nullopt};
}

// Loads `copy`, decodes it to Explicit VR Little Endian and compares its pixel bytes and their
// description with the original's, read again from its file: what DCMTK kept in memory of the
// encoded data set is not what we check against.
std::optional<std::string> verify(const std::filesystem::path& copy,
                                  const std::filesystem::path& original) {
  DcmFileFormat decoded;
  if (dcmtk_guard([&] { return decoded.loadFile(copy.c_str()); }).bad())
    return "the copy does not load";
  DcmDataset& ds = *decoded.getDataset();
  if (ds.getOriginalXfer() != EXS_JPEGLSLossless) return "the copy is not JPEG-LS Lossless";
  if (dcmtk_guard([&] { return ds.chooseRepresentation(EXS_LittleEndianExplicit, nullptr); }).bad())
    return "the copy does not decode";
  ds.removeAllButCurrentRepresentations();  // the compressed fragments are no longer needed
  DcmFileFormat stored;
  if (dcmtk_guard([&] {
        return stored.loadFile(original.c_str(), EXS_Unknown, EGL_noChange, kMaxReadLength);
      }).bad())
    return "the original does not load again";
  DcmDataset& os = *stored.getDataset();
  if (description_of(ds) != description_of(os))
    return "the decoded copy describes its pixels differently";
  if (!same_pixels(os, ds)) return "the decoded pixels differ from the original's";
  return std::nullopt;
}

// Encodes the loaded original and writes the copy; the data set is released before verify()
// (peak memory: the original and its compressed form, then the decoded copy and the original).
Attempt encode(std::unique_ptr<DcmFileFormat> ff, const std::filesystem::path& original,
               const std::filesystem::path& copy) {
  DcmDataset& ds = *ff->getDataset();
  const std::string before = description_of(ds);
  DJLSRepresentationParameter lossless(0, OFTrue);
  if (dcmtk_guard([&] { return ds.chooseRepresentation(EXS_JPEGLSLossless, &lossless); }).bad() ||
      !ds.canWriteXfer(EXS_JPEGLSLossless))
    return skipped("the JPEG-LS codec cannot encode these pixels losslessly");
  if (description_of(ds) != before)
    return skipped("the JPEG-LS codec would change the pixel description");
  const OFCondition saved =
      ff->saveFile(copy.c_str(), EXS_JPEGLSLossless, EET_ExplicitLength, EGL_recalcGL);
  ff.reset();
  if (saved.bad())
    return failed(Attempt::Kind::kError, std::string("cannot write the copy: ") + saved.text(),
                  copy);
  if (auto bad = verify(copy, original)) return failed(Attempt::Kind::kVerifyFailed, *bad, copy);
  struct stat st {};
  if (::stat(copy.c_str(), &st) != 0)
    return failed(Attempt::Kind::kError, "the copy vanished", copy);
  return {Attempt::Kind::kTranscoded, "", Transcoded{copy, static_cast<std::uint64_t>(st.st_size)}};
}

}  // namespace

std::optional<std::string> skip_reason(const PixelFacts& f, const Options& options) {
  // Implicit and Explicit VR Little Endian only: an encapsulated object is compressed already,
  // a deflated one too, and big endian is retired (its bytes would be re-ordered).
  if (f.transfer_syntax != "1.2.840.10008.1.2" && f.transfer_syntax != "1.2.840.10008.1.2.1")
    return "stored as " + f.transfer_syntax + ", not Implicit or Explicit VR Little Endian";
  if (f.float_pixel_data) return "float or double pixel data";
  if (!f.has_pixel_data) return "no pixel data";
  if (f.pixel_bytes > options.max_pixel_bytes)
    return "pixel data of " + std::to_string(f.pixel_bytes) + " bytes is over max_pixel_bytes";
  if (f.bits_allocated != 8 && f.bits_allocated != 16)
    return "bits allocated " + std::to_string(f.bits_allocated) + " (JPEG-LS takes 8 or 16)";
  if (f.bits_stored < 2 || f.bits_stored > f.bits_allocated || f.high_bit != f.bits_stored - 1)
    return "bits stored " + std::to_string(f.bits_stored) + " / high bit " +
           std::to_string(f.high_bit) + " not supported";
  if (f.samples_per_pixel != 1 && f.samples_per_pixel != 3)
    return "samples per pixel " + std::to_string(f.samples_per_pixel);
  const bool mono = f.photometric == "MONOCHROME1" || f.photometric == "MONOCHROME2" ||
                    f.photometric == "PALETTE COLOR";
  const bool color = f.photometric == "RGB" || f.photometric == "YBR_FULL";
  if (!(mono && f.samples_per_pixel == 1) && !(color && f.samples_per_pixel == 3))
    return "photometric interpretation " + f.photometric + " with " +
           std::to_string(f.samples_per_pixel) + " samples";
  if (f.rows <= 0 || f.columns <= 0 || f.frames <= 0) return "no rows, columns or frames";
  const std::uint64_t expected =
      static_cast<std::uint64_t>(f.rows) * static_cast<std::uint64_t>(f.columns) *
      static_cast<std::uint64_t>(f.samples_per_pixel) * static_cast<std::uint64_t>(f.frames) *
      static_cast<std::uint64_t>(f.bits_allocated / 8);
  if (f.pixel_bytes != expected && f.pixel_bytes != expected + (expected % 2))
    return "pixel data length does not match rows x columns x samples x frames";
  return std::nullopt;
}

Attempt transcode_jpeg_ls(const std::filesystem::path& original, const Options& options) {
  // A random name: never a value from the object (DESIGN.md).
  return transcode_jpeg_ls(original, options, options.tmp_dir / (random_hex(16) + ".jls.part"));
}

Attempt transcode_jpeg_ls(const std::filesystem::path& original, const Options& options,
                          const std::filesystem::path& copy) {
  register_codecs_once();
  try {
    auto ff = std::make_unique<DcmFileFormat>();
    const OFCondition loaded = dcmtk_guard(
        [&] { return ff->loadFile(original.c_str(), EXS_Unknown, EGL_noChange, kMaxReadLength); });
    if (loaded.bad())
      return {Attempt::Kind::kError, std::string("cannot read the object: ") + loaded.text(),
              std::nullopt};
    if (auto why = skip_reason(facts_of(*ff->getDataset()), options)) return skipped(*why);
    return encode(std::move(ff), original, copy);
  } catch (const std::bad_alloc&) {
    return {Attempt::Kind::kError, "out of memory", std::nullopt};
  }
}

std::optional<std::string> verify_copy(const std::filesystem::path& copy,
                                       const std::filesystem::path& original) {
  register_codecs_once();
  try {
    return verify(copy, original);
  } catch (const std::bad_alloc&) {
    return "out of memory";
  }
}

std::optional<std::string> decoded_pixels_for_test(const std::filesystem::path& file) {
  register_codecs_once();
  DcmFileFormat ff;
  if (dcmtk_guard([&] { return ff.loadFile(file.c_str()); }).bad()) return std::nullopt;
  DcmDataset& ds = *ff.getDataset();
  if (dcmtk_guard([&] { return ds.chooseRepresentation(EXS_LittleEndianExplicit, nullptr); }).bad())
    return std::nullopt;
  return pixel_bytes(ds);
}

}  // namespace dirgw::senders::transcode
