#include "senders/transcode/decompress.h"

#include <unistd.h>

#include <mutex>
#include <new>
#include <system_error>

// clang-format off
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcrledrg.h"
#include "dcmtk/dcmdata/dcxfer.h"
#include "dcmtk/dcmjpeg/djdecode.h"
#include "dcmtk/dcmjpls/djdecode.h"
// clang-format on

#include "common/dcmtk_guard.h"
#include "senders/transcode/jpeg2000.h"

namespace dirgw::senders::transcode {

namespace {

// DCMTK's codec list is process-wide: the decoders are registered once and never deregistered.
// JPEG-LS may already be registered by the transcoder, with the same parameters (the first
// registration wins). The SOP Instance UID is never replaced (the catalog, the C-STORE request
// and verification know the object by it); colour JPEG is converted as its Photometric
// Interpretation says, as dcmdjpeg does.
void register_decoders_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    DJDecoderRegistration::registerCodecs(EDC_photometricInterpretation, EUC_never);
    DJLSDecoderRegistration::registerCodecs(EJLSUC_never, EJLSPC_restore);
    DcmRLEDecoderRegistration::registerCodecs(/*pCreateSOPInstanceUID=*/OFFalse);
  });
}

// The size of the dataset's pixel data once decompressed, from its Image Pixel module.
std::uint64_t decompressed_pixel_bytes(DcmDataset& ds) {
  Uint16 rows = 0, columns = 0, samples = 1, bits = 16;
  Sint32 frames = 1;
  ds.findAndGetUint16(DCM_Rows, rows);
  ds.findAndGetUint16(DCM_Columns, columns);
  ds.findAndGetUint16(DCM_SamplesPerPixel, samples);
  ds.findAndGetUint16(DCM_BitsAllocated, bits);
  if (ds.findAndGetSint32(DCM_NumberOfFrames, frames).bad() || frames < 1) frames = 1;
  return std::uint64_t{rows} * columns * samples * static_cast<std::uint64_t>(frames) *
         ((bits + 7u) / 8u);
}

}  // namespace

std::optional<std::string> decompress_dataset(DcmDataset& ds, const std::string& target_syntax) {
  const std::uint64_t bytes = decompressed_pixel_bytes(ds);
  if (bytes > kMaxDecompressedBytes)
    return "not decompressed: its pixel data would take " + std::to_string(bytes >> 20) +
           " MiB, more than " + std::to_string(kMaxDecompressedBytes >> 20) + " MiB";
  register_decoders_once();
  // JPEG 2000: DCMTK has no decoder; OpenJPEG's replaces the pixel data (jpeg2000.h).
  if (is_jpeg2000_syntax(DcmXfer(ds.getOriginalXfer()).getXferID()))
    if (auto why = decode_jpeg2000(ds)) return "OpenJPEG could not decompress it: " + *why;
  const E_TransferSyntax xfer = DcmXfer(target_syntax.c_str()).getXfer();
  const OFCondition cond = dcmtk_guard([&] { return ds.chooseRepresentation(xfer, nullptr); });
  if (cond.bad() || !ds.canWriteXfer(xfer))
    return std::string("DCMTK could not decompress it: ") +
           (cond.bad() ? cond.text() : "no decoder took it");
  return std::nullopt;
}

Attempt decompress_file(const std::filesystem::path& original, const std::string& target_syntax,
                        const std::filesystem::path& copy) {
  const E_TransferSyntax xfer = DcmXfer(target_syntax.c_str()).getXfer();
  if (xfer == EXS_Unknown || DcmXfer(xfer).isEncapsulated())
    return {Attempt::Kind::kError, "not a native transfer syntax: " + target_syntax, std::nullopt};
  try {
    DcmFileFormat ff;
    OFCondition cond = dcmtk_guard([&] {
      return ff.loadFile(original.c_str(), EXS_Unknown, EGL_noChange, 4096, ERM_autoDetect);
    });
    if (cond.bad())
      return {Attempt::Kind::kError,
              std::string("DCMTK cannot read the spool file for decompression: ") + cond.text(),
              std::nullopt};
    if (auto why = decompress_dataset(*ff.getDataset(), target_syntax))
      return {Attempt::Kind::kSkipped, *why, std::nullopt};
    cond = dcmtk_guard([&] {
      return ff.saveFile(copy.c_str(), xfer, EET_ExplicitLength, EGL_recalcGL, EPD_noChange, 0, 0,
                         EWM_updateMeta);
    });
    std::error_code ec;
    const auto size = std::filesystem::file_size(copy, ec);
    if (cond.bad() || ec) {
      ::unlink(copy.c_str());
      return {Attempt::Kind::kError,
              std::string("cannot write the decompressed copy: ") +
                  (cond.bad() ? cond.text() : ec.message()),
              std::nullopt};
    }
    return {Attempt::Kind::kTranscoded, "", Transcoded{copy, size}};
  } catch (const std::bad_alloc&) {
    return {Attempt::Kind::kError, "out of memory", std::nullopt};
  }
}

}  // namespace dirgw::senders::transcode
