// XML for the audit tests: pugixml parses (balanced tags, quoted attributes, entities), a few
// checks it leaves to its callers are added (one root, unique attributes, no control
// characters, no '--' in comments, nothing but comments and whitespace beside the root; no DTD,
// CDATA or processing instruction, which our exporter never writes), and the result is a tree
// to assert on.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dirgw::audit::testing {

struct XmlNode {
  std::string name;
  std::map<std::string, std::string> attrs;  // values with entities resolved
  std::vector<XmlNode> children;
  std::string text;  // character data directly inside, entities resolved

  // First child named `n` (nullptr if none) and all of them.
  const XmlNode* child(std::string_view n) const;
  std::vector<const XmlNode*> all(std::string_view n) const;
  // Depth-first, every descendant named `n`.
  std::vector<const XmlNode*> find_all(std::string_view n) const;
  std::string attr(std::string_view a) const;  // "" when absent
};

struct XmlDocument {
  bool ok = false;
  std::string error;  // where and why it is not well-formed
  XmlNode root;
  std::vector<std::string> comments;
};

XmlDocument parse_xml(std::string_view text);

}  // namespace dirgw::audit::testing
