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

// The bytes of one JPEG stream, which may run over several fragments (a frame's first
// fragment holds SOI), read a chunk at a time from the file, never loaded whole.
class FragmentBytes {
 public:
  FragmentBytes(DcmPixelSequence& seq, unsigned long first, unsigned long end)
      : seq_(seq), fragment_(first), end_(end) {}
  // The next byte; false at the end of the stream's last fragment.
  bool next(Uint8& b) {
    while (at_ == buffer_.size()) {
      if (!fill()) return false;
    }
    b = buffer_[at_++];
    return true;
  }
  // Skips `n` bytes; false when the stream ends first.
  bool skip(std::size_t n) {
    Uint8 b = 0;
    for (; n > 0; --n)
      if (!next(b)) return false;
    return true;
  }

 private:
  bool fill() {
    while (fragment_ < end_) {
      DcmPixelItem* item = nullptr;
      if (seq_.getItem(item, fragment_).bad() || item == nullptr) return false;
      const Uint32 length = item->getLength();
      if (offset_ < length) {
        const Uint32 n = std::min<Uint32>(length - offset_, kChunk);
        buffer_.resize(n);
        if (item->getPartialValue(buffer_.data(), offset_, n).bad()) return false;
        offset_ += n;
        at_ = 0;
        return true;
      }
      ++fragment_;
      offset_ = 0;
    }
    return false;
  }

  static constexpr Uint32 kChunk = 1 << 20;
  DcmPixelSequence& seq_;
  unsigned long fragment_, end_;
  Uint32 offset_ = 0;
  std::vector<Uint8> buffer_;
  std::size_t at_ = 0;
};

// Application segments a JPEG codec writes for the image itself, by marker and first bytes: JFIF
// and JFXX (APP0), an ICC colour profile (APP2), Adobe's colour transform (APP14), SPIFF and
// JPEG-LS's colour transform (APP8). Any other (Exif, XMP and Extended XMP in APP1, IPTC in APP13,
// Photoshop's "Ducky" in APP12, a vendor's in APP3 or APP4...) may hold text about the person.
bool image_segment(Uint8 marker, const std::string& head) {
  auto starts = [&](std::string_view s) { return head.compare(0, s.size(), s) == 0; };
  switch (marker) {
    case 0xE0:
      return starts(std::string_view("JFIF\0", 5)) || starts(std::string_view("JFXX\0", 5));
    case 0xE2:
      return starts(std::string_view("ICC_PROFILE\0", 12));
    case 0xE8:
      return starts(std::string_view("SPIFF\0", 6)) || starts("mrfx");
    case 0xEE:
      return starts("Adobe");
    default:
      return false;
  }
}

// Whether a JPEG (or JPEG-LS) stream carries text no attribute edit reaches: an application
// segment that is not the image's own (above), a comment (COM), anywhere in the stream (between
// scans too), or text after its end (EOI). The entropy-coded data is walked for markers (JPEG:
// FF followed by anything but 00, a restart marker or fill; JPEG-LS: FF followed by 80 or
// more).
bool jpeg_stream_carries_metadata(FragmentBytes& in, bool jpeg_ls) {
  Uint8 b = 0;
  Uint8 b2 = 0;
  if (!in.next(b) || !in.next(b2) || b != 0xFF || b2 != 0xD8) return false;
  bool in_scan = false;
  for (;;) {
    if (!in.next(b)) return false;
    if (b != 0xFF) {
      if (!in_scan) return false;  // not a marker where one must be: not ours to judge
      continue;
    }
    Uint8 marker = 0;
    do {
      if (!in.next(marker)) return false;
    } while (marker == 0xFF);
    if (in_scan && (jpeg_ls ? marker < 0x80 : marker == 0x00)) continue;  // stuffed data
    if ((marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) continue;   // RSTn, TEM
    if (marker == 0xD9) {
      // After EOI: padding (00, FF) is the encapsulation's; a run of text is not.
      int run = 0;
      while (in.next(b)) {
        run = b >= 0x20 && b < 0x7F ? run + 1 : 0;
        if (run >= 4) return true;
      }
      return false;
    }
    Uint8 hi = 0;
    Uint8 lo = 0;
    if (!in.next(hi) || !in.next(lo)) return false;
    const std::size_t length = (std::size_t{hi} << 8) | lo;
    if (length < 2) return false;
    std::size_t rest = length - 2;
    if (marker == 0xFE && rest > 0) return true;  // COM
    if (marker >= 0xE0 && marker <= 0xEF) {
      std::string head;
      for (; rest > 0 && head.size() < 16; --rest) {
        if (!in.next(b)) return false;
        head.push_back(static_cast<char>(b));
      }
      if (!image_segment(marker, head)) return true;
    }
    if (!in.skip(rest)) return false;
    in_scan = marker == 0xDA;  // after SOS: entropy-coded data until the next marker
  }
}

// Whether the encapsulated Pixel Data of a JPEG (or JPEG-LS) object carries such text, in any
// of its streams (a frame's stream begins with the fragment that starts with SOI and runs over
// the fragments up to the next such fragment).
bool pixel_data_carries_jpeg_metadata(DcmItem& ds) {
  auto* dataset = dynamic_cast<DcmDataset*>(&ds);
  if (dataset == nullptr) return false;
  const E_TransferSyntax xfer = dataset->getOriginalXfer();
  if (xfer != EXS_JPEGProcess1 && xfer != EXS_JPEGProcess2_4 && xfer != EXS_JPEGProcess14 &&
      xfer != EXS_JPEGProcess14SV1 && xfer != EXS_JPEGLSLossless && xfer != EXS_JPEGLSLossy)
    return false;
  const bool jpeg_ls = xfer == EXS_JPEGLSLossless || xfer == EXS_JPEGLSLossy;
  DcmElement* e = nullptr;
  if (ds.findAndGetElement(DCM_PixelData, e).bad() || e == nullptr) return false;
  DcmPixelSequence* seq = nullptr;
  if (static_cast<DcmPixelData*>(e)->getEncapsulatedRepresentation(xfer, nullptr, seq).bad() ||
      seq == nullptr)
    return false;
  auto starts_stream = [&](unsigned long i) {
    DcmPixelItem* item = nullptr;
    Uint8 soi[2] = {0, 0};
    return seq->getItem(item, i).good() && item != nullptr && item->getLength() >= 2 &&
           item->getPartialValue(soi, 0, 2).good() && soi[0] == 0xFF && soi[1] == 0xD8;
  };
  const unsigned long n = seq->card();
  for (unsigned long i = 1; i < n;) {  // item 0: the offset table
    if (!starts_stream(i)) {
      ++i;
      continue;
    }
    unsigned long end = i + 1;
    while (end < n && !starts_stream(end)) ++end;
    FragmentBytes bytes(*seq, i, end);
    if (jpeg_stream_carries_metadata(bytes, jpeg_ls)) return true;
    i = end;
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
