// g++ 12 at -O2 reports std::optional<std::uint64_t> values read after has_value() checks as
// "maybe uninitialized" (a known false positive of its optional handling); silenced here only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "policy/validate/validate.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <limits>
#include <memory>
#include <utility>

#include "common/dcmtk_guard.h"
#include "common/files.h"
#include "common/text.h"
#include "common/utf8.h"
#include "dcmtk/config/osconfig.h"  // must come first among the DCMTK headers
#include "dcmtk/dcmdata/dcdatset.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcitem.h"
#include "dcmtk/dcmdata/dcpixel.h"
#include "dcmtk/dcmdata/dcpixseq.h"
#include "dcmtk/dcmdata/dcpxitem.h"
#include "dcmtk/dcmdata/dcsequen.h"
#include "dcmtk/dcmdata/dcstack.h"
#include "dcmtk/dcmdata/dcxfer.h"
#include "ingest/prescan/prescan.h"

namespace dirgw::policy {

bool ValidationReport::has(std::string_view code) const {
  return std::any_of(findings.begin(), findings.end(),
                     [&](const Finding& f) { return f.code == code; });
}

std::size_t ValidationReport::count(Severity severity) const {
  return static_cast<std::size_t>(std::count_if(
      findings.begin(), findings.end(), [&](const Finding& f) { return f.severity == severity; }));
}

Profile ontario_dir_profile() {
  Profile p;
  p.name = "ontario-dir";
  p.required = {
      Tag{0x0010, 0x0020},  // Patient ID
      Tag{0x0010, 0x0021},  // Issuer of Patient ID
      Tag{0x0020, 0x000D},  // Study Instance UID
      Tag{0x0020, 0x000E},  // Series Instance UID
      Tag{0x0008, 0x0018},  // SOP Instance UID
      Tag{0x0008, 0x0016},  // SOP Class UID
      Tag{0x0008, 0x0020},  // Study Date
      Tag{0x0008, 0x0060},  // Modality
      Tag{0x0008, 0x0050},  // Accession Number: links images to the report in the repository
  };
  p.require_health_number = true;
  p.health_number_issuer = "ON";
  p.health_number_scheme = HealthNumberScheme::kOntario;
  // Diagnostic imaging and what travels with a study; see docs/validation.md for the reasons.
  p.allowed_modalities = {"CR", "CT", "DX", "MG", "MR", "NM", "PT", "US",  "XA", "RF",
                          "RG", "OT", "IO", "PX", "ES", "XC", "SR", "DOC", "KO", "PR"};
  return p;
}

bool accepts(const Profile& profile, std::string_view code, std::string_view tag) {
  return std::any_of(profile.accepted.begin(), profile.accepted.end(), [&](const std::string& a) {
    if (a == code) return true;
    return !tag.empty() && a.size() == code.size() + 1 + tag.size() && a.starts_with(code) &&
           a[code.size()] == ' ' && a.ends_with(tag);
  });
}

std::optional<Profile> builtin_profile(std::string_view name) {
  if (name == "ontario-dir") return ontario_dir_profile();
  return std::nullopt;
}

namespace {

constexpr Uint32 kReadLimit = 4096;  // values larger than this stay on disk

std::string tag_text(const DcmTagKey& k) { return Tag{k.getGroup(), k.getElement()}.to_string(); }

class Collector {
 public:
  Collector(ValidationReport& report, const Profile& profile)
      : report_(report), profile_(profile), max_(profile.max_findings) {}
  Collector(const Collector&) = delete;
  Collector& operator=(const Collector&) = delete;

  void error(std::string code, std::string tag, std::string message) {
    add(Finding{std::move(code), std::move(tag), std::move(message), Severity::kError});
  }
  void warning(std::string code, std::string tag, std::string message) {
    add(Finding{std::move(code), std::move(tag), std::move(message), Severity::kWarning});
  }
  // One warning in place of everything dropped.
  void finish() {
    if (!truncated_) return;
    report_.findings.push_back(
        Finding{"findings.truncated", "",
                "more findings than the profile keeps; the rest were dropped", Severity::kWarning});
  }

