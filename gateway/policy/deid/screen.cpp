// Screening: which objects may not leave for a de-identifying destination at all, because what
// identifies them cannot be removed by editing attributes: text burned into the pixels, faces,
// overlay bits inside Pixel Data, encapsulated documents (PDF, CDA, ...), and structured reports
// unless the Clean Structured Content option is on.
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "dcmtk/config/osconfig.h"  // must come first among the DCMTK headers
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcitem.h"
#include "dcmtk/dcmdata/dcpixel.h"
#include "dcmtk/dcmdata/dcpixseq.h"
#include "dcmtk/dcmdata/dcpxitem.h"
#include "policy/deid/deid_internal.h"

namespace dirgw::policy::deid {

namespace {

using detail::iequals;
using detail::item_string;
using detail::starts_with;

// SOP classes whose objects carry text in their pixels unless they say otherwise.
bool burned_in_prone_class(std::string_view uid) {
  static constexpr std::string_view kClasses[] = {
      "1.2.840.10008.5.1.4.1.1.6.1",       // US Image
      "1.2.840.10008.5.1.4.1.1.6.2",       // Enhanced US Volume
      "1.2.840.10008.5.1.4.1.1.3.1",       // US Multi-frame Image
      "1.2.840.10008.5.1.4.1.1.6",         // US Image (retired)
      "1.2.840.10008.5.1.4.1.1.3",         // US Multi-frame Image (retired)
      "1.2.840.10008.5.1.4.1.1.7",         // Secondary Capture
      "1.2.840.10008.5.1.4.1.1.7.1",       // Multi-frame Single Bit SC
      "1.2.840.10008.5.1.4.1.1.7.2",       // Multi-frame Grayscale Byte SC
      "1.2.840.10008.5.1.4.1.1.7.3",       // Multi-frame Grayscale Word SC
      "1.2.840.10008.5.1.4.1.1.7.4",       // Multi-frame True Color SC
      "1.2.840.10008.5.1.4.1.1.77.1.1",    // VL Endoscopic
      "1.2.840.10008.5.1.4.1.1.77.1.1.1",  // Video Endoscopic
      "1.2.840.10008.5.1.4.1.1.77.1.2",    // VL Microscopic
      "1.2.840.10008.5.1.4.1.1.77.1.2.1",  // Video Microscopic
      "1.2.840.10008.5.1.4.1.1.77.1.4",    // VL Photographic
      "1.2.840.10008.5.1.4.1.1.77.1.4.1",  // Video Photographic
      "1.2.840.10008.5.1.4.1.1.77.1.5.1",  // Ophthalmic Photography 8 Bit
      "1.2.840.10008.5.1.4.1.1.77.1.5.2",  // Ophthalmic Photography 16 Bit
      // Found by a review: slide labels, dermatology and wide-field photographs, and the
      // frames of angiography consoles that write the patient's name and date into them.
      "1.2.840.10008.5.1.4.1.1.77.1.3",    // VL Slide-Coordinates Microscopic
      "1.2.840.10008.5.1.4.1.1.77.1.6",    // VL Whole Slide Microscopy
      "1.2.840.10008.5.1.4.1.1.77.1.7",    // Dermoscopic Photography
      "1.2.840.10008.5.1.4.1.1.77.1.5.5",  // Wide Field Ophthalmic Photography Stereographic
      "1.2.840.10008.5.1.4.1.1.77.1.5.6",  // Wide Field Ophthalmic Photography 3D Coordinates
      "1.2.840.10008.5.1.4.1.1.12.1",      // X-Ray Angiographic
      "1.2.840.10008.5.1.4.1.1.12.1.1",    // Enhanced XA
      "1.2.840.10008.5.1.4.1.1.12.2",      // X-Ray Radiofluoroscopic
      "1.2.840.10008.5.1.4.1.1.12.2.1",    // Enhanced XRF
  };
  return std::find(std::begin(kClasses), std::end(kClasses), uid) != std::end(kClasses);
}

bool burned_in_prone_modality(std::string_view m) {
  static constexpr std::string_view kModalities[] = {"US", "OT", "SC", "XC",
                                                     "ES", "GM", "OP", "DOC"};
  return std::find(std::begin(kModalities), std::end(kModalities), m) != std::end(kModalities);
}

bool rule_matches(const BurnedInAllowRule& r, const std::string& sop_class,
                  const std::string& modality, const std::string& manufacturer,
                  const std::string& model) {
  auto match = [](const std::string& want, const std::string& have) {
    return want.empty() || std::string(trim_dicom(want)) == have;
  };
  return match(r.sop_class_uid, sop_class) && match(r.modality, modality) &&
         match(r.manufacturer, manufacturer) && match(r.model, model);
}

// A slide's label in the pixels: Specimen Label in Image (0048,0010) YES, or a whole-slide image
// whose Image Type names its LABEL or OVERVIEW (the photograph of the whole slide, label
// included). The label carries the patient's name, a barcode, the accession.
bool specimen_label_in_image(DcmItem& ds, const std::string& modality) {
  const std::optional<std::string> label = item_string(ds, DcmTagKey(0x0048, 0x0010));
  if (label && iequals(*label, "YES")) return true;
  if (modality != "SM") return false;
  const std::string type = "\\" + item_string(ds, DCM_ImageType).value_or("") + "\\";
  return type.find("\\LABEL\\") != std::string::npos ||
         type.find("\\OVERVIEW\\") != std::string::npos;
}

// Metadata in a JPEG stream's header, which no attribute edit reaches: an APP1 Exif or XMP
// segment (a camera's owner, serial number, GPS position, time), APP13 (IPTC), or a comment (COM;
// some encoders write the patient's name there). `h` holds the stream's first bytes.
bool jpeg_header_carries_metadata(const Uint8* h, std::size_t n) {
  if (n < 4 || h[0] != 0xFF || h[1] != 0xD8) return false;
  std::size_t pos = 2;
  while (pos + 4 <= n && h[pos] == 0xFF) {
    const Uint8 marker = h[pos + 1];
    if (marker == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == 0xDA || marker == 0xD9) return false;  // start of scan, end of image
    const std::size_t length = (std::size_t{h[pos + 2]} << 8) | h[pos + 3];
    const Uint8* payload = h + pos + 4;
    const std::size_t available = pos + 4 <= n ? std::min(n - pos - 4, length - 2) : 0;
    auto starts = [&](std::string_view s) {
      return available >= s.size() && std::equal(s.begin(), s.end(), payload);
    };
    if (marker == 0xE1 &&
        (starts(std::string_view("Exif\0", 5)) || starts("http://ns.adobe.com/xap/")))
      return true;
    if (marker == 0xED || (marker == 0xFE && length > 2)) return true;
    if (length < 2) return false;
    pos += 2 + length;
  }
  return false;
}

// Whether the encapsulated Pixel Data of a JPEG (or JPEG-LS) object carries such metadata: the
// first 256 KiB of each fragment that starts a JPEG stream (read from the file, not loaded whole).
bool pixel_data_carries_jpeg_metadata(DcmItem& ds) {
  auto* dataset = dynamic_cast<DcmDataset*>(&ds);
  if (dataset == nullptr) return false;
  const E_TransferSyntax xfer = dataset->getOriginalXfer();
  if (xfer != EXS_JPEGProcess1 && xfer != EXS_JPEGProcess2_4 && xfer != EXS_JPEGProcess14 &&
      xfer != EXS_JPEGProcess14SV1 && xfer != EXS_JPEGLSLossless && xfer != EXS_JPEGLSLossy)
    return false;
  DcmElement* e = nullptr;
  if (ds.findAndGetElement(DCM_PixelData, e).bad() || e == nullptr) return false;
  DcmPixelSequence* seq = nullptr;
  if (static_cast<DcmPixelData*>(e)->getEncapsulatedRepresentation(xfer, nullptr, seq).bad() ||
      seq == nullptr)
    return false;
  std::vector<Uint8> head;
  for (unsigned long i = 1; i < seq->card(); ++i) {  // item 0: the offset table
    DcmPixelItem* item = nullptr;
    if (seq->getItem(item, i).bad() || item == nullptr) continue;
    const Uint32 n = std::min<Uint32>(item->getLength(), 256 * 1024);
    if (n < 4) continue;
    head.resize(n);
    if (item->getPartialValue(head.data(), 0, n).bad()) continue;
    if (jpeg_header_carries_metadata(head.data(), n)) return true;
  }
  return false;
}

bool has_embedded_overlay(DcmItem& ds) {
  for (Uint16 g = 0x6000; g <= 0x601E; g += 2) {
    if (ds.tagExists(DcmTagKey(g, 0x0010), OFFalse) &&
        !ds.tagExists(DcmTagKey(g, 0x3000), OFFalse)) {
      return true;
    }
  }
  return false;
}

}  // namespace

Decision screen_dataset(DcmItem& ds, const DeidOptions& options) {
  const std::string sop_class = item_string(ds, DCM_SOPClassUID).value_or("");
  const std::string modality = item_string(ds, DCM_Modality).value_or("");
  const std::string manufacturer = item_string(ds, DCM_Manufacturer).value_or("");
  const std::string model = item_string(ds, DCM_ManufacturerModelName).value_or("");
  std::vector<std::string> why;
  if (sop_class.empty()) why.emplace_back("no-sop-class");
  if (starts_with(sop_class, "1.2.840.10008.5.1.4.1.1.104.")) {
    why.emplace_back("encapsulated-document");
  }
  if (starts_with(sop_class, "1.2.840.10008.5.1.4.1.1.88.") && !options.clean_structured_content) {
    why.emplace_back("structured-report");
  }
  const std::optional<std::string> burned = item_string(ds, DCM_BurnedInAnnotation);
  const bool marked_yes =
      (burned && iequals(*burned, "YES")) || specimen_label_in_image(ds, modality);
  const bool unmarked = !burned || burned->empty();
  const bool prone = burned_in_prone_class(sop_class) || burned_in_prone_modality(modality);
  if (marked_yes || (unmarked && prone)) {
    const bool allowed =
        options.burned_in_reviewed ||
        std::any_of(options.burned_in_allow.begin(), options.burned_in_allow.end(),
                    [&](const BurnedInAllowRule& r) {
                      return (!marked_yes || r.allow_marked_yes) &&
                             rule_matches(r, sop_class, modality, manufacturer, model);
                    });
    if (!allowed) why.emplace_back("burned-in-annotation");
  }
  const std::optional<std::string> visual = item_string(ds, DCM_RecognizableVisualFeatures);
  if (visual && iequals(*visual, "YES")) why.emplace_back("recognizable-visual-features");
  if (has_embedded_overlay(ds)) why.emplace_back("embedded-overlay");
  if (pixel_data_carries_jpeg_metadata(ds)) why.emplace_back("jpeg-metadata");
  if (why.empty()) return Decision::accept();
  return Decision::reject(std::move(why));
}

}  // namespace dirgw::policy::deid
