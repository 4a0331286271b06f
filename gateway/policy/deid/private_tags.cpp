// Private attributes and overlay repeating groups. Private attributes are removed (Table E.1-1's
// "(gggg,eeee) where gggg is odd" row) unless the Retain Safe Private option names them by private
// creator and element; a private creator stays only while an attribute of its block does. Overlay
// groups (60xx) go whole: without Overlay Data the rest of an Overlay Plane module is invalid.
#include <algorithm>

#include "dcmtk/config/osconfig.h"  // must come first among the DCMTK headers
#include "dcmtk/dcmdata/dcitem.h"
#include "policy/deid/deid_internal.h"

namespace dirgw::policy::deid::detail {

namespace {

// A value made of UIDs only (digits and dots, two dots at least, each value up to 64 characters;
// several separated by backslashes): a safe private attribute holding one is an instance UID as
// much as a public U attribute is, whatever VR it was written with.
bool holds_uids(const std::string& text) {
  if (text.empty()) return false;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = std::min(text.find('\\', start), text.size());
    const std::string_view v(text.data() + start, end - start);
    if (v.size() < 5 || v.size() > 64 || v.find_first_not_of("0123456789.") != v.npos ||
        std::count(v.begin(), v.end(), '.') < 2 || v.front() == '.' || v.back() == '.')
      return false;
    start = end + 1;
  }
  return true;
}

}  // namespace

bool Deidentifier::safe_private(std::uint16_t group, std::string_view creator,
                                std::uint8_t element) const {
  return std::any_of(o_.safe_private.begin(), o_.safe_private.end(),
                     [&](const SafePrivateAttribute& s) {
                       return (s.group == 0 || s.group == group) && s.element == element &&
                              trim_dicom(s.creator) == creator;
                     });
}

PrivateBlocks Deidentifier::collect_creators(const std::vector<DcmElement*>& elements) {
  PrivateBlocks blocks;
  for (DcmElement* e : elements) {
    const DcmTagKey k = e->getTag().getXTag();
    if (k.getGroup() % 2 == 1 && k.getElement() >= 0x10 && k.getElement() <= 0xFF) {
      blocks.creators[{k.getGroup(), static_cast<std::uint8_t>(k.getElement())}] = read_text(e);
    }
  }
  return blocks;
}

// A private attribute (odd group). Private creators are only collected here: whether they stay
// depends on the rest of the item (finish_creators).
void Deidentifier::process_private(DcmItem& item, DcmElement* e, const Frame& f,
                                   PrivateBlocks& blocks, std::vector<Frame>& children) {
  const DcmTagKey k = e->getTag().getXTag();
  const std::uint16_t g = k.getGroup();
  const std::uint16_t el = k.getElement();
  const std::string path = f.path + tag_text(k);
  const std::size_t first_child = children.size();
  if (el >= 0x10 && el <= 0xFF) {
    blocks.creator_elements.push_back(e);
    return;
  }
  const auto block = std::make_pair(g, static_cast<std::uint8_t>(el >> 8));
  auto c = blocks.creators.find(block);
  if (el > 0xFF && c != blocks.creators.end() &&
      safe_private(g, c->second, static_cast<std::uint8_t>(el & 0xFF))) {
    blocks.used.insert(block);
    if (is_sequence(e)) {
      push_items(e, f.path, children);
    } else if (!o_.retain_uids && holds_uids(read_text(e))) {
      // NQHeader's Analyzed Series UID is the original Series UID: kept, it would undo U.
      if (replace_uids(item, e)) {
        note(path, "C (UID)", 'U', true, false);
      } else {
        remove(item, e);
        note(path, "X", 'X', true, false);
      }
      fix_depth(children, first_child, f);
      return;
    }
    note(path, "C", 'K', true, true);
  } else {
    remove(item, e);
    if (el != 0) note(path, "X", 'X', true, false);  // private group lengths: silently
  }
  fix_depth(children, first_child, f);
}

void Deidentifier::finish_creators(DcmItem& item, const Frame& f, PrivateBlocks& blocks) {
  for (DcmElement* e : blocks.creator_elements) {
    const DcmTagKey k = e->getTag().getXTag();
    const auto block = std::make_pair(k.getGroup(), static_cast<std::uint8_t>(k.getElement()));
    const std::string path = f.path + tag_text(k);
    const std::string creator = blocks.creators[block];
    if (blocks.used.count(block) != 0) {
      note(path, "C", 'K', false, false, creator, creator);
    } else {
      remove(item, e);
      note(path, "X", 'X', false, false, creator, {});
    }
  }
}

// Overlays: the table removes Overlay Data and Comments; without its data the rest of an Overlay
// Plane module is invalid, so the whole repeating group goes.
void Deidentifier::remove_overlay(DcmItem& item, DcmElement* e, const std::string& path) {
  const DcmTagKey k = e->getTag().getXTag();
  const TableRow* row = find_row(k.getGroup(), k.getElement());
  remove(item, e);
  note(path, row != nullptr ? action_code(resolve(*row, o_).action) : "X (overlay group)", 'X',
       true, false);
}

}  // namespace dirgw::policy::deid::detail