 private:
  void add(Finding f) {
    if (f.severity == Severity::kError && accepts(profile_, f.code, f.tag)) {
      f.severity = Severity::kWarning;
      f.accepted = true;
    }
    if (f.severity == Severity::kError) report_.ok = false;
    if (report_.findings.size() >= max_) {
      truncated_ = true;
      return;
    }
    report_.findings.push_back(std::move(f));
  }

  ValidationReport& report_;
  const Profile& profile_;
  std::size_t max_;
  bool truncated_ = false;
};

DcmElement* find_element(DcmItem& item, const DcmTagKey& key) {
  DcmElement* e = nullptr;
  if (item.findAndGetElement(key, e, OFFalse).bad()) return nullptr;
  return e;
}

// The whole value (all values joined by '\'), padding removed; nullopt if the attribute is absent.
std::optional<std::string> string_value(DcmItem& item, const DcmTagKey& key) {
  DcmElement* e = find_element(item, key);
  if (e == nullptr) return std::nullopt;
  if (e->getLength() == 0) return std::string();
  if (e->ident() == EVR_UN) {
    // A string attribute some exporters write with VR UN (RT Dose's SOP Instance UID...): its
    // bytes are the text; DCMTK would render them as hex (issue 17, item 5).
    Uint8* bytes = nullptr;
    if (e->getUint8Array(bytes).bad() || bytes == nullptr) return std::string();
    return std::string(
        trim_dicom(std::string_view(reinterpret_cast<const char*>(bytes), e->getLength())));
  }
  OFString s;
  if (e->getOFStringArray(s, OFFalse).bad()) return std::string();
  return std::string(trim_dicom(std::string_view(s.c_str(), s.length())));
}

std::vector<std::string> split_values(std::string_view raw) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    std::size_t bs = raw.find('\\', start);
    std::string_view v = raw.substr(start, bs == std::string_view::npos ? raw.npos : bs - start);
    out.emplace_back(trim_dicom(v));
    if (bs == std::string_view::npos) break;
    start = bs + 1;
  }
  return out;
}

// --- required attributes ------------------------------------------------------------------------

void check_required(DcmItem& ds, const Profile& profile, Collector& c) {
  for (const Tag& t : profile.required) {
    DcmTagKey key(t.group, t.element);
    DcmElement* e = find_element(ds, key);
    std::string name = DcmTag(key).getTagName();
    if (e == nullptr) {
      c.error("attribute.missing", t.to_string(), "required attribute " + name + " is missing");
      continue;
    }
    bool empty;
    if (e->ident() == EVR_SQ) {
      empty = static_cast<DcmSequenceOfItems*>(e)->card() == 0;
    } else if (e->getLength() == 0) {
      empty = true;
    } else if (e->isaString()) {
      empty = string_value(ds, key).value_or("").empty();
    } else {
      empty = false;
    }
    if (empty) {
      c.error("attribute.empty", t.to_string(), "required attribute " + name + " has no value");
    }
  }
}

// --- health number ------------------------------------------------------------------------------

std::string health_number_message(HealthNumberProblem p) {
  switch (p) {
    case HealthNumberProblem::kWrongLength:
      return "the health number does not have ten digits";
    case HealthNumberProblem::kNonDigit:
      return "the health number has a non-digit among its first ten characters";
    case HealthNumberProblem::kCheckDigit:
      return "the health number's check digit is wrong";
    case HealthNumberProblem::kBadVersionCode:
      return "the health number's version code is not one or two letters A-Z";
    case HealthNumberProblem::kNone:
      break;
  }
  return "the health number is valid";
}

