#include "unit/audit/xml_reader.h"

#include <pugixml.hpp>

namespace dirgw::audit::testing {

const XmlNode* XmlNode::child(std::string_view n) const {
  for (const auto& c : children)
    if (c.name == n) return &c;
  return nullptr;
}

std::vector<const XmlNode*> XmlNode::all(std::string_view n) const {
  std::vector<const XmlNode*> out;
  for (const auto& c : children)
    if (c.name == n) out.push_back(&c);
  return out;
}

std::vector<const XmlNode*> XmlNode::find_all(std::string_view n) const {
  std::vector<const XmlNode*> out;
  for (const auto& c : children) {
    if (c.name == n) out.push_back(&c);
    auto below = c.find_all(n);
    out.insert(out.end(), below.begin(), below.end());
  }
  return out;
}

std::string XmlNode::attr(std::string_view a) const {
  auto it = attrs.find(std::string(a));
  return it == attrs.end() ? std::string() : it->second;
}

namespace {

// pugixml parses; these are the checks of well-formedness it leaves to its callers (it is
// tolerant by design) that our exporter could get wrong.
constexpr int kMaxDepth = 64;

// XML 1.0 section 2.2: no C0 control but tab, LF and CR, whether written raw or as a reference.
bool has_forbidden_char(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 && c != '\t' && c != '\n' && c != '\r') return true;
  }
  return false;
}

struct Converter {
  XmlDocument& doc;

  bool fail(const std::string& why) {
    if (doc.error.empty()) doc.error = why;
    return false;
  }

  bool element(const pugi::xml_node& in, XmlNode& out, int depth) {
    if (depth > kMaxDepth) return fail("too deep");
    out.name = in.name();
    for (const pugi::xml_attribute& a : in.attributes()) {
      if (has_forbidden_char(a.value())) return fail("control character in " + out.name);
      if (!out.attrs.emplace(a.name(), a.value()).second) {
        return fail(std::string("duplicate attribute ") + a.name());
      }
    }
    for (const pugi::xml_node& c : in.children()) {
      switch (c.type()) {
        case pugi::node_element:
          out.children.emplace_back();
          if (!element(c, out.children.back(), depth + 1)) return false;
          break;
        case pugi::node_pcdata:
          if (has_forbidden_char(c.value())) return fail("control character in " + out.name);
          out.text += c.value();
          break;
        case pugi::node_comment:
          if (!comment(c)) return false;
          break;
        default:  // CDATA, processing instructions, a DOCTYPE: our exporter writes none
          return fail("unsupported markup in " + out.name);
      }
    }
    return true;
  }

  bool comment(const pugi::xml_node& c) {
    if (std::string_view(c.value()).find("--") != std::string_view::npos) {
      return fail("'--' inside a comment");
    }
    doc.comments.emplace_back(c.value());
    return true;
  }

  // One root element; beside it only the declaration (first), whitespace and comments.
  bool document(const pugi::xml_document& in) {
    bool have_root = false;
    bool first = true;
    for (const pugi::xml_node& c : in.children()) {
      switch (c.type()) {
        case pugi::node_declaration:
          if (!first) return fail("XML declaration not at the start");
          break;
        case pugi::node_element:
          if (have_root) return fail("content after the root element");
          have_root = true;
          if (!element(c, doc.root, 0)) return false;
          break;
        case pugi::node_comment:
          if (!comment(c)) return false;
          break;
        case pugi::node_pcdata:
          if (std::string_view(c.value()).find_first_not_of(" \t\r\n") != std::string_view::npos)
            return fail("text outside the root element");
          break;
        default:
          return fail("unsupported markup outside the root element");
      }
      first = false;
    }
    return have_root || fail("expected the root element");
  }
};

}  // namespace

XmlDocument parse_xml(std::string_view text) {
  XmlDocument doc;
  pugi::xml_document parsed;
  // parse_fragment keeps text beside the root, so that document() can refuse it; whitespace
  // in attribute values is normalised as the XML spec says (references to it are kept).
  const unsigned flags = pugi::parse_default | pugi::parse_declaration | pugi::parse_comments |
                         pugi::parse_pi | pugi::parse_doctype | pugi::parse_ws_pcdata |
                         pugi::parse_fragment;
  pugi::xml_parse_result r =
      parsed.load_buffer(text.data(), text.size(), flags, pugi::encoding_utf8);
  if (!r) {
    doc.error = std::string(r.description()) + " at offset " + std::to_string(r.offset);
    return doc;
  }
  doc.ok = Converter{doc}.document(parsed);
  return doc;
}

}  // namespace dirgw::audit::testing
