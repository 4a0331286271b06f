// Issue 17, item 3: Explicit VR Big Endian per destination. See byte_order.h.
#include "policy/stage/byte_order.h"

#include <cstring>

#include "common/dcmtk_guard.h"
#include "common/file_meta.h"
#include "common/files.h"
#include "dcmtk/config/osconfig.h"  // must come first among the DCMTK headers
#include "dcmtk/dcmdata/dcdatset.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcmetinf.h"
#include "dcmtk/dcmdata/dcxfer.h"
#include "policy/dicom_encoding.h"

namespace dirgw::policy {

namespace {

Result<void> load(DcmFileFormat& ff, const std::filesystem::path& file, E_FileReadMode mode) {
  const OFCondition c = dcmtk_guard([&] {
    return ff.loadFile(OFFilename(file.c_str()), EXS_Unknown, EGL_noChange, DCM_MaxReadLength,
                       mode);
  });
  if (c.bad()) return make_error(ErrorCode::kBadDicom, std::string("cannot parse: ") + c.text());
  return {};
}

// The pixel data's values as host-order words (OW) or bytes; empty when there is none.
Result<std::string> pixel_values(DcmDataset& ds) {
  DcmElement* e = nullptr;
  if (ds.findAndGetElement(DCM_PixelData, e).bad() || e == nullptr) return std::string();
  if (e->ident() == EVR_OW) {
    Uint16* words = nullptr;
    if (e->getUint16Array(words).bad()) return make_error(ErrorCode::kBadDicom, "pixel data");
    const auto n = e->getLength();
    return words == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(words), n);
  }
  Uint8* bytes = nullptr;
  if (e->getUint8Array(bytes).bad()) return make_error(ErrorCode::kBadDicom, "pixel data");
  const auto n = e->getLength();
  return bytes == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(bytes), n);
}

std::string sop_instance_of(DcmDataset& ds) {
  OFString uid;
  ds.findAndGetOFString(DCM_SOPInstanceUID, uid);
  return uid.c_str();
}

}  // namespace

Result<std::string> transfer_syntax_of(const std::filesystem::path& file) {
  // Every spool file has a Part-10 meta group (the folder intake writes one for a bare data
  // set): read it directly; DCMTK's reading is the fallback for anything the walker refuses.
  if (auto meta = read_file_meta(file)) return std::move(meta->transfer_syntax);
  DcmFileFormat ff;
  if (auto r = load(ff, file, ERM_metaOnly); !r) return r.error();
  OFString ts;
  if (ff.getMetaInfo() == nullptr ||
      ff.getMetaInfo()->findAndGetOFString(DCM_TransferSyntaxUID, ts).bad())
    return make_error(ErrorCode::kBadDicom, "no transfer syntax in the meta header");
  return std::string(ts.c_str());
}

Result<void> convert_to_little_endian(const std::filesystem::path& input,
                                      const std::filesystem::path& output) {
  DcmFileFormat original;
  if (auto r = load(original, input, ERM_autoDetect); !r) return r.error();
  DcmDataset* ds = original.getDataset();
  if (ds == nullptr || ds->getOriginalXfer() != EXS_BigEndianExplicit)
    return make_error(ErrorCode::kBadDicom, "not Explicit VR Big Endian");
  if (auto loaded = dcmtk_guard([&] { return ds->loadAllDataIntoMemory(); }); loaded.bad())
    return make_error(ErrorCode::kBadDicom, std::string("cannot read: ") + loaded.text());
  auto before = pixel_values(*ds);
  if (!before) return before.error();
  const std::string uid = sop_instance_of(*ds);
  const E_EncodingType encoding = input_encoding(*ds);
  auto written = write_durably_via(
      output, "converted object", [&](const std::filesystem::path& tmp) -> Result<void> {
        // The meta header follows the new syntax (EWM_fileformat updates (0002,0010)).
        const OFCondition c =
            original.saveFile(OFFilename(tmp.c_str()), EXS_LittleEndianExplicit, encoding,
                              EGL_recalcGL, EPD_noChange, 0, 0, EWM_fileformat);
        if (c.bad())
          return make_error(ErrorCode::kIo, std::string("cannot write the copy: ") + c.text());
        return {};
      });
  if (!written) return written.error();
  // Lossless or nothing: the copy, read back, must hold the same pixel values and identity.
  DcmFileFormat copy;
  if (auto r = load(copy, output, ERM_autoDetect); !r) return r.error();
  DcmDataset* cds = copy.getDataset();
  if (cds == nullptr || cds->getOriginalXfer() != EXS_LittleEndianExplicit)
    return make_error(ErrorCode::kBadDicom, "the copy is not Explicit VR Little Endian");
  auto after = pixel_values(*cds);
  if (!after) return after.error();
  if (*after != *before || sop_instance_of(*cds) != uid)
    return make_error(ErrorCode::kBadDicom, "the converted copy differs from the original");
  return {};
}

ByteOrderCopy byte_order_copy(const std::string& mode, const std::string& destination,
                              const std::filesystem::path& input, std::int64_t instance_id,
                              const std::string& sop_instance_uid, const ingest::Spool& spool) {
  ByteOrderCopy out;
  if (mode != "convert" && mode != "refuse") return out;
  auto ts = transfer_syntax_of(input);
  if (!ts || *ts != kExplicitVrBigEndianUid) return out;  // unreadable: validation says so
  if (mode == "refuse") {
    out.refused =
        "Explicit VR Big Endian (retired) refused for this destination (big_endian: "
        "refuse)";
    return out;
  }
  const auto tmp = spool.new_temp_path();
  auto converted = convert_to_little_endian(input, tmp);
  if (!converted) {
    spool.discard_temp(tmp);
    out.refused =
        "Explicit VR Big Endian could not be converted losslessly: " + converted.error().detail;
    return out;
  }
  auto stored = spool.commit_derived(tmp);
  spool.discard_temp(tmp);
  if (!stored) {
    out.refused = "the converted copy could not be stored: " + stored.error().to_string();
    return out;
  }
  out.derived = catalog::DerivedObject{instance_id,  destination, stored->sha256,
                                       stored->size, "converted", sop_instance_uid};
  return out;
}

}  // namespace dirgw::policy
