// The table-driven attribute actions: which PS3.15 Table E.1-1 action applies to an attribute
// under the options (resolve), and what each action does to it (X, Z, D, U, K, C), including the
// combined ones. The pseudonyms and date shifts that some of them write are in pseudonyms.cpp.
#include <algorithm>

#include "dcmtk/config/osconfig.h"  // must come first among the DCMTK headers
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcitem.h"
#include "dcmtk/dcmdata/dcsequen.h"
#include "dcmtk/dcmdata/dcvrat.h"
#include "policy/deid/deid_internal.h"

namespace dirgw::policy::deid::detail {

bool option_enabled(const DeidOptions& o, OptionColumn c) {
  switch (c) {
    case OptionColumn::kRetainSafePrivate:
      return !o.safe_private.empty();
    case OptionColumn::kRetainUids:
      return o.retain_uids;
    case OptionColumn::kRetainDeviceIdentity:
      return o.retain_device_identity;
    case OptionColumn::kRetainInstitutionIdentity:
      return o.retain_institution_identity;
    case OptionColumn::kRetainPatientCharacteristics:
      return o.retain_patient_characteristics;
    case OptionColumn::kRetainLongitudinalFullDates:
      return o.dates == LongitudinalDates::kRetainFull;
    case OptionColumn::kRetainLongitudinalModifiedDates:
      return o.dates == LongitudinalDates::kRetainModified;
    case OptionColumn::kCleanDescriptors:
      return o.clean_descriptors;
    case OptionColumn::kCleanStructuredContent:
      return o.clean_structured_content;
    case OptionColumn::kCleanGraphics:
      return o.clean_graphics;
  }
  return false;
}

Resolved resolve(const TableRow& row, const DeidOptions& o) {
  std::optional<OptionColumn> clean;
  for (std::size_t i = 0; i < kOptionColumns; ++i) {
    const auto c = static_cast<OptionColumn>(i);
    if (!option_enabled(o, c)) continue;
    if (row.option(c) == Action::kK) return {Action::kK, c};
    if (row.option(c) == Action::kC && !clean) clean = c;
  }
  if (clean) return {Action::kC, clean};
  return {row.basic, std::nullopt};
}

bool allowed_descriptor(const DeidOptions& o, std::string_view value) {
  const std::string_view v = trim_dicom(value);
  if (v.empty()) return false;
  return std::any_of(o.descriptor_allow_list.begin(), o.descriptor_allow_list.end(),
                     [&](const std::string& a) { return iequals(trim_dicom(a), v); });
}

void Deidentifier::note(const std::string& path, std::string_view rule, char action, bool old_id,
                        bool new_id, std::string old_value, std::string new_value) {
  DeidChange c;
  c.path = path;
  c.rule = std::string(rule);
  c.action = action;
  c.old_identifying = old_id;
  c.new_identifying = new_id;
  if (!old_id) c.old_value = std::move(old_value);
  if (!new_id) c.new_value = std::move(new_value);
  report_.changes.push_back(std::move(c));
}

// Replaces `e` (which `item` owns) by an element of `vr` holding `value`. `e` is gone after.
Result<void> Deidentifier::put(DcmItem& item, DcmElement* e, DcmEVR vr, const std::string& value) {
  const DcmTagKey key = e->getTag().getXTag();
  if (e->ident() == vr) {
    OFCondition c = vr == EVR_AT ? static_cast<DcmAttributeTag*>(e)->putTagVal(DcmTagKey(0, 0))
                                 : e->putString(value.c_str());
    if (c.good()) return {};
    return make_error(ErrorCode::kInternal, "cannot replace " + tag_text(key) + ": " + c.text());
  }
  DcmElement* fresh = nullptr;
  OFCondition c = DcmItem::newDicomElementWithVR(fresh, DcmTag(key, DcmVR(vr)));
  if (c.good() && fresh != nullptr) {
    c = vr == EVR_AT ? static_cast<DcmAttributeTag*>(fresh)->putTagVal(DcmTagKey(0, 0))
                     : fresh->putString(value.c_str());
  }
  if (c.good()) c = item.insert(fresh, OFTrue /* replace e, which is deleted */);
  if (c.bad()) {
    delete fresh;
    return make_error(ErrorCode::kInternal, "cannot replace " + tag_text(key) + ": " + c.text());
  }
  return {};
}

void Deidentifier::remove(DcmItem& item, DcmElement* e) { delete item.remove(e); }

Result<void> Deidentifier::empty(DcmItem& item, DcmElement* e) {
  if (is_sequence(e)) {
    e->clear();
    return {};
  }
  const DcmEVR vr = target_vr(e, nullptr);
  if (vr == EVR_SQ) {
    // A sequence DCMTK kept as bytes (a defined-length UN): an empty sequence in its place.
    const DcmTagKey key = e->getTag().getXTag();
    auto* fresh = new DcmSequenceOfItems(DcmTag(key, DcmVR(EVR_SQ)));
    if (item.insert(fresh, OFTrue /* replace e, which is deleted */).good()) return {};
    delete fresh;
    return make_error(ErrorCode::kInternal, "cannot empty " + tag_text(key));
  }
  if (vr == e->ident() || vr == EVR_UN) {
    e->clear();
    return {};
  }
  return put(item, e, vr, "");
}

Result<void> Deidentifier::dummy(DcmItem& item, DcmElement* e, const TableRow* row) {
  const DcmEVR vr = target_vr(e, row);
  if (vr == EVR_UI) return replace_uids(item, e);
  if (DcmVR(vr).isaString() || vr == EVR_AT || vr == EVR_US || vr == EVR_SS || vr == EVR_UL ||
      vr == EVR_SL || vr == EVR_FL || vr == EVR_FD || vr == EVR_SV || vr == EVR_UV) {
    if (vr != EVR_UN) return put(item, e, vr, dummy_text(vr));
  }
  // Binary (OB, OW, ..., or UN of unknown VR): two zero bytes.
  const Uint8 zero[2] = {0, 0};
  if (e->putUint8Array(zero, 2).good()) return {};
  return make_error(ErrorCode::kInternal, "cannot replace " + tag_text(e->getTag()));
}

// Table action C under the option column that asked for it.
// Returns the action actually taken ('C', 'K', or the basic action's letter).
Result<char> Deidentifier::clean(DcmItem& item, DcmElement* e, const TableRow& row,
                                 OptionColumn column, std::vector<Frame>& children,
                                 const std::string& path) {
  const DcmEVR vr = target_vr(e, &row);
  switch (column) {
    case OptionColumn::kRetainLongitudinalModifiedDates: {
      if (vr == EVR_TM) return 'K';  // dates move by whole days: times keep their meaning
      if (vr != EVR_DA && vr != EVR_DT) break;
      return shift_dates(item, e, row, vr, children, path);
    }
    case OptionColumn::kRetainDeviceIdentity: {
      if (vr == EVR_UI) {
        if (auto r = replace_uids(item, e); !r) return r.error();
        return 'U';
      }
      if (!is_text_vr(vr)) break;
      return device_pseudonym(item, e, vr);
    }
    case OptionColumn::kCleanDescriptors:
    case OptionColumn::kRetainPatientCharacteristics:
      if (!is_sequence(e) && is_text_vr(vr) && allowed_descriptor(o_, read_text(e))) return 'K';
      break;
    case OptionColumn::kCleanStructuredContent:
    case OptionColumn::kCleanGraphics:
      if (is_sequence(e)) {
        push_items(e, path, children);
        return 'C';
      }
      // Overlay bitmaps and curve data cannot be cleaned by a program: removed.
      remove(item, e);
      return 'X';
    case OptionColumn::kRetainSafePrivate:  // handled with the private attributes
    case OptionColumn::kRetainUids:
    case OptionColumn::kRetainInstitutionIdentity:
    case OptionColumn::kRetainLongitudinalFullDates:
      break;
  }
  // No safe cleaning for this value: what the Basic Profile does.
  return apply_basic(item, e, row, children, path);
}

Result<char> Deidentifier::apply_basic(DcmItem& item, DcmElement* e, const TableRow& row,
                                       std::vector<Frame>& children, const std::string& path) {
  return apply(item, e, row, row.basic, children, path);
}

// Applies a table action. Without the IOD's module tables the attribute's Type is unknown, so
// the combined actions take the choice that keeps any IOD conformant and reveals nothing:
// X/Z -> Z, X/D, X/Z/D and Z/D -> D, X/Z/U* -> keep the sequence with its UIDs replaced.
Result<char> Deidentifier::apply(DcmItem& item, DcmElement* e, const TableRow& row, Action a,
                                 std::vector<Frame>& children, const std::string& path) {
  const bool seq = is_sequence(e);
  const DcmEVR vr = target_vr(e, &row);
  // A sequence that DCMTK could not parse (a defined-length UN): its content cannot be
  // inspected, so it cannot be kept or cleaned.
  if (!seq && vr == EVR_SQ && a != Action::kZ && a != Action::kXZ) {
    remove(item, e);
    return 'X';
  }
  switch (a) {
    case Action::kNone:
    case Action::kK:
      if (seq) push_items(e, path, children);
      return 'K';
    case Action::kX:
      remove(item, e);
      return 'X';
    case Action::kZ:
    case Action::kXZ:
      if (auto r = empty(item, e); !r) return r.error();
      return 'Z';
    case Action::kD:
    case Action::kZD:
    case Action::kXD:
    case Action::kXZD:
      if (seq) {
        // A sequence's dummy: its items, every attribute in them de-identified, and those the
        // table does not list dummied rather than kept (Frame::dummy_unlisted).
        const std::size_t first = children.size();
        push_items(e, path, children);
        for (std::size_t i = first; i < children.size(); ++i) children[i].dummy_unlisted = true;
        return 'D';
      }
      if (auto r = dummy(item, e, &row); !r) return r.error();
      return vr == EVR_UI ? 'U' : 'D';
    case Action::kU:
    case Action::kXZU:
      if (seq) {
        push_items(e, path, children);
        return 'C';
      }
      if (vr == EVR_UI) {
        if (auto r = replace_uids(item, e); !r) return r.error();
        return 'U';
      }
      if (auto r = empty(item, e); !r) return r.error();
      return 'Z';
    case Action::kC:
      return make_error(ErrorCode::kInternal, "C without an option column");
  }
  return make_error(ErrorCode::kInternal, "unknown action");
}

// An SR content item that restates the patient (TID 1007 Subject Context, Patient): Subject
// Birth Date always, Subject Age and Sex unless Retain Patient Characteristics. Its value would
// otherwise get the generic row of its attribute (a DATE item's Date is kept or shifted with the
// longitudinal date options), while the Patient module's Birth Date in the same object is emptied.
// The items are optional in the template: removed.
bool Deidentifier::restates_patient(DcmItem& content_item) const {
  DcmItem* name = nullptr;
  if (content_item.findAndGetSequenceItem(DCM_ConceptNameCodeSequence, name, 0).bad() ||
      name == nullptr)
    return false;
  if (item_string(*name, DCM_CodingSchemeDesignator).value_or("") != "DCM") return false;
  const std::string code = item_string(*name, DCM_CodeValue).value_or("");
  if (code == "121031") return true;  // Subject Birth Date
  return !o_.retain_patient_characteristics && (code == "121032" || code == "121033");
}

void Deidentifier::push_items(DcmElement* e, const std::string& path,
                              std::vector<Frame>& children) {
  auto* seq = static_cast<DcmSequenceOfItems*>(e);
  const std::string base = path + tag_text(e->getTag()) + "[";
  const bool content = e->getTag().getXTag() == DCM_ContentSequence;
  for (unsigned long i = 0, n = 0; i < seq->card(); ++n) {
    DcmItem* it = seq->getItem(i);
    if (it != nullptr && content && restates_patient(*it)) {
      delete seq->remove(i);
      note(base + std::to_string(n) + "]", "X (subject context)", 'X', true, false);
      continue;
    }
    if (it != nullptr) children.push_back({it, base + std::to_string(n) + "].", 0});
    ++i;
  }
}

Result<void> Deidentifier::process_table_attribute(DcmItem& item, DcmElement* e,
                                                   const TableRow& row, const Frame& f,
                                                   std::vector<Frame>& children) {
  const DcmTagKey k = e->getTag().getXTag();
  const std::string path = f.path + tag_text(k);
  const std::size_t first_child = children.size();
  const Resolved res = resolve(row, o_);
  Result<char> done = res.action == Action::kC ? clean(item, e, row, *res.column, children, f.path)
                                               : apply(item, e, row, res.action, children, f.path);
  if (!done) return done.error();
  const char act = *done;
  // The replacement (a pseudonym, a dummy, a shifted date) is not identifying: report it.
  std::string now;
  DcmElement* after = nullptr;
  if (act != 'X' && act != 'K' && item.findAndGetElement(k, after, OFFalse).good() &&
      after != nullptr && !is_sequence(after)) {
    now = read_text(after);
  }
  note(path, action_code(res.action), act, true, act == 'K', {}, now);
  fix_depth(children, first_child, f);
  return {};
}

}  // namespace dirgw::policy::deid::detail