void check_health_number(DcmItem& ds, const Profile& profile, Collector& c) {
  if (profile.health_number_issuer.empty()) return;
  struct Candidate {
    std::string value;
    std::string tag;
  };
  std::vector<Candidate> candidates;
  bool empty_item = false;
  const std::string seq_tag = tag_text(DCM_OtherPatientIDsSequence);

  if (string_value(ds, DCM_IssuerOfPatientID) == profile.health_number_issuer) {
    std::string pid = string_value(ds, DCM_PatientID).value_or("");
    if (!pid.empty()) candidates.push_back({pid, tag_text(DCM_PatientID)});
  }
  DcmSequenceOfItems* seq = nullptr;
  if (ds.findAndGetSequence(DCM_OtherPatientIDsSequence, seq).good() && seq != nullptr) {
    for (unsigned long i = 0; i < seq->card(); ++i) {
      DcmItem* item = seq->getItem(i);
      if (item == nullptr) continue;
      if (string_value(*item, DCM_IssuerOfPatientID) != profile.health_number_issuer) continue;
      std::string id = string_value(*item, DCM_PatientID).value_or("");
      if (id.empty()) {
        empty_item = true;
        c.error("health_number.empty", seq_tag,
                "an Other Patient IDs item of the health-number issuer has no Patient ID");
      } else {
        candidates.push_back({std::move(id), seq_tag});
      }
    }
  }

  if (candidates.empty()) {
    if (profile.require_health_number && !empty_item) {
      c.error("health_number.missing", seq_tag,
              "no health number: no Other Patient IDs item has the health-number issuer");
    }
    return;
  }
  if (profile.health_number_scheme == HealthNumberScheme::kOntario) {
    for (const Candidate& cand : candidates) {
      HealthNumberProblem p = check_ontario_health_number(cand.value);
      if (p == HealthNumberProblem::kNone) continue;
      c.error("health_number." + std::string(reason_name(p)), cand.tag, health_number_message(p));
    }
  }
  // The same number may appear twice (with and without its version code); two different numbers
  // for one patient mean the object cannot be attributed safely.
  for (std::size_t i = 1; i < candidates.size(); ++i) {
    if (candidates[i].value.substr(0, 10) != candidates[0].value.substr(0, 10)) {
      c.error("health_number.conflicting", seq_tag,
              "the object carries different health numbers for the same issuer");
      break;
    }
  }
}

// --- UIDs ---------------------------------------------------------------------------------------

std::string uid_message(UidProblem p) {
  switch (p) {
    case UidProblem::kEmpty:
      return "is empty";
    case UidProblem::kTooLong:
      return "is longer than 64 characters";
    case UidProblem::kBadCharacter:
      return "contains characters other than digits and dots";
    case UidProblem::kLeadingDot:
      return "starts with a dot";
    case UidProblem::kTrailingDot:
      return "ends with a dot";
    case UidProblem::kEmptyComponent:
      return "has an empty component";
    case UidProblem::kLeadingZero:
      return "has a component with a leading zero";
  }
  return "is malformed";
}

// Study, Series and SOP Instance UID, SOP Class UID (DCMTK's DCM_* names are temporaries).
constexpr std::array<Tag, 4> kIdentifyingUids = {Tag{0x0020, 0x000D}, Tag{0x0020, 0x000E},
                                                 Tag{0x0008, 0x0018}, Tag{0x0008, 0x0016}};

DcmTagKey key_of(Tag t) { return DcmTagKey(t.group, t.element); }

bool is_identifying_uid(const DcmTagKey& key) {
  return std::any_of(kIdentifyingUids.begin(), kIdentifyingUids.end(),
                     [&](Tag t) { return key_of(t) == key; });
}

void report_uid(std::string_view uid, const DcmTagKey& key, Severity severity, Collector& c) {
  for (UidProblem p : check_uid(uid)) {
    std::string code = "uid." + std::string(reason_name(p));
    std::string message =
        "the UID in " + std::string(DcmTag(key).getTagName()) + " " + uid_message(p);
    if (severity == Severity::kError) {
      c.error(std::move(code), tag_text(key), std::move(message));
    } else {
      c.warning(std::move(code), tag_text(key), std::move(message));
    }
  }
}

void check_identifying_uids(DcmItem& ds, Collector& c) {
  for (Tag t : kIdentifyingUids) {
    std::optional<std::string> v = string_value(ds, key_of(t));
    if (!v || v->empty()) continue;  // the required-attribute rule reports absence
    report_uid(*v, key_of(t), Severity::kError, c);
  }
}

// --- Specific Character Set ---------------------------------------------------------------------

