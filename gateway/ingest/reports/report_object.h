// A report (hl7::Report) as a DICOM object of its study: a Basic Text SR (DCMTK dcmsr) from the
// report's text, or an Encapsulated PDF when it carries one. The patient and study attributes
// are copied from one of the study's images, so the repository files the report with them; the
// object's UIDs and dates come from the caller (derived from the report's catalog row), so that
// building the same report again writes the same bytes and the catalog sees a duplicate.
#pragma once

#include <filesystem>
#include <string>

#include "common/result.h"
#include "ingest/hl7_mllp/report.h"

namespace dirgw::reports {

// Who the object is, decided by the caller.
struct ObjectIdentity {
  std::string sop_instance_uid, series_uid;
  int instance_number = 1;               // the report's version
  std::string created;                   // DICOM DT "YYYYMMDDHHMMSS": the report's arrival
  std::string predecessor_sop_instance;  // the version it replaces (corrected), or ""
  std::string predecessor_sop_class;
  std::string predecessor_series_uid;
};

inline constexpr const char* kBasicTextSr = "1.2.840.10008.5.1.4.1.1.88.11";
inline constexpr const char* kEncapsulatedPdf = "1.2.840.10008.5.1.4.1.1.104.1";

// The SOP class the report becomes.
const char* report_sop_class(const hl7::Report& report);

// Writes the object to `out` (a new file, Part 10, explicit VR little endian, UTF-8).
// `image` is one of the study's received objects. kBadDicom when the image cannot be read.
Result<void> write_report_object(const hl7::Report& report, const std::filesystem::path& image,
                                 const ObjectIdentity& id, const std::filesystem::path& out);

// The same, into memory, from an image dataset already loaded (for the fuzz target and tests).
Result<std::string> report_object_bytes(const hl7::Report& report, const std::string& image_bytes,
                                        const ObjectIdentity& id);

}  // namespace dirgw::reports
