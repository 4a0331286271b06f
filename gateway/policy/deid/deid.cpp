// The walk: every item of an object at every depth of sequences (iteratively, bounded by
// kMaxDepth), each attribute sent to the rule of its concern, then the attributes that say the
// object was de-identified and how.
#include "policy/deid/deid.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/dcmtk_guard.h"
#include "dcmtk/config/osconfig.h"  // must come first among the DCMTK headers
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcistrmb.h"
#include "dcmtk/dcmdata/dcitem.h"
#include "dcmtk/dcmdata/dcsequen.h"
#include "policy/deid/deid_internal.h"

namespace dirgw::policy::deid {

namespace {

// Tags dirgw treats although Table E.1-1 does not list them.
const DcmTagKey kTextValue(0x0040, 0xA160);
const DcmTagKey kUnformattedTextValue(0x0070, 0x0006);

// A value DCMTK kept as bytes (VR UN, or an implicit-VR tag its dictionary does not know: a
// vendor's private sequence, a public attribute newer than DCMTK) that holds items, i.e. starts
// with an item tag: a sequence in UN's encoding (implicit VR little endian, PS3.5 6.2.2).
// Parsed into a sequence in `item`'s place, so that its items are de-identified like any other's;
// kept as bytes, whatever is nested (a patient's name, original UIDs) would pass unread. The
// pre-scan walked these items already (their depth, count and structure). nullptr when `e` is
// not one, or its items do not parse (it is then treated as before: an opaque value).
// DCMTK's own way of reading a sequence given as UN (its constructor for that is protected):
// the items are read in implicit VR little endian whatever the object's syntax.
struct UnSequence : DcmSequenceOfItems {
  UnSequence(const DcmTag& tag, Uint32 length) : DcmSequenceOfItems(tag, length, OFTrue) {}
};

DcmElement* as_sequence(DcmItem& item, DcmElement* e) {
  const DcmEVR vr = e->ident();
  if (vr != EVR_UN && vr != EVR_UNKNOWN && vr != EVR_UNKNOWN2B) return nullptr;
  const Uint32 length = e->getLength();
  if (length < 8 || length == DCM_UndefinedLength) return nullptr;
  // The first four bytes first: a large opaque value (a vendor's blob) is not loaded to learn
  // that it holds no items.
  Uint8 head[4] = {};
  if (e->getPartialValue(head, 0, 4).bad()) return nullptr;
  if (head[0] != 0xFE || head[1] != 0xFF || head[2] != 0x00 || head[3] != 0xE0) return nullptr;
  Uint8* bytes = nullptr;
  if (e->getUint8Array(bytes).bad() || bytes == nullptr) return nullptr;
  DcmTag tag(e->getTag());
  tag.setVR(DcmVR(EVR_SQ));
  auto seq = std::make_unique<UnSequence>(tag, length);
  DcmInputBufferStream in;
  in.setBuffer(bytes, length);
  in.setEos();
  const OFCondition read = dcmtk_guard([&] {
    seq->transferInit();
    const OFCondition c = seq->read(in, EXS_LittleEndianImplicit, EGL_noChange, DCM_MaxReadLength);
    seq->transferEnd();
    return c;
  });
  if (read.bad()) return nullptr;
  DcmSequenceOfItems* parsed = seq.release();  // owned by `item` once inserted
  if (item.insert(parsed, OFTrue /* replace e, which is deleted */).bad()) {
    delete parsed;
    return nullptr;
  }
  return parsed;
}

}  // namespace

namespace detail {

Result<void> Deidentifier::run(DcmItem& top) {
  const std::string pid = item_string(top, DCM_PatientID).value_or("");
  const std::string issuer = item_string(top, DCM_IssuerOfPatientID).value_or("");
  patient_pseudonym_ = pseudonymize_patient_id(key_, pid, issuer);
  if (o_.dates == LongitudinalDates::kRetainModified) {
    // Without a Patient ID the study is the unit that stays consistent.
    shift_days_ =
        pid.empty()
            ? date_shift_days(key_, item_string(top, DCM_StudyInstanceUID).value_or(""), "study")
            : date_shift_days(key_, pid, issuer);
  }
  std::vector<Frame> stack{{&top, "", 0}};
  while (!stack.empty()) {
    Frame f = std::move(stack.back());
    stack.pop_back();
    if (f.depth > kMaxDepth) {
      return make_error(ErrorCode::kBadDicom,
                        "sequences nest deeper than " + std::to_string(kMaxDepth) + " levels");
    }
    std::vector<Frame> children;
    if (auto r = process_item(f, children); !r) return r;
    for (auto it = children.rbegin(); it != children.rend(); ++it) stack.push_back(*it);
  }
  return mark_deidentified(top);
}

Result<void> Deidentifier::process_item(const Frame& f, std::vector<Frame>& children) {
  DcmItem& item = *f.item;
  std::vector<DcmElement*> elements;
  for (unsigned long i = 0; i < item.card(); ++i) elements.push_back(item.getElement(i));
  for (DcmElement*& e : elements)
    if (DcmElement* seq = as_sequence(item, e)) e = seq;
  PrivateBlocks blocks = collect_creators(elements);
  for (DcmElement* e : elements) {
    if (auto r = process_element(item, e, f, blocks, children); !r) return r;
  }
  finish_creators(item, f, blocks);
  return {};
}

// One attribute of an item. `e` may be gone (removed or replaced) on return.
Result<void> Deidentifier::process_element(DcmItem& item, DcmElement* e, const Frame& f,
                                           PrivateBlocks& blocks, std::vector<Frame>& children) {
  const DcmTagKey k = e->getTag().getXTag();
  const std::uint16_t g = k.getGroup();
  const std::uint16_t el = k.getElement();
  const std::string path = f.path + tag_text(k);
  const std::size_t first_child = children.size();

  if (g % 2 == 1) {  // private
    process_private(item, e, f, blocks, children);
    return {};
  }
  if (g == 0x0002) {  // file meta information inside a dataset: never belongs there
    remove(item, e);
    note(path, "X", 'X', true, false);
    return {};
  }
  if (el == 0x0000) return {};  // group length: recalculated on writing
  if ((g & 0xFF00) == 0x6000 && (g & 0xFF) <= 0x1E) {
    remove_overlay(item, e, path);
    return {};
  }

  if (k == DCM_PatientID && f.depth == 0) {
    const TableRow* row = find_row(g, el);
    if (auto r = put(item, e, EVR_LO, patient_pseudonym_); !r) return r;
    note(path, row != nullptr ? action_code(row->basic) : "Z/D", 'D', true, false, {},
         patient_pseudonym_);
    return {};
  }
  if (k == DCM_PatientName && f.depth == 0) {
    if (auto r = put(item, e, EVR_PN, patient_pseudonym_); !r) return r;
    note(path, "Z", 'D', true, false, {}, patient_pseudonym_);
    return {};
  }
  if (k == kTextValue || k == kUnformattedTextValue) return replace_text_value(item, e, path);

  const TableRow* row = find_row(g, el);
  if (row == nullptr) row = find_supplement_row(g, el);
  if (row == nullptr && g == 0x0010 && !patient_characteristic(el)) {
    // The Patient group, where each new edition adds identity first (Name to Use, pronouns,
    // gender identity, issuer qualifiers...): an attribute this table does not list is removed.
    remove(item, e);
    note(path, "X (patient group, not in the table)", 'X', true, false);
    return {};
  }
  if (row == nullptr && f.dummy_unlisted && !is_sequence(e) && target_vr(e, nullptr) != EVR_SQ) {
    // In a sequence the table dummies: a code's value and meaning are the identity itself. A
    // UID is pseudonymised (one the standard registered, a SOP Class, is kept: replace_uids).
    const DcmEVR vr = target_vr(e, nullptr);
    if (auto r = dummy(item, e, nullptr); !r) return r.error();
    DcmElement* after = nullptr;
    const std::string now = item.findAndGetElement(k, after, OFFalse).good() && after != nullptr
                                ? read_text(after)
                                : std::string();
    note(path, "D (in a dummied sequence)", vr == EVR_UI ? 'U' : 'D', true, false, {}, now);
    return {};
  }
  if (row == nullptr) {
    // Not in the table: kept. A sequence's items are de-identified all the same.
    if (is_sequence(e)) {
      push_items(e, f.path, children);
    } else if (target_vr(e, nullptr) == EVR_SQ) {
      // A public sequence that could not be parsed (defined-length UN): opaque, removed.
      remove(item, e);
      note(path, "X (opaque sequence)", 'X', true, false);
    }
    fix_depth(children, first_child, f);
    return {};
  }
  return process_table_attribute(item, e, *row, f, children);
}

// Patient-group attributes the table does not list that describe the body, not the person,
// kept by the patient-group rule: Subject Relative Position in Image, Type of Patient ID,
// Quality Control Subject, Body Mass Index, measured AP and lateral dimensions, the species,
// Examined Body Thickness.
bool Deidentifier::patient_characteristic(std::uint16_t element) {
  switch (element) {
    case 0x0022:
    case 0x0028:
    case 0x0200:
    case 0x1022:
    case 0x1023:
    case 0x1024:
    case 0x2201:
    case 0x2202:
    case 0x9431:
      return true;
    default:
      return false;
  }
}

// Free text of SR content items and graphic annotations: not in Table E.1-1 (the sequences
// holding them are), never sent raw.
Result<void> Deidentifier::replace_text_value(DcmItem& item, DcmElement* e,
                                              const std::string& path) {
  if (o_.clean_descriptors && allowed_descriptor(o_, read_text(e))) {
    note(path, "C", 'K', true, true);
  } else {
    if (auto r = put(item, e, target_vr(e, nullptr) == EVR_UN ? EVR_UT : target_vr(e, nullptr),
                     kDummyText);
        !r) {
      return r;
    }
    note(path, "D (text value)", 'D', true, false, {}, kDummyText);
  }
  return {};
}

void Deidentifier::fix_depth(std::vector<Frame>& children, std::size_t from, const Frame& parent) {
  for (std::size_t i = from; i < children.size(); ++i) {
    children[i].depth = parent.depth + 1;
    children[i].dummy_unlisted = children[i].dummy_unlisted || parent.dummy_unlisted;
  }
}

Result<void> Deidentifier::mark_deidentified(DcmItem& top) {
  auto set = [&](const DcmTagKey& k, const std::string& v) -> Result<void> {
    if (top.putAndInsertString(k, v.c_str()).bad()) {
      return make_error(ErrorCode::kInternal, "cannot set " + tag_text(k));
    }
    note(tag_text(k), "dirgw", 'A', false, false, {}, v);
    return {};
  };
  if (auto r = set(DCM_PatientIdentityRemoved, "YES"); !r) return r;

  struct Used {
    const char* code;
    const char* meaning;
  };
  std::vector<Used> used{{"113100", "Basic Application Confidentiality Profile"}};
  if (o_.clean_graphics) used.push_back({"113103", "Clean Graphics Option"});
  if (o_.clean_structured_content) used.push_back({"113104", "Clean Structured Content Option"});
  if (o_.clean_descriptors) used.push_back({"113105", "Clean Descriptors Option"});
  if (o_.dates == LongitudinalDates::kRetainFull) {
    used.push_back({"113106", "Retain Longitudinal Temporal Information Full Dates Option"});
  }
  if (o_.dates == LongitudinalDates::kRetainModified) {
    used.push_back({"113107", "Retain Longitudinal Temporal Information Modified Dates Option"});
  }
  if (o_.retain_patient_characteristics) {
    used.push_back({"113108", "Retain Patient Characteristics Option"});
  }
  if (o_.retain_device_identity) used.push_back({"113109", "Retain Device Identity Option"});
  if (o_.retain_uids) used.push_back({"113110", "Retain UIDs Option"});
  if (!o_.safe_private.empty()) used.push_back({"113111", "Retain Safe Private Option"});
  if (o_.retain_institution_identity) {
    used.push_back({"113112", "Retain Institution Identity Option"});
  }

  // De-identification Method (LO, 1-n): what was done, in words, one value per part.
  std::vector<std::string> method{"dirgw PS3.15 E.1-1 " + std::string(table_edition()) +
                                  " Basic Profile"};
  for (std::size_t i = 1; i < used.size(); ++i) {
    std::string m = used[i].meaning;
    if (m.size() > 64) m = m.substr(0, 64);
    method.push_back(m);
  }
  if (auto r = set(DCM_DeidentificationMethod, join_values(method)); !r) return r;

  top.findAndDeleteElement(DCM_DeidentificationMethodCodeSequence);
  for (const Used& u : used) {
    DcmItem* it = nullptr;
    if (top.findOrCreateSequenceItem(DCM_DeidentificationMethodCodeSequence, it, -2).bad() ||
        it == nullptr || it->putAndInsertString(DCM_CodeValue, u.code).bad() ||
        it->putAndInsertString(DCM_CodingSchemeDesignator, "DCM").bad() ||
        it->putAndInsertString(DCM_CodeMeaning, u.meaning).bad()) {
      return make_error(ErrorCode::kInternal, "cannot fill De-identification Method Code");
    }
  }
  note(tag_text(DCM_DeidentificationMethodCodeSequence), "dirgw", 'A', false, false, {},
       std::to_string(used.size()) + " items");

  const char* temporal = o_.dates == LongitudinalDates::kRetainFull ? "UNMODIFIED"
                         : o_.dates == LongitudinalDates::kRetainModified && dates_modified_
                             ? "MODIFIED"
                         : o_.dates == LongitudinalDates::kRetainModified ? "UNMODIFIED"
                                                                          : "REMOVED";
  return set(DCM_LongitudinalTemporalInformationModified, temporal);
}

}  // namespace detail

using detail::item_string;

Result<void> check_options(const DeidOptions& options) {
  for (const SafePrivateAttribute& s : options.safe_private) {
    const std::string_view c = trim_dicom(s.creator);
    if (c.empty() || c.size() > 64 || c.find('\\') != c.npos) {
      return make_error(ErrorCode::kConfig,
                        "deidentify safe_private: creator must be 1-64 characters without '\\'");
    }
    if (s.group != 0 && (s.group % 2 == 0 || s.group < 0x0009 || s.group == 0xFFFF)) {
      return make_error(ErrorCode::kConfig,
                        "deidentify safe_private: group must be an odd (private) group");
    }
  }
  for (const BurnedInAllowRule& r : options.burned_in_allow) {
    if (r.sop_class_uid.empty() && r.modality.empty() && r.manufacturer.empty() &&
        r.model.empty()) {
      return make_error(ErrorCode::kConfig,
                        "deidentify burned_in_allow: a rule must name at least one of "
                        "sop_class_uid, modality, manufacturer, model");
    }
  }
  for (const std::string& a : options.descriptor_allow_list) {
    if (trim_dicom(a).empty()) {
      return make_error(ErrorCode::kConfig, "deidentify descriptor_allow_list: empty entry");
    }
  }
  return {};
}

Result<DeidReport> deidentify_dataset(DcmItem& dataset, const DeidOptions& options,
                                      const Key& key) {
  if (auto r = check_options(options); !r) return r.error();
  DeidReport report;
  detail::Deidentifier d(options, key, report);
  if (auto r = d.run(dataset); !r) return r.error();
  report.sop_class_uid = item_string(dataset, DCM_SOPClassUID).value_or("");
  report.sop_instance_uid = item_string(dataset, DCM_SOPInstanceUID).value_or("");
  report.study_instance_uid = item_string(dataset, DCM_StudyInstanceUID).value_or("");
  report.series_instance_uid = item_string(dataset, DCM_SeriesInstanceUID).value_or("");
  return report;
}

}  // namespace dirgw::policy::deid