void check_charset_element(DcmElement& e, Collector& c) {
  if (e.getLength() == 0) return;
  OFString raw;
  if (e.getOFStringArray(raw, OFFalse).bad()) return;
  std::vector<std::string> values = split_values(std::string_view(raw.c_str(), raw.length()));
  switch (check_specific_character_set(values)) {
    case CharsetProblem::kNone:
      return;
    case CharsetProblem::kAsciiAlias:
      c.warning("charset.ascii_alias", tag_text(e.getTag()),
                "Specific Character Set is ISO_IR 6, not a defined term: read as the default "
                "repertoire (ASCII)");
      return;
    case CharsetProblem::kUnknownTerm:
      c.error("charset.unknown", tag_text(e.getTag()),
              "Specific Character Set holds a term that is not defined in PS3.3 C.12.1.1.2");
      return;
    case CharsetProblem::kInvalidCombination:
      c.error("charset.invalid_combination", tag_text(e.getTag()),
              "Specific Character Set has several values, but not all are ISO 2022 terms (or one "
              "repeats)");
      return;
  }
}

// --- text encoding (issue 17, item 10) ----------------------------------------------------------

// What the top-level Specific Character Set lets us check: the default repertoire (none declared:
// 7-bit ASCII; "ISO_IR 6" alone is read as that too), UTF-8 (ISO_IR 192 as the only value), or
// something else (not judged here).
enum class Repertoire { kAscii, kUtf8, kOther };

Repertoire declared_repertoire(DcmItem& ds) {
  OFString raw;
  if (ds.findAndGetOFStringArray(DCM_SpecificCharacterSet, raw, OFFalse).bad())
    return Repertoire::kAscii;
  std::vector<std::string> values = split_values(std::string_view(raw.c_str(), raw.length()));
  std::erase_if(values, [](const std::string& v) { return v.empty(); });
  if (values.empty() || (values.size() == 1 && values[0] == "ISO_IR 6")) return Repertoire::kAscii;
  if (values.size() == 1 && values[0] == "ISO_IR 192") return Repertoire::kUtf8;
  return Repertoire::kOther;
}

// The VRs whose values Specific Character Set governs (PS3.5 6.1.2.3).
bool is_charset_text(DcmEVR vr) {
  return vr == EVR_SH || vr == EVR_LO || vr == EVR_ST || vr == EVR_LT || vr == EVR_UT ||
         vr == EVR_PN || vr == EVR_UC;
}

void check_text_bytes(DcmElement& e, Repertoire repertoire, Collector& c) {
  if (repertoire == Repertoire::kOther || e.getLength() == 0) return;
  OFString raw;
  if (e.getOFStringArray(raw, OFFalse).bad()) return;
  const std::string_view bytes(raw.c_str(), raw.length());
  if (repertoire == Repertoire::kUtf8) {
    if (!is_valid_utf8(bytes))
      c.error("text.invalid_utf8", tag_text(e.getTag()),
              "text is not valid UTF-8, but Specific Character Set declares ISO_IR 192");
    return;
  }
  if (std::any_of(bytes.begin(), bytes.end(), [](char ch) { return (ch & 0x80) != 0; }))
    c.error("text.undeclared_characters", tag_text(e.getTag()),
            "text has bytes outside ASCII, but no Specific Character Set declares them (the "
            "repository would show other characters)");
}

// One walk over every element at every level: character sets anywhere, and the UIDs that are not
// the four identifying ones (warnings: a bad referenced UID rarely stops a repository, but is worth
// knowing).
void walk_dataset(DcmItem& ds, const Profile& profile, Collector& c) {
  if (!profile.check_character_set && !profile.check_uids && !profile.check_text_encoding) return;
  const Repertoire repertoire = declared_repertoire(ds);
  DcmStack stack;
  while (ds.nextObject(stack, OFTrue).good()) {
    DcmObject* obj = stack.top();
    if (obj == nullptr || !obj->isLeaf()) continue;
    auto* e = static_cast<DcmElement*>(obj);
    const DcmTagKey key = e->getTag();
    const bool top_level = stack.card() == 2 && stack.elem(1) == &ds;
    if (profile.check_text_encoding && is_charset_text(e->ident()))
      check_text_bytes(*e, repertoire, c);
    if (profile.check_character_set && key == DCM_SpecificCharacterSet) {
      check_charset_element(*e, c);
    } else if (profile.check_uids && e->ident() == EVR_UI) {
      if (top_level && is_identifying_uid(key)) continue;
      if (e->getLength() == 0) continue;
      OFString raw;
      if (e->getOFStringArray(raw, OFFalse).bad()) continue;
      for (const std::string& uid : split_values(std::string_view(raw.c_str(), raw.length()))) {
        if (!uid.empty()) report_uid(uid, key, Severity::kWarning, c);
      }
    }
  }
}

