// Internal to the de-identification library (not installed, not for callers): what the files of
// gateway/policy/deid/ share. deid.h is the interface; this header only splits its implementation
// by concern:
//   values.cpp        value helpers: text of an element, VRs, dummies, multi-valued strings
//   actions.cpp       the table-driven attribute actions (Table E.1-1 columns, X/Z/D/U/K/C)
//   pseudonyms.cpp    UID and Patient ID pseudonyms, date shifting, device pseudonyms
//   private_tags.cpp  private attributes (Retain Safe Private) and overlay repeating groups
//   deid.cpp          the walk over every item at every depth, the method attributes, options
//   screen.cpp        refusals: burned-in text, SR, encapsulated documents, embedded overlays
//   file_io.cpp       loading, the derived file and its durable write, the report's lines
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/text.h"
#include "dcmtk/config/osconfig.h"  // must come first among the DCMTK headers
#include "dcmtk/dcmdata/dcelem.h"
#include "dcmtk/dcmdata/dcitem.h"
#include "policy/deid/deid.h"
#include "policy/deid/key.h"
#include "policy/deid/table.h"

namespace dirgw::policy::deid::detail {

inline constexpr const char* kDummyText = "ANONYMIZED";

// values.cpp
bool iequals(std::string_view a, std::string_view b);
std::string tag_text(const DcmTagKey& k);
std::vector<std::string> split_values(std::string_view v);
std::string join_values(const std::vector<std::string>& values);
bool is_sequence(DcmElement* e);
bool starts_with(std::string_view s, std::string_view prefix);
// A value as text. Elements encoded as UN (unknown VR, or implicit private) are read as the bytes
// they hold, which for the text VRs of the table is the value itself.
std::string read_text(DcmElement* e);
std::optional<std::string> item_string(DcmItem& item, const DcmTagKey& key);
// The VR to write a replacement as: the element's own unless it is UN, then the dictionary's,
// then the table's.
DcmEVR target_vr(DcmElement* e, const TableRow* row);
std::size_t max_length(DcmEVR vr);
// A non-zero length dummy of the VR (Table E.1-1 action D). UI is handled by the caller (U).
std::string dummy_text(DcmEVR vr);
bool is_text_vr(DcmEVR vr);

// actions.cpp
bool option_enabled(const DeidOptions& o, OptionColumn c);

// The action for a row under the options: an enabled option's K wins (the option exists to keep
// the attribute), then an enabled option's C, then the Basic Profile's action.
struct Resolved {
  Action action;
  std::optional<OptionColumn> column;  // set when an option column decided
};
Resolved resolve(const TableRow& row, const DeidOptions& o);
bool allowed_descriptor(const DeidOptions& o, std::string_view value);

struct Frame {
  DcmItem* item;
  std::string path;  // "" at the top level, else "(gggg,eeee)[i]."
  int depth;
  // An item of a sequence the table dummies (D: a person's or an institution's identification
  // code, a verifying observer): its attributes the table does not list (Code Value, Code
  // Meaning...) are dummied too, not kept; so are those of items nested in it.
  bool dummy_unlisted = false;
};

// The private creators of one item, by (group, block), and which blocks a kept attribute uses.
struct PrivateBlocks {
  std::map<std::pair<std::uint16_t, std::uint8_t>, std::string> creators;
  std::set<std::pair<std::uint16_t, std::uint8_t>> used;
  std::vector<DcmElement*> creator_elements;  // handled after the rest of the item
};

// Applies the profile to one object, item by item; its member functions live in the file of
// their concern (see the top of this header).
class Deidentifier {
 public:
  Deidentifier(const DeidOptions& options, const Key& key, DeidReport& report)
      : o_(options), key_(key), report_(report) {}

  Result<void> run(DcmItem& top);  // deid.cpp

 private:
  // actions.cpp
  void note(const std::string& path, std::string_view rule, char action, bool old_id, bool new_id,
            std::string old_value = {}, std::string new_value = {});
  // Replaces `e` (which `item` owns) by an element of `vr` holding `value`. `e` is gone after.
  Result<void> put(DcmItem& item, DcmElement* e, DcmEVR vr, const std::string& value);
  void remove(DcmItem& item, DcmElement* e);
  Result<void> empty(DcmItem& item, DcmElement* e);
  Result<void> dummy(DcmItem& item, DcmElement* e, const TableRow* row);
  // Table action C under the option column that asked for it.
  // Returns the action actually taken ('C', 'K', or the basic action's letter).
  Result<char> clean(DcmItem& item, DcmElement* e, const TableRow& row, OptionColumn column,
                     std::vector<Frame>& children, const std::string& path);
  Result<char> apply_basic(DcmItem& item, DcmElement* e, const TableRow& row,
                           std::vector<Frame>& children, const std::string& path);
  Result<char> apply(DcmItem& item, DcmElement* e, const TableRow& row, Action a,
                     std::vector<Frame>& children, const std::string& path);
  void push_items(DcmElement* e, const std::string& path, std::vector<Frame>& children);
  bool restates_patient(DcmItem& content_item) const;
  // An attribute of a Table E.1-1 row (not a private or overlay one): its resolved action.
  Result<void> process_table_attribute(DcmItem& item, DcmElement* e, const TableRow& row,
                                       const Frame& f, std::vector<Frame>& children);

  // pseudonyms.cpp
  Result<void> replace_uids(DcmItem& item, DcmElement* e);
  // Modified Dates option on a DA or DT value; a value that is not a date: the basic action.
  Result<char> shift_dates(DcmItem& item, DcmElement* e, const TableRow& row, DcmEVR vr,
                           std::vector<Frame>& children, const std::string& path);
  // Retain Device Identity on a text value: a keyed pseudonym of the VR's length.
  Result<char> device_pseudonym(DcmItem& item, DcmElement* e, DcmEVR vr);

  // private_tags.cpp
  bool safe_private(std::uint16_t group, std::string_view creator, std::uint8_t element) const;
  static PrivateBlocks collect_creators(const std::vector<DcmElement*>& elements);
  void process_private(DcmItem& item, DcmElement* e, const Frame& f, PrivateBlocks& blocks,
                       std::vector<Frame>& children);
  void finish_creators(DcmItem& item, const Frame& f, PrivateBlocks& blocks);
  void remove_overlay(DcmItem& item, DcmElement* e, const std::string& path);

  // deid.cpp
  Result<void> process_item(const Frame& f, std::vector<Frame>& children);
  Result<void> process_element(DcmItem& item, DcmElement* e, const Frame& f, PrivateBlocks& blocks,
                               std::vector<Frame>& children);
  Result<void> replace_text_value(DcmItem& item, DcmElement* e, const std::string& path);
  static void fix_depth(std::vector<Frame>& children, std::size_t from, const Frame& parent);
  static bool patient_characteristic(std::uint16_t element);
  Result<void> mark_deidentified(DcmItem& top);

  const DeidOptions& o_;
  const Key& key_;
  DeidReport& report_;
  std::string patient_pseudonym_;
  int shift_days_ = 0;
  bool dates_modified_ = false;
};

}  // namespace dirgw::policy::deid::detail
