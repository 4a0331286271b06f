#include "ingest/reports/report_object.h"

#include <memory>

// clang-format off
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcistrmb.h"
#include "dcmtk/dcmdata/dcostrmb.h"
#include "dcmtk/dcmdata/dcwcache.h"
#include "dcmtk/dcmsr/dsrdoc.h"
// clang-format on

#include "common/dcmtk_guard.h"

namespace dirgw::reports {

namespace {

// Patient and study attributes copied from the study's image (what the repository files by).
const DcmTagKey kCopied[] = {DCM_PatientName,
                             DCM_PatientID,
                             DCM_IssuerOfPatientID,
                             DCM_IssuerOfPatientIDQualifiersSequence,
                             DCM_PatientBirthDate,
                             DCM_PatientSex,
                             DCM_OtherPatientIDsSequence,
                             DCM_StudyInstanceUID,
                             DCM_StudyDate,
                             DCM_StudyTime,
                             DCM_AccessionNumber,
                             DCM_IssuerOfAccessionNumberSequence,
                             DCM_ReferringPhysicianName,
                             DCM_StudyID,
                             DCM_StudyDescription};

Error bad(const std::string& what, const OFCondition& c = EC_Normal) {
  return make_error(ErrorCode::kBadDicom, c.bad() ? what + ": " + c.text() : what);
}

// The copied attributes, in UTF-8 (the report object's one character set).
Result<std::unique_ptr<DcmDataset>> study_attributes(DcmDataset& image) {
  auto out = std::make_unique<DcmDataset>();
  for (const auto& tag : kCopied) {
    DcmElement* e = nullptr;
    if (image.findAndGetElement(tag, e).good() && e != nullptr)
      out->insert(dynamic_cast<DcmElement*>(e->clone()), true);
  }
  OFString study;
  if (out->findAndGetOFString(DCM_StudyInstanceUID, study).bad() || study.empty())
    return bad("the study's image has no Study Instance UID");
  OFString charset;
  if (image.findAndGetOFStringArray(DCM_SpecificCharacterSet, charset).good() && !charset.empty() &&
      charset != "ISO_IR 192") {
    out->putAndInsertOFStringArray(DCM_SpecificCharacterSet, charset);
    if (auto c = out->convertToUTF8(); c.bad())
      return bad("cannot convert the image's character set to UTF-8", c);
  }
  out->findAndDeleteElement(DCM_SpecificCharacterSet);
  return out;
}

// DICOM DA and TM of a DT "YYYYMMDDHHMMSS" (shorter forms padded).
std::pair<std::string, std::string> date_time(std::string dt) {
  if (dt.size() < 8) dt = "19700101";
  dt.resize(14, '0');
  return {dt.substr(0, 8), dt.substr(8, 6)};
}

Result<void> build_sr(const hl7::Report& r, const std::string& study_uid, const ObjectIdentity& id,
                      DcmDataset& out) {
  DSRDocument doc(DSRTypes::DT_BasicTextSR);
  doc.setSpecificCharacterSetType(DSRTypes::CS_UTF8);
  if (auto c = doc.createNewSeriesInStudy(study_uid.c_str()); c.bad())
    return bad("SR study reference", c);
  auto& tree = doc.getTree();
  if (tree.addContentItem(DSRTypes::RT_isRoot, DSRTypes::VT_Container) == 0)
    return bad("SR root container");
  tree.getCurrentContentItem().setConceptName(
      DSRCodedEntryValue("18748-4", "LN", "Diagnostic imaging report"));
  DSRTypes::E_AddMode mode = DSRTypes::AM_belowCurrent;
  if (!r.author.reveal().empty()) {
    tree.addContentItem(DSRTypes::RT_hasObsContext, DSRTypes::VT_Code, mode);
    tree.getCurrentContentItem().setConceptName(
        DSRCodedEntryValue("121005", "DCM", "Observer Type"));
    tree.getCurrentContentItem().setCodeValue(DSRCodedEntryValue("121006", "DCM", "Person"));
    tree.addContentItem(DSRTypes::RT_hasObsContext, DSRTypes::VT_PName, DSRTypes::AM_afterCurrent);
    tree.getCurrentContentItem().setConceptName(
        DSRCodedEntryValue("121008", "DCM", "Person Observer Name"));
    if (tree.getCurrentContentItem().setStringValue(r.author.reveal().c_str(), false).bad())
      return bad("SR author");
    mode = DSRTypes::AM_afterCurrent;
  }
  if (tree.addContentItem(DSRTypes::RT_contains, DSRTypes::VT_Text, mode) == 0)
    return bad("SR text item");
  tree.getCurrentContentItem().setConceptName(DSRCodedEntryValue("121070", "DCM", "Findings"));
  if (auto c = tree.getCurrentContentItem().setStringValue(r.text.reveal().c_str(), false); c.bad())
    return bad("SR text", c);
  if (!r.observation_time.empty())
    tree.getCurrentContentItem().setObservationDateTime(r.observation_time.c_str());
  doc.setPreliminaryFlag(r.status == hl7::ReportStatus::kPreliminary ? DSRTypes::PF_Preliminary
                                                                     : DSRTypes::PF_Final);
  if (r.status != hl7::ReportStatus::kPreliminary) {
    doc.completeDocument();
    // Verified by its author; a report that names none stays UNVERIFIED (complete, but no one
    // is invented as its verifying observer).
    const std::string org = r.facility.empty() ? "UNKNOWN" : r.facility.substr(0, 64);
    if (!r.author.reveal().empty())
      if (auto c = doc.verifyDocument(r.author.reveal().c_str(), org.c_str(), id.created.c_str());
          c.bad())
        return bad("SR verification", c);
  }
  if (!id.predecessor_sop_instance.empty())
    doc.getPredecessorDocuments().addItem(study_uid.c_str(), id.predecessor_series_uid.c_str(),
                                          id.predecessor_sop_class.c_str(),
                                          id.predecessor_sop_instance.c_str());
  if (auto c = doc.write(out); c.bad()) return bad("SR document", c);
  out.putAndInsertString(DCM_Modality, "SR");
  return {};
}

void build_pdf(const hl7::Report& r, DcmDataset& out) {
  out.putAndInsertString(DCM_SOPClassUID, kEncapsulatedPdf);
  out.putAndInsertString(DCM_Modality, "DOC");
  out.putAndInsertString(DCM_ConversionType, "WSD");
  out.putAndInsertString(DCM_Manufacturer, "");
  out.putAndInsertString(DCM_BurnedInAnnotation, "YES");
  const std::string title = r.title.reveal().empty() ? "Report" : r.title.reveal();
  out.putAndInsertString(DCM_DocumentTitle, title.substr(0, 64).c_str());
  out.insertEmptyElement(DCM_ConceptNameCodeSequence);
  out.putAndInsertString(DCM_MIMETypeOfEncapsulatedDocument, "application/pdf");
  const std::string& pdf = r.pdf.reveal();
  // OB values have even length: a PDF of odd length gets a trailing NUL (PS3.3 A.45.1.4.1).
  std::string padded = pdf;
  if (padded.size() % 2 != 0) padded.push_back('\0');
  out.putAndInsertUint8Array(DCM_EncapsulatedDocument,
                             reinterpret_cast<const Uint8*>(padded.data()),
                             static_cast<unsigned long>(padded.size()));
  out.putAndInsertUint32(DCM_EncapsulatedDocumentLength, static_cast<Uint32>(pdf.size()));
}

// Builds the whole object into `ff` from the image's dataset.
Result<void> build(const hl7::Report& r, DcmDataset& image, const ObjectIdentity& id,
                   DcmFileFormat& ff) {
  auto copied = study_attributes(image);
  if (!copied) return copied.error();
  OFString study;
  (*copied)->findAndGetOFString(DCM_StudyInstanceUID, study);
  DcmDataset& ds = *ff.getDataset();
  if (r.pdf.reveal().empty()) {
    if (auto b = build_sr(r, study.c_str(), id, ds); !b) return b;
  } else {
    build_pdf(r, ds);
  }
  for (unsigned long i = 0; i < (*copied)->card(); ++i)
    ds.insert(dynamic_cast<DcmElement*>((*copied)->getElement(i)->clone()), true);
  const auto [created_date, created_time] = date_time(id.created);
  const auto [content_date, content_time] =
      date_time(r.observation_time.empty() ? id.created : r.observation_time);
  ds.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 192");
  ds.putAndInsertString(DCM_SOPInstanceUID, id.sop_instance_uid.c_str());
  ds.putAndInsertString(DCM_SeriesInstanceUID, id.series_uid.c_str());
  ds.putAndInsertString(DCM_SeriesNumber, "9001");
  ds.putAndInsertString(DCM_InstanceNumber, std::to_string(id.instance_number).c_str());
  ds.putAndInsertString(DCM_InstanceCreationDate, created_date.c_str());
  ds.putAndInsertString(DCM_InstanceCreationTime, created_time.c_str());
  ds.putAndInsertString(DCM_ContentDate, content_date.c_str());
  ds.putAndInsertString(DCM_ContentTime, content_time.c_str());
  ds.findAndDeleteElement(DCM_SeriesDate);
  ds.findAndDeleteElement(DCM_SeriesTime);
  if (!r.pdf.reveal().empty())
    ds.putAndInsertString(DCM_AcquisitionDateTime, (content_date + content_time).c_str());
  return {};
}

Result<void> load_image(DcmFileFormat& image, std::string_view bytes) {
  DcmInputBufferStream in;
  in.setBuffer(bytes.data(), static_cast<offile_off_t>(bytes.size()));
  in.setEos();
  image.transferInit();
  OFCondition c = dcmtk_guard([&] { return image.read(in, EXS_Unknown, EGL_noChange); });
  image.transferEnd();
  if (c.bad()) return bad("cannot parse the study's image", c);
  return {};
}

}  // namespace

const char* report_sop_class(const hl7::Report& report) {
  return report.pdf.reveal().empty() ? kBasicTextSr : kEncapsulatedPdf;
}

Result<void> write_report_object(const hl7::Report& report, const std::filesystem::path& image,
                                 const ObjectIdentity& id, const std::filesystem::path& out) {
  DcmFileFormat in;
  // A read limit keeps pixel data on disk.
  if (auto c =
          dcmtk_guard([&] { return in.loadFile(image.c_str(), EXS_Unknown, EGL_noChange, 4096); });
      c.bad())
    return bad("cannot parse the study's image", c);
  DcmFileFormat ff;
  if (auto b = build(report, *in.getDataset(), id, ff); !b) return b;
  if (auto c = ff.saveFile(out.c_str(), EXS_LittleEndianExplicit); c.bad())
    return make_error(ErrorCode::kIo, std::string("cannot write the report object: ") + c.text());
  return {};
}

Result<std::string> report_object_bytes(const hl7::Report& report, const std::string& image_bytes,
                                        const ObjectIdentity& id) {
  DcmFileFormat in;
  if (auto l = load_image(in, image_bytes); !l) return l.error();
  DcmFileFormat ff;
  if (auto b = build(report, *in.getDataset(), id, ff); !b) return b.error();
  ff.validateMetaInfo(EXS_LittleEndianExplicit);
  std::string buf(ff.calcElementLength(EXS_LittleEndianExplicit, EET_ExplicitLength) + 1024, '\0');
  DcmOutputBufferStream os(buf.data(), buf.size());
  ff.transferInit();
  DcmWriteCache cache;
  OFCondition c = ff.write(os, EXS_LittleEndianExplicit, EET_ExplicitLength, &cache);
  ff.transferEnd();
  if (c.bad()) return bad("cannot encode the report object", c);
  void* p = nullptr;
  offile_off_t n = 0;
  os.flushBuffer(p, n);
  buf.resize(static_cast<std::size_t>(n));
  return buf;
}

}  // namespace dirgw::reports