// --- dates and modality -------------------------------------------------------------------------

void check_dates(DcmItem& ds, Collector& c) {
  std::optional<std::string> v = string_value(ds, DCM_StudyDate);
  if (!v || v->empty()) return;
  if (valid_da(*v)) return;
  // ACR-NEMA and DICOM before 3.0 wrote YYYY.MM.DD, which PS3.5 6.2 recommends receivers accept:
  // a code of its own, so that a site whose repository takes it can accept it without accepting
  // dates that are no dates.
  const std::string_view s = *v;
  if (s.size() == 10 && s[4] == '.' && s[7] == '.' &&
      valid_da(std::string(s.substr(0, 4)) + std::string(s.substr(5, 2)) +
               std::string(s.substr(8, 2)))) {
    c.error("date.old_format", tag_text(DCM_StudyDate),
            "Study Date is written YYYY.MM.DD, the form before DICOM 3.0, not YYYYMMDD");
    return;
  }
  c.error("date.invalid", tag_text(DCM_StudyDate),
          "Study Date is not a valid date of the form YYYYMMDD");
}

void check_modality(DcmItem& ds, const Profile& profile, Collector& c) {
  if (profile.allowed_modalities.empty()) return;
  std::optional<std::string> v = string_value(ds, DCM_Modality);
  if (!v || v->empty()) return;
  if (std::find(profile.allowed_modalities.begin(), profile.allowed_modalities.end(), *v) ==
      profile.allowed_modalities.end()) {
    c.error("modality.not_allowed", tag_text(DCM_Modality),
            "the modality is not on the allow-list of profile " + profile.name);
  }
}

// --- pixel data ---------------------------------------------------------------------------------

constexpr std::uint64_t kSaturated = std::numeric_limits<std::uint64_t>::max();

std::uint64_t mul(std::uint64_t a, std::uint64_t b) {
  std::uint64_t r = 0;
  return __builtin_mul_overflow(a, b, &r) ? kSaturated : r;
}

bool is_video(E_TransferSyntax xfer) {
  return xfer >= EXS_MPEG2MainProfileAtMainLevel && xfer <= EXS_HEVCMain10ProfileLevel5_1;
}

// Reads an unsigned image attribute; reports a missing or zero one and returns nullopt.
std::optional<std::uint64_t> image_number(DcmItem& ds, const DcmTagKey& key, bool required,
                                          std::uint64_t fallback, Collector& c) {
  DcmElement* e = find_element(ds, key);
  std::string name = DcmTag(key).getTagName();
  if (e == nullptr || e->getLength() == 0) {
    if (!required) return fallback;
    c.error("pixel_data.attribute_missing", tag_text(key),
            "Pixel Data is present but " + name + " is missing or empty");
    return std::nullopt;
  }
  std::uint64_t v = 0;
  bool ok = false;
  if (e->ident() == EVR_US) {
    Uint16 u = 0;
    ok = e->getUint16(u).good();
    v = u;
  } else {
    // Number of Frames is IS: digits only (an optional '+'), at most ten of them.
    OFString s;
    if (e->getOFString(s, 0).good()) {
      std::string_view t = trim_dicom(std::string_view(s.c_str(), s.length()));
      if (!t.empty() && t.front() == '+') t.remove_prefix(1);
      ok = !t.empty() && t.size() <= 10;
      for (char ch : t) {
        if (ch < '0' || ch > '9') ok = false;
      }
      if (ok) {
        for (char ch : t) v = v * 10 + static_cast<std::uint64_t>(ch - '0');
      }
    }
  }
  if (!ok || v == 0) {
    c.error("pixel_data.attribute_invalid", tag_text(key),
            name + " is not a positive number, so the pixel data cannot be checked");
    return std::nullopt;
  }
  return v;
}

