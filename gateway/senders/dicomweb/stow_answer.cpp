#include "senders/dicomweb/stow_answer.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <pugixml.hpp>

#include "common/text.h"

namespace dirgw::senders::dicomweb::detail {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string clean_uid(std::string_view s) {
  s = trim_whitespace(s);
  while (!s.empty() && (s.back() == '\0' || s.back() == ' ')) s.remove_suffix(1);
  return std::string(s);
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto x = static_cast<unsigned char>(a[i]);
    auto y = static_cast<unsigned char>(b[i]);
    if (std::tolower(x) != std::tolower(y)) return false;
  }
  return true;
}

namespace {

// DICOM tags of the Store Instances Response Module (PS3.18 Annex I).
constexpr std::string_view kReferencedSopSequence = "00081199";
constexpr std::string_view kFailedSopSequence = "00081198";
constexpr std::string_view kReferencedSopInstanceUid = "00081155";
constexpr std::string_view kWarningReason = "00081196";
constexpr std::string_view kFailureReason = "00081197";

// Bodies nest 3 levels for what we read; anything much deeper is hostile or not an answer.
constexpr int kMaxNesting = 64;

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// status in hex as it is usually printed ("A700", "0xA700"). All-digit text is read as decimal.
std::optional<std::uint16_t> parse_us_text(std::string_view s) {
  s = trim_whitespace(s);
  if (s.empty()) return std::nullopt;
  bool hex = false;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
    hex = true;
  }
  bool all_digits = std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!hex && all_digits) {
    if (s.size() > 5) return std::nullopt;
    unsigned v = 0;
    for (char c : s) v = v * 10 + static_cast<unsigned>(c - '0');
    if (v > 0xFFFF) return std::nullopt;
    return static_cast<std::uint16_t>(v);
  }
  if (s.size() > 4) return std::nullopt;
  unsigned v = 0;
  for (char c : s) {
    unsigned d;
    if (c >= '0' && c <= '9') {
      d = static_cast<unsigned>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      d = static_cast<unsigned>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      d = static_cast<unsigned>(c - 'A' + 10);
    } else {
      return std::nullopt;
    }
    v = v * 16 + d;
  }
  return static_cast<std::uint16_t>(v);
}

// --- DICOM JSON (PS3.18 Annex F.2) ---

// Deepest nesting of arrays and objects, strings skipped; stops counting past kMaxNesting.
int json_nesting(std::string_view s) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
      if (deepest > kMaxNesting) return deepest;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return deepest;
}

const nlohmann::json* json_first_value(const nlohmann::json& dataset, std::string_view tag) {
  if (!dataset.is_object()) return nullptr;
  auto attr = dataset.find(std::string(tag));
  if (attr == dataset.end() || !attr->is_object()) return nullptr;
  auto value = attr->find("Value");
  if (value == attr->end() || !value->is_array() || value->empty()) return nullptr;
  return &(*value)[0];
}

std::optional<std::uint16_t> json_us(const nlohmann::json& dataset, std::string_view tag) {
  const nlohmann::json* v = json_first_value(dataset, tag);
  if (v == nullptr) return std::nullopt;
  if (v->is_number_unsigned()) {
    auto n = v->get<std::uint64_t>();
    if (n > 0xFFFF) return std::nullopt;
    return static_cast<std::uint16_t>(n);
  }
  if (v->is_number_integer()) {
    auto n = v->get<std::int64_t>();
    if (n < 0 || n > 0xFFFF) return std::nullopt;
    return static_cast<std::uint16_t>(n);
  }
  if (v->is_string()) return parse_us_text(v->get_ref<const std::string&>());
  return std::nullopt;
}

