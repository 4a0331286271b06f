#include "policy/deid/deid.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string_view>

#include "common/files.h"
#include "dcmtk/config/osconfig.h"  // must come first among the DCMTK headers
#include "dcmtk/dcmdata/dcdatset.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcitem.h"
#include "dcmtk/dcmdata/dcmetinf.h"
#include "dcmtk/dcmdata/dcostrmf.h"
#include "dcmtk/dcmdata/dcsequen.h"
#include "dcmtk/dcmdata/dcstack.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmdata/dcvrat.h"
#include "dcmtk/dcmdata/dcwcache.h"

namespace dirgw::policy::deid {

namespace {

constexpr Uint32 kReadLimit = 4096;  // values larger than this stay on disk (Pixel Data above all)
constexpr std::string_view kWellKnownRoot = "1.2.840.10008.";
constexpr const char* kDummyText = "ANONYMIZED";
// dirgw's Implementation Class UID for the files it writes (a UUID-derived 2.25 UID, fixed).
constexpr const char* kImplementationClassUid = "2.25.291037474183716587532690612361375866813";
constexpr const char* kImplementationVersion = "DIRGW_DEID_1";
constexpr int kMaxShiftDays = 1826;  // about five years

// Tags dirgw treats although Table E.1-1 does not list them.
const DcmTagKey kTextValue(0x0040, 0xA160);
const DcmTagKey kUnformattedTextValue(0x0070, 0x0006);

std::string_view trim(std::string_view v) {
  while (!v.empty() && (v.back() == ' ' || v.back() == '\0')) v.remove_suffix(1);
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  return v;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) ==
                  std::toupper(static_cast<unsigned char>(y));
         });
}

std::string tag_text(const DcmTagKey& k) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "(%04X,%04X)", static_cast<unsigned>(k.getGroup()),
                static_cast<unsigned>(k.getElement()));
  return buf;
}

std::vector<std::string> split_values(std::string_view v) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t pos = v.find('\\', start);
    out.emplace_back(trim(v.substr(start, pos == v.npos ? v.npos : pos - start)));
    if (pos == v.npos) break;
    start = pos + 1;
  }
  return out;
}

std::string join_values(const std::vector<std::string>& values) {
  std::string out;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += '\\';
    out += values[i];
  }
  return out;
}

std::string to_decimal(std::array<std::uint8_t, 16> v) {
  std::string digits;
  while (true) {
    unsigned rem = 0;
    bool nonzero = false;
    for (std::uint8_t& b : v) {
      const unsigned cur = rem * 256 + b;
      b = static_cast<std::uint8_t>(cur / 10);
      rem = cur % 10;
      nonzero = nonzero || b != 0;
    }
    digits.push_back(static_cast<char>('0' + rem));
    if (!nonzero) break;
  }
  std::reverse(digits.begin(), digits.end());
  return digits;
}

std::string upper_hex(const std::uint8_t* data, std::size_t n) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 0xF]);
  }
  return out;
}

bool is_sequence(DcmElement* e) { return e->ident() == EVR_SQ; }

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// A value as text. Elements encoded as UN (unknown VR, or implicit private) are read as the bytes
// they hold, which for the text VRs of the table is the value itself.
std::string read_text(DcmElement* e) {
  if (e->getLength() == 0) return {};
  if (e->ident() == EVR_UN || e->ident() == EVR_OB || e->ident() == EVR_UNKNOWN ||
      e->ident() == EVR_UNKNOWN2B) {
    Uint8* bytes = nullptr;
    if (e->getUint8Array(bytes).bad() || bytes == nullptr) return {};
    return std::string(
        trim(std::string_view(reinterpret_cast<const char*>(bytes), e->getLength())));
  }
  OFString s;
  if (e->getOFStringArray(s, OFFalse).bad()) return {};
  return std::string(trim(std::string_view(s.c_str(), s.length())));
}

std::optional<std::string> item_string(DcmItem& item, const DcmTagKey& key) {
  DcmElement* e = nullptr;
  if (item.findAndGetElement(key, e, OFFalse).bad() || e == nullptr) return std::nullopt;
  return read_text(e);
}

// The VR to write a replacement as: the element's own unless it is UN, then the dictionary's,
// then the table's.
DcmEVR target_vr(DcmElement* e, const TableRow* row) {
  const DcmEVR own = e->ident();
  if (own != EVR_UN && own != EVR_UNKNOWN && own != EVR_UNKNOWN2B) return own;
  const DcmTag dict_tag(e->getTag().getXTag());
  const DcmEVR dict = dict_tag.getEVR();
  if (dict != EVR_UN && dict != EVR_UNKNOWN && dict != EVR_UNKNOWN2B) return dict;
  if (row != nullptr && row->vr[0] != '\0') {
    const DcmEVR t = DcmVR(row->vr).getEVR();
    if (t != EVR_UNKNOWN) return t;
  }
  return EVR_UN;
}