// Encapsulated Pixel Data: a fragment sequence with fragments, enough of them for the frames,
// and a Basic Offset Table that is empty or has one entry per frame.
void check_fragments(DcmPixelSequence* fragments, std::optional<std::uint64_t> frames,
                     E_TransferSyntax original, const std::string& tag, Collector& c) {
  if (fragments == nullptr) {
    c.error("pixel_data.no_fragments", tag, "encapsulated Pixel Data has no fragment sequence");
    return;
  }
  // Item 0 is the Basic Offset Table, the rest are fragments.
  const unsigned long items = fragments->card();
  const std::uint64_t count = items > 0 ? items - 1 : 0;
  if (count == 0) {
    c.error("pixel_data.no_fragments", tag, "encapsulated Pixel Data has no fragment");
    return;
  }
  if (frames && !is_video(original) && count < *frames) {
    c.error("pixel_data.too_few_fragments", tag,
            "encapsulated Pixel Data has fewer fragments than Number of Frames");
  }
  DcmPixelItem* bot = nullptr;
  if (frames && fragments->getItem(bot, 0).good() && bot != nullptr) {
    const std::uint64_t len = bot->getLengthField();
    if (len != 0 && len != mul(4, *frames)) {
      c.warning("pixel_data.offset_table", tag,
                "the Basic Offset Table does not have one entry per frame");
    }
  }
}

// The image's geometry, each attribute checked (and reported) once.
struct Geometry {
  std::optional<std::uint64_t> rows, cols, bits, spp, frames;
};

// Native Pixel Data: its length against Rows x Columns x Samples x Bits x Frames.
void check_native_length(DcmItem& ds, DcmElement& e, const Geometry& g, const std::string& tag,
                         Collector& c) {
  if (!g.rows || !g.cols || !g.bits || !g.spp || !g.frames) return;  // reported already
  const std::uint64_t declared = e.getLengthField();
  if (declared == DCM_UndefinedLength) {
    c.error("pixel_data.length_short", tag, "native Pixel Data has an undefined length");
    return;
  }
  // YBR_FULL_422 / YBR_PARTIAL_422 store two samples' worth of bytes per pixel (PS3.3 C.7.6.3.1.2).
  std::uint64_t samples = *g.spp;
  std::optional<std::string> photometric = string_value(ds, DCM_PhotometricInterpretation);
  if (photometric && (*photometric == "YBR_FULL_422" || *photometric == "YBR_PARTIAL_422")) {
    samples = 2;
  }
  std::uint64_t values = mul(mul(mul(*g.rows, *g.cols), samples), *g.frames);
  std::uint64_t expected;
  if (*g.bits == 1) {
    expected = values == kSaturated ? kSaturated : values / 8 + (values % 8 != 0 ? 1 : 0);
  } else {
    expected = mul(values, *g.bits / 8);
  }
  const std::uint64_t padded = expected == kSaturated ? kSaturated : expected + (expected & 1);
  if (declared < expected) {
    c.error("pixel_data.length_short", tag,
            "Pixel Data is shorter than Rows x Columns x Samples per Pixel x Bits Allocated x "
            "Number of Frames requires");
  } else if (declared > padded) {
    c.warning("pixel_data.length_excess", tag,
              "Pixel Data is longer than Rows x Columns x Samples per Pixel x Bits Allocated x "
              "Number of Frames requires");
  }
}