void json_sequence(const nlohmann::json& dataset, std::string_view tag, std::string_view reason_tag,
                   std::vector<AnswerEntry>& out, std::size_t& without_uid) {
  auto attr = dataset.find(std::string(tag));
  if (attr == dataset.end() || !attr->is_object()) return;
  auto value = attr->find("Value");
  if (value == attr->end() || !value->is_array()) return;
  for (const auto& item : *value) {
    const nlohmann::json* uid = json_first_value(item, kReferencedSopInstanceUid);
    if (uid == nullptr || !uid->is_string() ||
        clean_uid(uid->get_ref<const std::string&>()).empty()) {
      ++without_uid;
      continue;
    }
    out.push_back({clean_uid(uid->get_ref<const std::string&>()), json_us(item, reason_tag)});
  }
}

std::optional<Answer> parse_json_answer(std::string_view body) {
  if (json_nesting(body) > kMaxNesting) return std::nullopt;
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return std::nullopt;
  // The module is one dataset; some servers wrap it in an array.
  if (doc.is_array() && doc.size() == 1) doc = nlohmann::json(doc[0]);
  if (!doc.is_object()) return std::nullopt;
  Answer answer;
  answer.has_module = doc.contains(std::string(kReferencedSopSequence)) ||
                      doc.contains(std::string(kFailedSopSequence));
  json_sequence(doc, kReferencedSopSequence, kWarningReason, answer.referenced, answer.without_uid);
  json_sequence(doc, kFailedSopSequence, kFailureReason, answer.failed, answer.without_uid);
  return answer;
}

// --- DICOM XML (PS3.19 Annex A, NativeDicomModel), read with pugixml ---
// pugixml knows the five predefined entities and character references and nothing else: it
// never loads an external DTD or entity and never expands an entity a DTD declares (such a
// reference stays as literal text). A DOCTYPE with an internal subset is refused all the same,
// as it was by the reader this replaced, and so are answers nested deeper than kMaxNesting or
// larger than kMaxXmlBytes. Namespace prefixes are dropped; comments, processing instructions
// and a plain DOCTYPE are ignored.

// The transport reads at most 8 MiB of answer (http.h, kMaxAnswerBytes); the parser is pure
// and may be handed more, so it keeps its own bound. pugixml's tree costs about 16 times the
// bytes of a document of empty elements: 8 MiB stays well within a gateway's memory.
constexpr std::size_t kMaxXmlBytes = std::size_t{8} * 1024 * 1024;

// Text as pugixml hands it back (C strings), local names, whitespace as the XML spec's S.
constexpr unsigned kXmlParseFlags = pugi::parse_minimal | pugi::parse_escapes | pugi::parse_cdata |
                                    pugi::parse_doctype | pugi::parse_ws_pcdata |
                                    pugi::parse_fragment;

std::string_view local_name(const char* qname) {
  std::string_view q(qname);
  auto colon = q.find(':');
  return colon == std::string_view::npos ? q : q.substr(colon + 1);
}

const char* xml_attr(const pugi::xml_node& node, std::string_view key) {
  for (const pugi::xml_attribute& a : node.attributes())
    if (local_name(a.name()) == key) return a.value();
  return nullptr;
}

// The character data directly inside `node`, CDATA included, pieces joined.
std::string xml_text(const pugi::xml_node& node) {
  std::string out;
  for (const pugi::xml_node& c : node.children())
    if (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) out += c.value();
  return out;
}

bool all_space(std::string_view s) { return std::all_of(s.begin(), s.end(), is_space); }

// parse_fragment keeps what lies beside the root, so that this can refuse it: one element,
// whitespace, and a DOCTYPE without internal subset, nothing else.
pugi::xml_node single_root(const pugi::xml_document& doc) {
  pugi::xml_node root;
  for (const pugi::xml_node& n : doc.children()) {
    switch (n.type()) {
      case pugi::node_element:
        if (root) return {};
        root = n;
        break;
      case pugi::node_pcdata:
        if (!all_space(n.value())) return {};
        break;
      case pugi::node_doctype:
        if (std::string_view(n.value()).find('[') != std::string_view::npos) return {};
        break;
      default:
        return {};
    }
  }
  return root;
}

