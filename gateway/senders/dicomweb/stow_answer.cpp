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
// Read as a stream of events (nlohmann/json's SAX interface), keeping only what the answer
// says: no document tree is built. An answer lists every instance of its request, and as a tree
// a 70 KB one (500 instances) took about 0.9 ms to read, on the path between one request and
// the next; as events 0.4 ms. The reading is the one the tree gave: the module is the top-level
// object, or the one object of a one-element array; where a key repeats in an object its last
// value counts, as nlohmann::json keeps it; containers nested deeper than kMaxNesting make the
// body unreadable.
class AnswerReader final : public nlohmann::json_sax<nlohmann::json> {
 public:
  // nullopt: not JSON, nested too deep, or no module object at the top. Once, at the end.
  std::optional<Answer> take_result(bool parsed) {
    if (!parsed || !module_seen_ || wrapper_elements_ > 1) return std::nullopt;
    Answer a;
    a.referenced = std::move(seqs_[0].entries);
    a.failed = std::move(seqs_[1].entries);
    a.without_uid = seqs_[0].without_uid + seqs_[1].without_uid;
    a.has_module = has_module_;
    return a;
  }

  bool null() override {
    scalar();
    return true;
  }
  bool boolean(bool) override {
    scalar();
    return true;
  }
  // Written with a minus sign (nlohmann reports the others as unsigned): only "-0" is a US value.
  bool number_integer(number_integer_t v) override {
    if (scalar() == Role::kReasonValue && v == 0) reason_ = 0;
    return true;
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (scalar() == Role::kReasonValue && v <= 0xFFFF) reason_ = static_cast<std::uint16_t>(v);
    return true;
  }
  bool number_float(number_float_t, const string_t&) override {
    scalar();
    return true;
  }
  bool string(string_t& v) override {
    const Role first_of = scalar();
    if (first_of == Role::kUidValue) uid_ = v;
    if (first_of == Role::kReasonValue) reason_ = parse_us_text(v);
    return true;
  }
  bool binary(binary_t&) override {
    scalar();
    return true;
  }
  bool start_object(std::size_t) override { return open(true); }
  bool start_array(std::size_t) override { return open(false); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool key(string_t& k) override {
    Frame& f = frames_.back();
    if (f.role == Role::kSkip) return true;
    f.key = k;
    // A repeated key's last value counts: what an earlier one gave is forgotten here.
    switch (f.role) {
      case Role::kModule:
        if (const int seq = sequence_of(k); seq >= 0) {
          has_module_ = true;
          seqs_[seq] = {};
        }
        break;
      case Role::kSeqAttr:
        if (k == "Value") seqs_[f.seq] = {};
        break;
      case Role::kItem:
        if (k == kReferencedSopInstanceUid) uid_.reset();
        if (k == reason_tag(f.seq)) reason_.reset();
        break;
      case Role::kUidAttr:
        if (k == "Value") uid_.reset();
        break;
      case Role::kReasonAttr:
        if (k == "Value") reason_.reset();
        break;
      default:
        break;
    }
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  enum class Role {
    kSkip,         // holds nothing we read
    kWrapper,      // a top-level array: its one element is the module
    kModule,       // the Store Instances Response Module (an object)
    kSeqAttr,      // the referenced or failed sequence's attribute {"vr": "SQ", "Value": [...]}
    kItems,        // its Value: the items
    kItem,         // one item (an object)
    kUidAttr,      // the item's Referenced SOP Instance UID attribute (an object)
    kUidValue,     // its Value: the first element is the UID
    kReasonAttr,   // the item's Warning Reason (referenced) or Failure Reason (failed)
    kReasonValue,  // its Value: the first element is the reason
  };
  struct Frame {
    Role role = Role::kSkip;
    int seq = -1;              // 0 referenced, 1 failed
    std::string key;           // objects: the key whose value comes next
    std::size_t elements = 0;  // kUidValue, kReasonValue: elements begun so far
  };
  struct Sequence {
    std::vector<AnswerEntry> entries;
    std::size_t without_uid = 0;
  };

  static int sequence_of(std::string_view tag) {
    if (tag == kReferencedSopSequence) return 0;
    if (tag == kFailedSopSequence) return 1;
    return -1;
  }
  static std::string_view reason_tag(int seq) { return seq == 0 ? kWarningReason : kFailureReason; }

  // A container begins: counted where its place counts; returns what it is to us.
  Role begin_container(bool is_object) {
    if (frames_.empty()) {
      module_seen_ = is_object;
      return is_object ? Role::kModule : Role::kWrapper;
    }
    Frame& f = frames_.back();
    switch (f.role) {
      case Role::kWrapper:
        if (++wrapper_elements_ == 1 && is_object) {
          module_seen_ = true;
          return Role::kModule;
        }
        return Role::kSkip;
      case Role::kModule:
        return is_object && sequence_of(f.key) >= 0 ? Role::kSeqAttr : Role::kSkip;
      case Role::kSeqAttr:
        return !is_object && f.key == "Value" ? Role::kItems : Role::kSkip;
      case Role::kItems:
        if (is_object) {
          uid_.reset();
          reason_.reset();
          return Role::kItem;
        }
        ++seqs_[f.seq].without_uid;  // an item that is not an object
        return Role::kSkip;
      case Role::kItem:
        if (is_object && f.key == kReferencedSopInstanceUid) return Role::kUidAttr;
        if (is_object && f.key == reason_tag(f.seq)) return Role::kReasonAttr;
        return Role::kSkip;
      case Role::kUidAttr:
        return !is_object && f.key == "Value" ? Role::kUidValue : Role::kSkip;
      case Role::kReasonAttr:
        return !is_object && f.key == "Value" ? Role::kReasonValue : Role::kSkip;
      case Role::kUidValue:
      case Role::kReasonValue:
        ++f.elements;  // a container as the first element: no UID, no reason
        return Role::kSkip;
      case Role::kSkip:
        return Role::kSkip;
    }
    return Role::kSkip;
  }

  bool open(bool is_object) {
    if (frames_.size() >= static_cast<std::size_t>(kMaxNesting)) return false;
    Frame f;
    f.role = begin_container(is_object);
    if (f.role == Role::kSeqAttr) {
      f.seq = sequence_of(frames_.back().key);
    } else if (!frames_.empty()) {
      f.seq = frames_.back().seq;
    }
    frames_.push_back(std::move(f));
    return true;
  }

  bool close() {
    const Role role = frames_.back().role;
    const int seq = frames_.back().seq;
    frames_.pop_back();
    if (role == Role::kItem) item_done(seq);
    return true;
  }

  // A scalar value: counted where its place counts; returns kUidValue or kReasonValue when it
  // is the first element of such an array, else kSkip.
  Role scalar() {
    if (frames_.empty()) return Role::kSkip;  // a scalar at the top: no module
    Frame& f = frames_.back();
    switch (f.role) {
      case Role::kWrapper:
        ++wrapper_elements_;
        return Role::kSkip;
      case Role::kItems:
        ++seqs_[f.seq].without_uid;  // an item that is not an object
        return Role::kSkip;
      case Role::kUidValue:
      case Role::kReasonValue:
        return ++f.elements == 1 ? f.role : Role::kSkip;
      default:
        return Role::kSkip;
    }
  }

  void item_done(int seq) {
    std::string uid = uid_ ? clean_uid(*uid_) : std::string();
    if (uid.empty()) {
      ++seqs_[seq].without_uid;
      return;
    }
    seqs_[seq].entries.push_back({std::move(uid), reason_});
  }

  std::vector<Frame> frames_;
  Sequence seqs_[2];
  bool has_module_ = false;
  bool module_seen_ = false;
  std::size_t wrapper_elements_ = 0;
  std::optional<std::string> uid_;  // of the item being read
  std::optional<std::uint16_t> reason_;
};

std::optional<Answer> parse_json_answer(std::string_view body) {
  AnswerReader reader;
  const bool parsed = nlohmann::json::sax_parse(body.begin(), body.end(), &reader,
                                                nlohmann::json::input_format_t::json,
                                                /*strict=*/true, /*ignore_comments=*/false);
  return reader.take_result(parsed);
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