void check_pixel_data(DcmItem& ds, Collector& c) {
  DcmElement* e = find_element(ds, DCM_PixelData);
  if (e == nullptr) return;  // SR, PDF, presentation states: no pixel data to check
  const std::string tag = tag_text(DCM_PixelData);

  Geometry g;
  g.rows = image_number(ds, DCM_Rows, true, 0, c);
  g.cols = image_number(ds, DCM_Columns, true, 0, c);
  g.bits = image_number(ds, DCM_BitsAllocated, true, 0, c);
  g.spp = image_number(ds, DCM_SamplesPerPixel, true, 0, c);
  g.frames = image_number(ds, DCM_NumberOfFrames, false, 1, c);
  if (g.bits && *g.bits != 1 && *g.bits % 8 != 0) {
    c.error("pixel_data.attribute_invalid", tag_text(DCM_BitsAllocated),
            "Bits Allocated is neither 1 nor a multiple of 8");
    g.bits.reset();
  }

  E_TransferSyntax original = EXS_LittleEndianExplicit;
  DcmPixelSequence* fragments = nullptr;
  if (e->ident() == EVR_PixelData) {
    auto* pixel = static_cast<DcmPixelData*>(e);
    const DcmRepresentationParameter* param = nullptr;
    pixel->getOriginalRepresentationKey(original, param);
    if (DcmXfer(original).isEncapsulated() &&
        pixel->getEncapsulatedRepresentation(original, param, fragments).bad())
      fragments = nullptr;
  }
  if (DcmXfer(original).isEncapsulated())
    check_fragments(fragments, g.frames, original, tag, c);
  else
    check_native_length(ds, *e, g, tag, c);
}

// --- identifiers ---------------------------------------------------------------------------------

struct IdentifierAttribute {
  Tag tag;
  std::size_t max_length;  // of the VR; 0: the UID rules cover the length
};

constexpr std::array<IdentifierAttribute, 8> kIdentifiers = {{
    {Tag{0x0010, 0x0020}, 64},  // Patient ID (LO)
    {Tag{0x0010, 0x0021}, 64},  // Issuer of Patient ID (LO)
    {Tag{0x0008, 0x0050}, 16},  // Accession Number (SH)
    {Tag{0x0020, 0x0010}, 16},  // Study ID (SH)
    {Tag{0x0020, 0x000D}, 0},   // Study Instance UID
    {Tag{0x0020, 0x000E}, 0},   // Series Instance UID
    {Tag{0x0008, 0x0018}, 0},   // SOP Instance UID
    {Tag{0x0008, 0x0016}, 0},   // SOP Class UID
}};

void check_identifier_value(std::string_view value, const std::string& tag, const std::string& what,
                            Collector& c) {
  UnsafeKind kind = unsafe_identifier(value);
  if (kind != UnsafeKind::kNone) {
    c.error("identifier.unsafe_characters", tag, what + " " + std::string(describe(kind)));
  }
}

void check_identifiers(DcmItem& ds, Collector& c) {
  for (const IdentifierAttribute& attr : kIdentifiers) {
    const DcmTagKey key = key_of(attr.tag);
    std::optional<std::string> v = string_value(ds, key);
    if (!v || v->empty()) continue;
    std::string name = DcmTag(key).getTagName();
    check_identifier_value(*v, attr.tag.to_string(), name, c);
    if (attr.max_length != 0 && v->size() > attr.max_length) {
      c.error("attribute.too_long", attr.tag.to_string(),
              name + " is longer than its value representation allows");
    }
  }
  DcmSequenceOfItems* seq = nullptr;
  if (ds.findAndGetSequence(DCM_OtherPatientIDsSequence, seq).good() && seq != nullptr) {
    for (unsigned long i = 0; i < seq->card(); ++i) {
      DcmItem* item = seq->getItem(i);
      if (item == nullptr) continue;
      for (Tag t : {Tag{0x0010, 0x0020}, Tag{0x0010, 0x0021}}) {
        std::optional<std::string> v = string_value(*item, key_of(t));
        if (!v || v->empty()) continue;
        check_identifier_value(
            *v, tag_text(DCM_OtherPatientIDsSequence),
            "an Other Patient IDs item's " + std::string(DcmTag(key_of(t)).getTagName()), c);
      }
    }
  }
}