// Whether an element lies more than kMaxNesting levels below the root (which is level 0).
bool too_deep(pugi::xml_node root) {
  struct Walker : pugi::xml_tree_walker {
    bool deep = false;
    bool for_each(pugi::xml_node& n) override {
      if (n.type() == pugi::node_element && depth() + 1 > kMaxNesting) deep = true;
      return !deep;
    }
  } walker;
  root.traverse(walker);
  return walker.deep;
}

pugi::xml_node xml_attribute(const pugi::xml_node& dataset, std::string_view tag) {
  for (const pugi::xml_node& child : dataset.children()) {
    if (child.type() != pugi::node_element || local_name(child.name()) != "DicomAttribute")
      continue;
    const char* t = xml_attr(child, "tag");
    if (t != nullptr && iequals(t, tag)) return child;
  }
  return {};
}

std::optional<std::string> xml_first_value(const pugi::xml_node& dataset, std::string_view tag) {
  pugi::xml_node attr = xml_attribute(dataset, tag);
  if (!attr) return std::nullopt;
  for (const pugi::xml_node& child : attr.children())
    if (child.type() == pugi::node_element && local_name(child.name()) == "Value")
      return xml_text(child);
  return std::nullopt;
}

void xml_sequence(const pugi::xml_node& dataset, std::string_view tag, std::string_view reason_tag,
                  std::vector<AnswerEntry>& out, std::size_t& without_uid) {
  pugi::xml_node seq = xml_attribute(dataset, tag);
  if (!seq) return;
  for (const pugi::xml_node& item : seq.children()) {
    // Orthanc adds a stray <Value number="1"/> after items.
    if (item.type() != pugi::node_element || local_name(item.name()) != "Item") continue;
    std::optional<std::string> uid = xml_first_value(item, kReferencedSopInstanceUid);
    if (!uid || clean_uid(*uid).empty()) {
      ++without_uid;
      continue;
    }
    std::optional<std::uint16_t> reason;
    if (auto r = xml_first_value(item, reason_tag)) reason = parse_us_text(*r);
    out.push_back({clean_uid(*uid), reason});
  }
}

std::optional<Answer> parse_xml_answer(std::string_view body) {
  if (body.size() > kMaxXmlBytes) return std::nullopt;
  pugi::xml_document doc;
  // encoding_utf8: the bytes are taken as they are (a UTF-8 BOM is dropped), never converted
  // from a guessed UTF-16 or UTF-32.
  if (!doc.load_buffer(body.data(), body.size(), kXmlParseFlags, pugi::encoding_utf8)) {
    return std::nullopt;
  }
  pugi::xml_node root = single_root(doc);
  if (!root || local_name(root.name()) != "NativeDicomModel" || too_deep(root)) {
    return std::nullopt;
  }
  Answer answer;
  answer.has_module = !xml_attribute(root, kReferencedSopSequence).empty() ||
                      !xml_attribute(root, kFailedSopSequence).empty();
  xml_sequence(root, kReferencedSopSequence, kWarningReason, answer.referenced, answer.without_uid);
  xml_sequence(root, kFailedSopSequence, kFailureReason, answer.failed, answer.without_uid);
  return answer;
}

}  // namespace

std::optional<Answer> parse_answer(std::string_view content_type, std::string_view body) {
  std::string media = lower(trim_whitespace(content_type.substr(0, content_type.find(';'))));
  if (media == "application/dicom+json" || media == "application/json") {
    return parse_json_answer(body);
  }
  if (media == "application/dicom+xml" || media == "application/xml" || media == "text/xml") {
    return parse_xml_answer(body);
  }
  // No or another content type: recognise the body by its first character.
  std::string_view t = trim_whitespace(body);
  if (t.substr(0, 3) == "\xEF\xBB\xBF") t = trim_whitespace(t.substr(3));
  if (t.empty()) return std::nullopt;
  if (t.front() == '{' || t.front() == '[') return parse_json_answer(body);
  if (t.front() == '<') return parse_xml_answer(body);
  return std::nullopt;
}

}  // namespace dirgw::senders::dicomweb::detail
