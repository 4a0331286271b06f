// libFuzzer target: the DICOM intake path as configured. Untrusted bytes go through the pre-scan
// with the default limits and, only if it passes, through the DCMTK parse that later stages
// (validation, coercion, de-identification) will do: DcmFileFormat::read from a memory buffer
// with a read limit, then the attributes the catalog and policy read, then a write back.
//
// The pre-scan exists because Debian's DCMTK 3.6.7 overflows its stack on deep nesting and
// inflates small deflated datasets without bound; this target checks that nothing the pre-scan
// passes can crash or hang DCMTK, and that DCMTK sees the same object the catalog records:
// the Study, Series and SOP Instance UIDs the pre-scan reported are the ones DCMTK reads.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

// clang-format off
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcdict.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcistrmb.h"
#include "dcmtk/dcmdata/dcostrmb.h"
#include "dcmtk/dcmdata/dcxfer.h"
#include "dcmtk/oflog/oflog.h"
// clang-format on

#include "fuzz_check.h"
#include "ingest/prescan/prescan.h"

namespace {

// Values above this stay unread until asked for (DCMTK's own default, DCM_MaxReadLength).
constexpr Uint32 kMaxReadLength = 4096;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

// The value DCMTK holds for a top-level UI element; false when it is absent or UN.
bool dcmtk_uid(DcmDataset& ds, const DcmTagKey& key, std::string& out) {
  DcmElement* el = nullptr;
  if (ds.findAndGetElement(key, el, OFFalse).bad() || el == nullptr) return false;
  // The pre-scan takes these only with VR UI or UN (in implicit VR, DCMTK's dictionary says UI).
  // DCMTK keeps UN as bytes, not a string (its unknown-VR conversion is off): not compared.
  FUZZ_CHECK(el->ident() == EVR_UI || el->ident() == EVR_UN,
             "DCMTK reads an object UID with a VR other than UI or UN");
  if (el->ident() == EVR_UN) return false;
  char* s = nullptr;
  Uint32 len = 0;
  if (el->getString(s, len).bad() || s == nullptr) {
    out.clear();
    return true;
  }
  out = trim(std::string(s, len));
  return true;
}

// No NUL, space or control character (see the comparison below).
bool plain_uid_bytes(const std::string& s) {
  for (unsigned char c : s)
    if (c <= 0x20 || c == 0x7F) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  // DCMTK logs warnings for most malformed inputs; the fuzzer's output is for findings.
  OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
  FUZZ_CHECK(dcmDataDict.isDictionaryLoaded(), "DCMTK data dictionary not loaded (DCMDICTPATH?)");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto scan = dirgw::ingest::prescan_bytes(bytes, dirgw::ingest::PrescanLimits{});
  if (!scan) return 0;  // refused: DCMTK never sees it

  DcmInputBufferStream in;
  in.setBuffer(data, static_cast<offile_off_t>(size));
  in.setEos();
  DcmFileFormat file;
  file.transferInit();
  OFCondition cond = file.read(in, EXS_Unknown, EGL_noChange, kMaxReadLength);
  file.transferEnd();
  if (cond.bad()) return 0;  // DCMTK refuses something the pre-scan passed: not a crash

  DcmDataset& ds = *file.getDataset();
  // What the catalog recorded must be what DCMTK sees (a disagreement would let an object be
  // catalogued as one instance and sent, coerced or de-identified as another). Left out, as known
  // and documented disagreements (docs/hostile-input.md) that issue 4's validation must close by
  // quarantining UIDs that are not digits and dots: values with a NUL (DCMTK's C strings stop
  // there) and values with spaces or control characters (DcmUniqueIdentifier removes spaces,
  // so "1.2 3" in the catalog is "1.23" to DCMTK).
  struct Pair {
    const DcmTagKey& key;
    const std::string& scanned;
  } pairs[] = {{DCM_StudyInstanceUID, scan->study_uid},
               {DCM_SeriesInstanceUID, scan->series_uid},
               {DCM_SOPInstanceUID, scan->dataset_sop_instance_uid},
               {DCM_SOPClassUID, scan->dataset_sop_class_uid}};
  for (const auto& p : pairs) {
    std::string seen;
    if (!plain_uid_bytes(p.scanned)) continue;
    if (dcmtk_uid(ds, p.key, seen)) {
      FUZZ_CHECK(seen == p.scanned, "DCMTK and the pre-scan read different UIDs");
    }
  }

  // What later stages read and do: every value loaded, strings fetched, the object written back
  // in its own transfer syntax (coercion and de-identification rewrite objects).
  OFString text;
  ds.findAndGetOFStringArray(DCM_PatientID, text);
  ds.findAndGetOFStringArray(DCM_PatientName, text);
  ds.findAndGetOFStringArray(DCM_AccessionNumber, text);
  ds.findAndGetOFStringArray(DCM_SpecificCharacterSet, text);
  ds.loadAllDataIntoMemory();
  const E_TransferSyntax xfer = ds.getOriginalXfer();
  if (xfer != EXS_Unknown && ds.canWriteXfer(xfer)) {
    static Uint8 out[1 << 16];
    DcmOutputBufferStream os(out, sizeof out);
    file.transferInit();
    for (int i = 0; i < 4096; ++i) {  // bounded: a stuck writer is a finding (time-out), not a loop
      cond = file.write(os, xfer, EET_ExplicitLength, nullptr);
      void* buf = nullptr;
      offile_off_t len = 0;
      os.flushBuffer(buf, len);
      if (cond != EC_StreamNotifyClient) break;
    }
    file.transferEnd();
  }
  return 0;
}