// Odd value lengths and oversized private values, from the structural pre-scan (DCMTK pads odd
// values when it reads them). At most two findings: they do not count against max_findings.
void value_length_findings(const std::filesystem::path& path, const Profile& profile,
                           ValidationReport& report) {
  // The object passed the door's pre-scan under the site's limits (ingest.dicom.max_object_size,
  // max_items may exceed the defaults); this walk only counts, and costs no memory per item.
  ingest::PrescanLimits counting;
  counting.max_object_size = UINT64_MAX;
  counting.max_items = UINT64_MAX;
  counting.max_elements = UINT64_MAX;
  auto scan = ingest::prescan_file(path, counting);
  if (!scan) return;  // the object passed it at ingest; DCMTK's parse above judged it again
  const auto tag = [](std::uint32_t t) {
    return Tag{static_cast<std::uint16_t>(t >> 16), static_cast<std::uint16_t>(t & 0xFFFF)}
        .to_string();
  };
  if (scan->odd_lengths > 0)
    report.findings.push_back(
        Finding{"value.odd_length", tag(scan->first_odd_length_tag),
                std::to_string(scan->odd_lengths) +
                    " value(s) of odd length (PS3.5 7.1.1: lengths are even); DCMTK pads them",
                Severity::kWarning});
  if (profile.max_private_value > 0 && scan->largest_private_value > profile.max_private_value) {
    const bool accepted = accepts(profile, "private.oversized", tag(scan->largest_private_tag));
    if (!accepted) report.ok = false;
    report.findings.push_back(Finding{"private.oversized", tag(scan->largest_private_tag),
                                      "a private value of " +
                                          std::to_string(scan->largest_private_value) +
                                          " bytes, longer than the profile's limit of " +
                                          std::to_string(profile.max_private_value),
                                      accepted ? Severity::kWarning : Severity::kError, accepted});
  }
}

}  // namespace

ValidationReport validate_dataset(DcmItem& dataset, const Profile& profile) {
  ValidationReport report;
  Collector c(report, profile);
  check_required(dataset, profile, c);
  check_health_number(dataset, profile, c);
  if (profile.check_uids) check_identifying_uids(dataset, c);
  walk_dataset(dataset, profile, c);
  if (profile.check_dates) check_dates(dataset, c);
  check_modality(dataset, profile, c);
  if (profile.check_pixel_data) check_pixel_data(dataset, c);
  if (profile.check_identifiers) check_identifiers(dataset, c);
  c.finish();
  return report;
}

Result<ValidationReport> validate_file(const std::filesystem::path& path, const Profile& profile,
                                       std::unique_ptr<DcmFileFormat>* loaded) {
  // Tell "cannot read the file" (our problem) from "cannot parse the object" (the object's).
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    int err = errno;
    return make_error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                      "stat object: " + errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) return make_error(ErrorCode::kIo, "object is not a regular file");
  if (::access(path.c_str(), R_OK) != 0) {
    return make_error(ErrorCode::kIo, "object not readable: " + errno_text(errno));
  }

  auto file = std::make_unique<DcmFileFormat>();
  OFCondition cond = dcmtk_guard([&] {
    return file->loadFile(OFFilename(path.c_str()), EXS_Unknown, EGL_noChange, kReadLimit);
  });
  if (cond.bad()) {
    ValidationReport report;
    report.ok = false;
    // DCMTK's condition texts name the problem, never a value of the object.
    report.findings.push_back(Finding{"parse", "",
                                      std::string("the object could not be parsed: ") + cond.text(),
                                      Severity::kError});
    return report;
  }
  DcmDataset* ds = file->getDataset();
  if (ds == nullptr) return make_error(ErrorCode::kInternal, "DCMTK returned no dataset");
  ValidationReport report = validate_dataset(*ds, profile);
  if (profile.check_value_lengths) value_length_findings(path, profile, report);
  if (loaded != nullptr) *loaded = std::move(file);
  return report;
}

Decision decide(const ValidationReport& report) {
  if (report.ok) return Decision::accept();
  std::vector<std::string> reasons;
  for (const Finding& f : report.findings) {
    if (f.severity != Severity::kError) continue;
    reasons.push_back(f.tag.empty() ? f.code : f.code + " " + f.tag);
  }
  if (reasons.empty()) reasons.push_back("findings.truncated");  // errors dropped by max_findings
  return Decision::reject(std::move(reasons));
}

}  // namespace dirgw::policy