std::size_t max_length(DcmEVR vr) {
  switch (vr) {
    case EVR_AE:
    case EVR_CS:
    case EVR_SH:
      return 16;
    default:
      return 64;
  }
}

// A non-zero length dummy of the VR (Table E.1-1 action D). UI is handled by the caller (U).
std::string dummy_text(DcmEVR vr) {
  switch (vr) {
    case EVR_AS:
      return "000Y";
    case EVR_DA:
      return "19000101";
    case EVR_DT:
      return "19000101000000";
    case EVR_TM:
      return "000000";
    case EVR_DS:
    case EVR_IS:
    case EVR_US:
    case EVR_SS:
    case EVR_UL:
    case EVR_SL:
    case EVR_FL:
    case EVR_FD:
    case EVR_SV:
    case EVR_UV:
      return "0";
    case EVR_UR:
      return "urn:dirgw:anonymized";
    default:
      return kDummyText;
  }
}

bool is_text_vr(DcmEVR vr) { return DcmVR(vr).isaString() && vr != EVR_UN; }

// Shifts one DA value, or the date part of one DT value, by `days`. nullopt: not a date.
std::optional<std::string> shift_date(std::string_view v, int days, bool datetime) {
  using namespace std::chrono;
  std::size_t digits = 0;
  while (digits < v.size() && digits < 8 && std::isdigit(static_cast<unsigned char>(v[digits]))) {
    ++digits;
  }
  if (datetime ? (digits != 4 && digits != 6 && digits != 8) : digits != 8) return std::nullopt;
  if (!datetime && v.size() != 8) return std::nullopt;
  const int y = std::stoi(std::string(v.substr(0, 4)));
  const unsigned m =
      digits >= 6 ? static_cast<unsigned>(std::stoi(std::string(v.substr(4, 2)))) : 1;
  const unsigned d =
      digits >= 8 ? static_cast<unsigned>(std::stoi(std::string(v.substr(6, 2)))) : 1;
  const year_month_day ymd{year{y}, month{m}, day{d}};
  if (!ymd.ok()) return std::nullopt;
  const year_month_day shifted{sys_days{ymd} + std::chrono::days{days}};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d%02u%02u", static_cast<int>(shifted.year()),
                static_cast<unsigned>(shifted.month()), static_cast<unsigned>(shifted.day()));
  return std::string(buf, digits) + std::string(v.substr(digits));
}

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

// The action for a row under the options: an enabled option's K wins (the option exists to keep
// the attribute), then an enabled option's C, then the Basic Profile's action.
struct Resolved {
  Action action;
  std::optional<OptionColumn> column;  // set when an option column decided
};

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
  const std::string_view v = trim(value);
  if (v.empty()) return false;
  return std::any_of(o.descriptor_allow_list.begin(), o.descriptor_allow_list.end(),
                     [&](const std::string& a) { return iequals(trim(a), v); });
}

struct Frame {
  DcmItem* item;
  std::string path;  // "" at the top level, else "(gggg,eeee)[i]."
  int depth;
};

class Deidentifier {
 public:
  Deidentifier(const DeidOptions& options, const Key& key, DeidReport& report)
      : o_(options), key_(key), report_(report) {}

