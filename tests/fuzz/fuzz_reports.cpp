// libFuzzer target: the ORU / MDM -> report mapping (gateway/ingest/hl7_mllp/report.h) and the
// DICOM object a report becomes (gateway/ingest/reports/report_object.h), on arbitrary bytes
// taken as one HL7 message. Checks besides crashes, hangs and sanitizer reports:
//   - a refusal's detail is our own words (printable ASCII, never the message's bytes);
//   - an accepted report's text, title and author are valid UTF-8, and it has text or a PDF;
//   - the object built from it (into a fixed synthetic study, whose image is in ISO 8859-1) passes
//     the structural pre-scan, keeps the study's UID and carries the UIDs we gave it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "ingest/hl7_mllp/hl7.h"
#include "ingest/hl7_mllp/report.h"
#include "ingest/prescan/prescan.h"
#include "ingest/reports/report_object.h"

// clang-format off
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcostrmb.h"
#include "dcmtk/dcmdata/dcwcache.h"
// clang-format on

namespace hl7 = dirgw::hl7;
using dirgw::fuzz::printable_ascii;

namespace {

constexpr const char* kStudy = "1.2.826.0.1.3680043.10.1011.1.77";

// One CT image's header (no pixels), Latin-1 patient name: the conversion to UTF-8 runs too.
const std::string& image() {
  static const std::string bytes = [] {
    DcmFileFormat ff;
    DcmDataset& ds = *ff.getDataset();
    ds.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 100");
    ds.putAndInsertString(DCM_SOPClassUID, "1.2.840.10008.5.1.4.1.1.2");
    ds.putAndInsertString(DCM_SOPInstanceUID, "1.2.826.0.1.3680043.10.1011.3.77.1");
    ds.putAndInsertString(DCM_StudyInstanceUID, kStudy);
    ds.putAndInsertString(DCM_SeriesInstanceUID, "1.2.826.0.1.3680043.10.1011.2.77");
    ds.putAndInsertString(DCM_PatientName, "B\xe9langer^Ren\xe9");
    ds.putAndInsertString(DCM_PatientID, "MRN001");
    ds.putAndInsertString(DCM_AccessionNumber, "ACC123");
    ds.putAndInsertString(DCM_Modality, "CT");
    std::string buf(1 << 16, '\0');
    DcmOutputBufferStream os(buf.data(), buf.size());
    ff.transferInit();
    DcmWriteCache cache;
    ff.write(os, EXS_LittleEndianExplicit, EET_ExplicitLength, &cache);
    ff.transferEnd();
    void* p = nullptr;
    offile_off_t n = 0;
    os.flushBuffer(p, n);
    buf.resize(static_cast<std::size_t>(n));
    return buf;
  }();
  return bytes;
}

bool utf8(std::string_view s) { return hl7::hl7_text_to_utf8(s, "UNICODE UTF-8").ok(); }

void exercise_order(const hl7::Message& m, const hl7::ReportConfig& cfg, std::size_t order) {
  auto r = hl7::extract_report(m, cfg, order);
  if (!r) {
    FUZZ_CHECK(printable_ascii(r.error().detail), "report refusal quotes the message");
    return;
  }
  FUZZ_CHECK(hl7::report_order_of(r->message_key) == order,
             "a report's key does not name its order");
  FUZZ_CHECK(!r->text.reveal().empty() || !r->pdf.reveal().empty(), "report without content");
  FUZZ_CHECK(utf8(r->text.reveal()) && utf8(r->title.reveal()) && utf8(r->author.reveal()),
             "report text is not UTF-8");
  FUZZ_CHECK(!r->accession.reveal().empty() && !r->patient_ids.empty(), "report without keys");
  dirgw::reports::ObjectIdentity id;
  id.sop_instance_uid = "2.25.1234";
  id.series_uid = "2.25.5678";
  id.created = "20261203091500";
  id.predecessor_sop_instance = "2.25.99";
  id.predecessor_sop_class = dirgw::reports::kBasicTextSr;
  id.predecessor_series_uid = "2.25.5678";
  auto object = dirgw::reports::report_object_bytes(*r, image(), id);
  if (!object) {
    FUZZ_CHECK(printable_ascii(object.error().detail), "object error quotes the message");
    return;
  }
  auto scan = dirgw::ingest::prescan_bytes(*object, dirgw::ingest::PrescanLimits{});
  FUZZ_CHECK(scan.ok(), "the report object fails the pre-scan");
  FUZZ_CHECK(scan->study_uid == kStudy, "the report object left its study");
  FUZZ_CHECK(scan->dataset_sop_instance_uid == id.sop_instance_uid, "the report's UID changed");
  FUZZ_CHECK(scan->dataset_sop_class_uid == dirgw::reports::report_sop_class(*r),
             "the report's SOP class is not the one announced");
}

// Every order of the message (linked exams), as the report service reads them.
void exercise(const hl7::Message& m, const char* accession_field) {
  hl7::ReportConfig cfg;
  cfg.accession_field = accession_field;
  const std::size_t orders = hl7::report_orders(m);
  for (std::size_t order = 0; order < std::min<std::size_t>(orders, 65); ++order)
    exercise_order(m, cfg, order);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  hl7::ParseLimits limits;
  limits.max_message_bytes = 64 * 1024;
  limits.max_segments = 200;
  limits.max_fields = 100;
  auto parsed =
      hl7::Message::parse(std::string_view(reinterpret_cast<const char*>(data), size), limits);
  if (!parsed) return 0;
  exercise(*parsed, "filler");
  exercise(*parsed, "placer");
  return 0;
}
