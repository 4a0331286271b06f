// File I/O and the report: loading an object (large values stay on disk), the derived file

#include "policy/dicom_encoding.h"
// (new file meta information, the input's transfer syntax and length encoding, Pixel Data
// streamed byte for byte) written durably, and the report's one-line description of a change.
#include "policy/deid/deid.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <random>
#include <string>

#include "common/dcmtk_guard.h"
#include "common/files.h"
#include "dcmtk/config/osconfig.h"  // must come first among the DCMTK headers
#include "dcmtk/dcmdata/dcdatset.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcmetinf.h"
#include "dcmtk/dcmdata/dcostrmf.h"
#include "dcmtk/dcmdata/dcstack.h"
#include "dcmtk/dcmdata/dcwcache.h"

namespace dirgw::policy::deid {

namespace {

constexpr Uint32 kReadLimit = 4096;  // values larger than this stay on disk (Pixel Data above all)
// dirgw's Implementation Class UID for the files it writes (a UUID-derived 2.25 UID, fixed).
constexpr const char* kImplementationClassUid = "2.25.291037474183716587532690612361375866813";
constexpr const char* kImplementationVersion = "DIRGW_DEID_1";

// New file meta information (zero preamble, no source AE, dirgw's implementation) followed by the
// dataset in `xfer`. Values left on disk are streamed from the input through the write cache.
OFCondition write_output(DcmDataset& ds, const std::filesystem::path& path, E_TransferSyntax xfer,
                         E_EncodingType encoding, const std::string& sop_class,
                         const std::string& sop_instance) {
  DcmMetaInfo meta;  // a fresh one: its preamble is 128 zero bytes and "DICM"
  const Uint8 version[2] = {0, 1};
  OFCondition c = meta.putAndInsertUint8Array(DCM_FileMetaInformationVersion, version, 2);
  if (c.good()) c = meta.putAndInsertString(DCM_MediaStorageSOPClassUID, sop_class.c_str());
  if (c.good()) c = meta.putAndInsertString(DCM_MediaStorageSOPInstanceUID, sop_instance.c_str());
  if (c.good()) c = meta.putAndInsertString(DCM_TransferSyntaxUID, DcmXfer(xfer).getXferID());
  if (c.good()) c = meta.putAndInsertString(DCM_ImplementationClassUID, kImplementationClassUid);
  if (c.good()) c = meta.putAndInsertString(DCM_ImplementationVersionName, kImplementationVersion);
  if (c.good()) c = meta.putAndInsertUint32(DCM_FileMetaInformationGroupLength, 0);
  if (c.good()) {
    c = meta.computeGroupLengthAndPadding(EGL_withGL, EPD_noChange, EXS_LittleEndianExplicit,
                                          EET_ExplicitLength);
  }
  if (c.bad()) return c;
  DcmWriteCache cache;
  DcmOutputFileStream stream(OFFilename(path.c_str()));
  c = stream.status();
  if (c.bad()) return c;
  meta.transferInit();
  c = meta.write(stream, EXS_LittleEndianExplicit, EET_ExplicitLength, &cache);
  meta.transferEnd();
  if (c.bad()) return c;
  const Uint32 meta_length = meta.calcElementLength(EXS_LittleEndianExplicit, EET_ExplicitLength);
  ds.transferInit();
  c = ds.write(stream, xfer, encoding, &cache, EGL_recalcGL, EPD_noChange, 0, 0, meta_length);
  ds.transferEnd();
  if (c.bad()) return c;
  stream.flush();
  return stream.status();
}

struct Loaded {
  std::unique_ptr<DcmFileFormat> file;
  E_TransferSyntax xfer = EXS_Unknown;
  E_EncodingType encoding = EET_ExplicitLength;
};

Result<Loaded> load(const std::filesystem::path& in_path) {
  struct stat st {};
  if (::stat(in_path.c_str(), &st) != 0) {
    const int err = errno;
    return make_error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                      "stat object: " + errno_text(err));
  }
  Loaded l;
  l.file = std::make_unique<DcmFileFormat>();
  OFCondition cond = dcmtk_guard([&] {
    return l.file->loadFile(OFFilename(in_path.c_str()), EXS_Unknown, EGL_noChange, kReadLimit);
  });
  if (cond.bad()) {
    return make_error(ErrorCode::kBadDicom, std::string("cannot parse the object: ") + cond.text());
  }
  DcmDataset* ds = l.file->getDataset();
  if (ds == nullptr) return make_error(ErrorCode::kInternal, "DCMTK returned no dataset");
  l.xfer = ds->getOriginalXfer();
  l.encoding = input_encoding(*ds);
  return l;
}

Result<DeidReport> screen_and_run(DcmDataset& ds, const DeidOptions& options, const Key& key) {
  if (auto r = check_options(options); !r) return r.error();
  const Decision d = screen_dataset(ds, options);
  if (!d.accepted()) {
    std::string why = "refused for a de-identifying destination:";
    for (const std::string& r : d.reasons) why += " " + r;
    return make_error(ErrorCode::kRefused, why);
  }
  return deidentify_dataset(ds, options, key);
}

}  // namespace

std::string describe(const DeidChange& c) {
  std::string line = c.path + " " + c.action;
  if (!c.rule.empty()) line += " [" + c.rule + "]";
  if (!c.old_identifying || !c.new_identifying) {
    line += " " + (c.old_identifying ? std::string("<identifying>") : "'" + c.old_value + "'");
    line += " -> ";
    line += c.action == 'X'     ? std::string("<removed>")
            : c.new_identifying ? std::string("<identifying>")
                                : "'" + c.new_value + "'";
  }
  return line;
}

Result<DeidReport> preview_file(const std::filesystem::path& in_path, const DeidOptions& options,
                                const Key& key) {
  Result<Loaded> l = load(in_path);
  if (!l) return l.error();
  return screen_and_run(*l->file->getDataset(), options, key);
}

Result<DeidReport> deidentify_file(const std::filesystem::path& in_path,
                                   const std::filesystem::path& out_path,
                                   const DeidOptions& options, const Key& key) {
  std::error_code ec;
  if (std::filesystem::equivalent(in_path, out_path, ec) ||
      std::filesystem::weakly_canonical(in_path, ec) ==
          std::filesystem::weakly_canonical(out_path, ec)) {
    return make_error(ErrorCode::kInvalidArgument, "de-identification never writes over its input");
  }
  Result<Loaded> l = load(in_path);
  if (!l) return l.error();
  DcmDataset& ds = *l->file->getDataset();
  Result<DeidReport> report = screen_and_run(ds, options, key);
  if (!report) return report;
  if (report->sop_class_uid.empty() || report->sop_instance_uid.empty()) {
    return make_error(ErrorCode::kBadDicom, "the object has no SOP Class or SOP Instance UID");
  }

  auto written = write_durably_via(
      out_path, "de-identified object", [&](const std::filesystem::path& tmp) -> Result<void> {
        OFCondition c = write_output(ds, tmp, l->xfer, l->encoding, report->sop_class_uid,
                                     report->sop_instance_uid);
        if (c.bad())
          return make_error(ErrorCode::kIo,
                            std::string("cannot write the de-identified object: ") + c.text());
        return {};
      });
  if (!written) return written.error();
  return report;
}

}  // namespace dirgw::policy::deid