  Result<void> run(DcmItem& top) {
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

 private:
  void note(const std::string& path, std::string_view rule, char action, bool old_id, bool new_id,
            std::string old_value = {}, std::string new_value = {}) {
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
  Result<void> put(DcmItem& item, DcmElement* e, DcmEVR vr, const std::string& value) {
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

  void remove(DcmItem& item, DcmElement* e) { delete item.remove(e); }

  Result<void> empty(DcmItem& item, DcmElement* e) {
    if (is_sequence(e)) {
      e->clear();
      return {};
    }
    const DcmEVR vr = target_vr(e, nullptr);
    if (vr == e->ident() || vr == EVR_UN) {
      e->clear();
      return {};
    }
    return put(item, e, vr, "");
  }

  Result<void> dummy(DcmItem& item, DcmElement* e, const TableRow* row) {
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

  Result<void> replace_uids(DcmItem& item, DcmElement* e) {
    std::vector<std::string> values = split_values(read_text(e));
    for (std::string& v : values) {
      v = v.empty() ? pseudonymize_uid(key_, "dirgw:empty:" + tag_text(e->getTag()))
                    : pseudonymize_uid(key_, v);
    }
    return put(item, e, EVR_UI, join_values(values));
  }

  // Table action C under the option column that asked for it.
  // Returns the action actually taken ('C', 'K', or the basic action's letter).
  Result<char> clean(DcmItem& item, DcmElement* e, const TableRow& row, OptionColumn column,
                     std::vector<Frame>& children, const std::string& path) {
    const DcmEVR vr = target_vr(e, &row);
    switch (column) {
      case OptionColumn::kRetainLongitudinalModifiedDates: {
        if (vr == EVR_TM) return 'K';  // dates move by whole days: times keep their meaning
        if (vr != EVR_DA && vr != EVR_DT) break;
        std::vector<std::string> values = split_values(read_text(e));
        for (std::string& v : values) {
          if (v.empty()) continue;
          std::optional<std::string> s = shift_date(v, shift_days_, vr == EVR_DT);
          if (!s) return apply_basic(item, e, row, children, path);  // not a date: no cleaning
          v = *s;
        }
        dates_modified_ = true;
        if (auto r = put(item, e, vr, join_values(values)); !r) return r.error();
        return 'C';
      }
      case OptionColumn::kRetainDeviceIdentity: {
        if (vr == EVR_UI) {
          if (auto r = replace_uids(item, e); !r) return r.error();
          return 'U';
        }
        if (!is_text_vr(vr)) break;
        const std::string old = read_text(e);
        if (old.empty()) return 'K';
        const auto mac = key_.mac("device", old);
        std::string pseudonym = "D" + upper_hex(mac.data(), 16);
        pseudonym.resize(std::min(pseudonym.size(), max_length(vr)));
        if (auto r = put(item, e, vr, pseudonym); !r) return r.error();
        return 'C';
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

  Result<char> apply_basic(DcmItem& item, DcmElement* e, const TableRow& row,
                           std::vector<Frame>& children, const std::string& path) {
    return apply(item, e, row, row.basic, children, path);
  }

  // Applies a table action. Without the IOD's module tables the attribute's Type is unknown, so
  // the combined actions take the choice that keeps any IOD conformant and reveals nothing:
  // X/Z -> Z, X/D, X/Z/D and Z/D -> D, X/Z/U* -> keep the sequence with its UIDs replaced.
  Result<char> apply(DcmItem& item, DcmElement* e, const TableRow& row, Action a,
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
        if (seq) {  // a sequence's dummy: its items, every attribute in them de-identified
          push_items(e, path, children);
          return 'C';
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

  void push_items(DcmElement* e, const std::string& path, std::vector<Frame>& children) {
    auto* seq = static_cast<DcmSequenceOfItems*>(e);
    const std::string base = path + tag_text(e->getTag()) + "[";
    for (unsigned long i = 0; i < seq->card(); ++i) {
      DcmItem* it = seq->getItem(i);
      if (it != nullptr) children.push_back({it, base + std::to_string(i) + "].", 0});
    }
  }

  bool safe_private(std::uint16_t group, std::string_view creator, std::uint8_t element) const {
    return std::any_of(o_.safe_private.begin(), o_.safe_private.end(),
                       [&](const SafePrivateAttribute& s) {
                         return (s.group == 0 || s.group == group) && s.element == element &&
                                trim(s.creator) == creator;
                       });
  }

  Result<void> process_item(const Frame& f, std::vector<Frame>& children) {
    DcmItem& item = *f.item;
    std::vector<DcmElement*> elements;
    for (unsigned long i = 0; i < item.card(); ++i) elements.push_back(item.getElement(i));

    // Private creators of this item, by (group, block).
    std::map<std::pair<std::uint16_t, std::uint8_t>, std::string> creators;
    std::set<std::pair<std::uint16_t, std::uint8_t>> creators_used;
    for (DcmElement* e : elements) {
      const DcmTagKey k = e->getTag().getXTag();
      if (k.getGroup() % 2 == 1 && k.getElement() >= 0x10 && k.getElement() <= 0xFF) {
        creators[{k.getGroup(), static_cast<std::uint8_t>(k.getElement())}] = read_text(e);
      }
    }

    std::vector<DcmElement*> creator_elements;
    for (DcmElement* e : elements) {
      const DcmTagKey k = e->getTag().getXTag();
      const std::uint16_t g = k.getGroup();
      const std::uint16_t el = k.getElement();
      const std::string path = f.path + tag_text(k);
      const std::size_t first_child = children.size();

      if (g % 2 == 1) {  // private
        if (el >= 0x10 && el <= 0xFF) {
          creator_elements.push_back(e);
          continue;
        }
        const auto block = std::make_pair(g, static_cast<std::uint8_t>(el >> 8));
        auto c = creators.find(block);
        if (el > 0xFF && c != creators.end() &&
            safe_private(g, c->second, static_cast<std::uint8_t>(el & 0xFF))) {
          creators_used.insert(block);
          if (is_sequence(e)) push_items(e, f.path, children);
          note(path, "C", 'K', true, true);
        } else {
          remove(item, e);
          if (el != 0) note(path, "X", 'X', true, false);  // private group lengths: silently
        }
        fix_depth(children, first_child, f.depth);
        continue;
      }
      if (g == 0x0002) {  // file meta information inside a dataset: never belongs there
        remove(item, e);
        note(path, "X", 'X', true, false);
        continue;
      }
      if (el == 0x0000) continue;  // group length: recalculated on writing

      // Overlays: the table removes Overlay Data and Comments; without its data the rest of an
      // Overlay Plane module is invalid, so the whole repeating group goes.
      if ((g & 0xFF00) == 0x6000 && (g & 0xFF) <= 0x1E) {
        const TableRow* row = find_row(g, el);
        remove(item, e);
        note(path, row != nullptr ? action_code(resolve(*row, o_).action) : "X (overlay group)",
             'X', true, false);
        continue;
      }

      if (k == DCM_PatientID && f.depth == 0) {
        const TableRow* row = find_row(g, el);
        if (auto r = put(item, e, EVR_LO, patient_pseudonym_); !r) return r;
        note(path, row != nullptr ? action_code(row->basic) : "Z/D", 'D', true, false, {},
             patient_pseudonym_);
        continue;
      }
      if (k == DCM_PatientName && f.depth == 0) {
        if (auto r = put(item, e, EVR_PN, patient_pseudonym_); !r) return r;
        note(path, "Z", 'D', true, false, {}, patient_pseudonym_);
        continue;
      }
      if (k == kTextValue || k == kUnformattedTextValue) {
        // Free text of SR content items and graphic annotations: not in Table E.1-1 (the
        // sequences holding them are), never sent raw.
        if (o_.clean_descriptors && allowed_descriptor(o_, read_text(e))) {
          note(path, "C", 'K', true, true);
        } else {
          if (auto r =
                  put(item, e, target_vr(e, nullptr) == EVR_UN ? EVR_UT : target_vr(e, nullptr),
                      kDummyText);
              !r) {
            return r;
          }
          note(path, "D (text value)", 'D', true, false, {}, kDummyText);
        }
        continue;
      }

      const TableRow* row = find_row(g, el);
      if (row == nullptr) {
        // Not in the table: kept. A sequence's items are de-identified all the same.
        if (is_sequence(e)) {
          push_items(e, f.path, children);
        } else if (target_vr(e, nullptr) == EVR_SQ) {
          // A public sequence that could not be parsed (defined-length UN): opaque, removed.
          remove(item, e);
          note(path, "X (opaque sequence)", 'X', true, false);
        }
        fix_depth(children, first_child, f.depth);
        continue;
      }
      const Resolved res = resolve(*row, o_);
      Result<char> done = res.action == Action::kC
                              ? clean(item, e, *row, *res.column, children, f.path)
                              : apply(item, e, *row, res.action, children, f.path);
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
      fix_depth(children, first_child, f.depth);
    }

    for (DcmElement* e : creator_elements) {
      const DcmTagKey k = e->getTag().getXTag();
      const auto block = std::make_pair(k.getGroup(), static_cast<std::uint8_t>(k.getElement()));
      const std::string path = f.path + tag_text(k);
      const std::string creator = creators[block];
      if (creators_used.count(block) != 0) {
        note(path, "C", 'K', false, false, creator, creator);
      } else {
        remove(item, e);
        note(path, "X", 'X', false, false, creator, {});
      }
    }
    return {};
  }

  static void fix_depth(std::vector<Frame>& children, std::size_t from, int depth) {
    for (std::size_t i = from; i < children.size(); ++i) children[i].depth = depth + 1;
  }

  Result<void> mark_deidentified(DcmItem& top) {
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

  const DeidOptions& o_;
  const Key& key_;
  DeidReport& report_;
  std::string patient_pseudonym_;
  int shift_days_ = 0;
  bool dates_modified_ = false;
};

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
    return want.empty() || std::string(trim(want)) == have;
  };
  return match(r.sop_class_uid, sop_class) && match(r.modality, modality) &&
         match(r.manufacturer, manufacturer) && match(r.model, model);
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

// DCMTK writes every sequence and item with one length encoding. Keep the input's: explicit
// lengths unless some sequence or item used undefined length (as coerce does).
E_EncodingType input_encoding(DcmItem& ds) {
  DcmStack stack;
  while (ds.nextObject(stack, OFTrue).good()) {
    DcmObject* obj = stack.top();
    if (obj == nullptr) continue;
    const DcmEVR vr = obj->ident();
    if ((vr == EVR_SQ || vr == EVR_item) && obj->getLengthField() == DCM_UndefinedLength) {
      return EET_UndefinedLength;
    }
  }
  return EET_ExplicitLength;
}

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

std::string temp_suffix() {
  std::random_device rd;
  char buf[32];
  std::snprintf(buf, sizeof buf, ".tmp%08x%08x", rd(), rd());
  return buf;
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
  OFCondition cond =
      l.file->loadFile(OFFilename(in_path.c_str()), EXS_Unknown, EGL_noChange, kReadLimit);
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

Result<void> check_options(const DeidOptions& options) {
  for (const SafePrivateAttribute& s : options.safe_private) {
    const std::string_view c = trim(s.creator);
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
    if (trim(a).empty()) {
      return make_error(ErrorCode::kConfig, "deidentify descriptor_allow_list: empty entry");
    }
  }
  return {};
}

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
  const bool marked_yes = burned && iequals(*burned, "YES");
  const bool unmarked = !burned || burned->empty();
  const bool prone = burned_in_prone_class(sop_class) || burned_in_prone_modality(modality);
  if (marked_yes || (unmarked && prone)) {
    const bool allowed =
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
  if (why.empty()) return Decision::accept();
  return Decision::reject(std::move(why));
}

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

std::string pseudonymize_uid(const Key& key, std::string_view uid) {
  const std::string_view u = trim(uid);
  if (starts_with(u, kWellKnownRoot)) return std::string(u);
  const auto mac = key.mac("uid", u);
  std::array<std::uint8_t, 16> first{};
  std::copy_n(mac.begin(), 16, first.begin());
  return "2.25." + to_decimal(first);
}

std::string pseudonymize_patient_id(const Key& key, std::string_view patient_id,
                                    std::string_view issuer) {
  std::string v(trim(issuer));
  v.push_back('\0');
  v.append(trim(patient_id));
  const auto mac = key.mac("patient", v);
  return "P" + upper_hex(mac.data(), 12);
}

int date_shift_days(const Key& key, std::string_view patient_id, std::string_view issuer) {
  std::string v(trim(issuer));
  v.push_back('\0');
  v.append(trim(patient_id));
  const auto mac = key.mac("date-shift", v);
  const std::uint32_t n = (std::uint32_t{mac[0]} << 24) | (std::uint32_t{mac[1]} << 16) |
                          (std::uint32_t{mac[2]} << 8) | mac[3];
  return -static_cast<int>(1 + n % kMaxShiftDays);
}

Result<DeidReport> deidentify_dataset(DcmItem& dataset, const DeidOptions& options,
                                      const Key& key) {
  if (auto r = check_options(options); !r) return r.error();
  DeidReport report;
  Deidentifier d(options, key, report);
  if (auto r = d.run(dataset); !r) return r.error();
  report.sop_class_uid = item_string(dataset, DCM_SOPClassUID).value_or("");
  report.sop_instance_uid = item_string(dataset, DCM_SOPInstanceUID).value_or("");
  report.study_instance_uid = item_string(dataset, DCM_StudyInstanceUID).value_or("");
  report.series_instance_uid = item_string(dataset, DCM_SeriesInstanceUID).value_or("");
  return report;
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

  std::filesystem::path dir = out_path.parent_path();
  if (dir.empty()) dir = ".";
  std::filesystem::path tmp = out_path;
  tmp += temp_suffix();
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd.valid()) {
      const int err = errno;
      return make_error(err == ENOSPC || err == EDQUOT ? ErrorCode::kDiskFull : ErrorCode::kIo,
                        "create de-identified object: " + errno_text(err));
    }
  }
  OFCondition cond =
      write_output(ds, tmp, l->xfer, l->encoding, report->sop_class_uid, report->sop_instance_uid);
  if (cond.bad()) {
    ::unlink(tmp.c_str());
    return make_error(ErrorCode::kIo,
                      std::string("cannot write the de-identified object: ") + cond.text());
  }
  if (auto r = fsync_path(tmp); !r) {
    ::unlink(tmp.c_str());
    return r.error();
  }
  if (::rename(tmp.c_str(), out_path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return make_error(ErrorCode::kIo, "rename de-identified object: " + errno_text(err));
  }
  if (auto r = fsync_dir(dir); !r) return r.error();
  return report;
}

}  // namespace dirgw::policy::deid
