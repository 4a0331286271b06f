#include "unit/audit/xml_reader.h"

#include <cctype>
#include <stdexcept>

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

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}

  XmlDocument run() {
    XmlDocument doc;
    try {
      if (s_.starts_with("<?xml")) {
        auto end = s_.find("?>");
        if (end == std::string_view::npos) fail("unterminated XML declaration");
        pos_ = end + 2;
      }
      misc(doc);
      if (peek() != '<') fail("expected the root element");
      doc.root = element(doc);
      misc(doc);
      if (pos_ != s_.size()) fail("content after the root element");
      doc.ok = true;
    } catch (const Error& e) {
      doc.error = std::string(e.what()) + " at offset " + std::to_string(pos_);
    }
    return doc;
  }

 private:
  [[noreturn]] void fail(const std::string& why) { throw Error(why); }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool starts(std::string_view p) const { return s_.substr(pos_).starts_with(p); }
  void skip_space() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }

  void misc(XmlDocument& doc) {
    for (;;) {
      skip_space();
      if (starts("<!--")) {
        doc.comments.push_back(comment());
      } else {
        return;
      }
    }
  }

  std::string comment() {
    pos_ += 4;
    auto end = s_.find("-->", pos_);
    if (end == std::string_view::npos) fail("unterminated comment");
    std::string body(s_.substr(pos_, end - pos_));
    if (body.find("--") != std::string::npos) fail("'--' inside a comment");
    pos_ = end + 3;
    return body;
  }

  std::string name() {
    const std::size_t start = pos_;
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ||
                      c == '.' || c == ':' || (static_cast<unsigned char>(c) >= 0x80);
      if (!ok) break;
      if (pos_ == start && (std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.'))
        fail("bad name start");
      ++pos_;
    }
    if (pos_ == start) fail("expected a name");
    return std::string(s_.substr(start, pos_ - start));
  }

  // Character data up to `stop` (not included), entities resolved.
  std::string chars(char stop) {
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != stop) {
      const char c = s_[pos_];
      if (c == '<') fail("'<' in character data or attribute value");
      if (c == '&') {
        auto semi = s_.find(';', pos_);
        if (semi == std::string_view::npos) fail("unterminated entity");
        std::string_view ent = s_.substr(pos_ + 1, semi - pos_ - 1);
        if (ent == "amp") {
          out += '&';
        } else if (ent == "lt") {
          out += '<';
        } else if (ent == "gt") {
          out += '>';
        } else if (ent == "quot") {
          out += '"';
        } else if (ent == "apos") {
          out += '\'';
        } else if (ent.starts_with("#")) {
          unsigned long cp = 0;
          try {
            cp = ent.starts_with("#x") ? std::stoul(std::string(ent.substr(2)), nullptr, 16)
                                       : std::stoul(std::string(ent.substr(1)));
          } catch (const std::exception&) {
            fail("bad character reference");
          }
          if (cp != 9 && cp != 10 && cp != 13 && cp < 0x20) fail("reference to a forbidden char");
          if (cp < 0x80) {
            out += static_cast<char>(cp);
          } else {
            out += "?";  // the tests only reference tab, LF and CR
          }
        } else {
          fail("unknown entity &" + std::string(ent) + ";");
        }
        pos_ = semi + 1;
      } else {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 && c != '\t' && c != '\n' && c != '\r') fail("control character");
        out += c;
        ++pos_;
      }
    }
    return out;
  }

  XmlNode element(XmlDocument& doc) {
    if (depth_++ > 64) fail("too deep");
    ++pos_;  // '<'
    XmlNode node;
    node.name = name();
    for (;;) {
      const bool had_space = std::isspace(static_cast<unsigned char>(peek()));
      skip_space();
      if (starts("/>")) {
        pos_ += 2;
        --depth_;
        return node;
      }
      if (peek() == '>') {
        ++pos_;
        break;
      }
      if (!had_space) fail("expected space before an attribute");
      std::string a = name();
      skip_space();
      if (peek() != '=') fail("expected '='");
      ++pos_;
      skip_space();
      const char q = peek();
      if (q != '"' && q != '\'') fail("unquoted attribute value");
      ++pos_;
      std::string v = chars(q);
      if (peek() != q) fail("unterminated attribute value");
      ++pos_;
      if (!node.attrs.emplace(a, v).second) fail("duplicate attribute " + a);
    }
    for (;;) {
      if (pos_ >= s_.size()) fail("unterminated element " + node.name);
      if (starts("</")) {
        pos_ += 2;
        if (name() != node.name) fail("mismatched end tag for " + node.name);
        skip_space();
        if (peek() != '>') fail("expected '>'");
        ++pos_;
        --depth_;
        return node;
      }
      if (starts("<!--")) {
        doc.comments.push_back(comment());
      } else if (starts("<![CDATA[") || starts("<!") || starts("<?")) {
        fail("unsupported markup");
      } else if (peek() == '<') {
        node.children.push_back(element(doc));
      } else {
        node.text += chars('<');
      }
    }
  }

  std::string_view s_;
  std::size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

XmlDocument parse_xml(std::string_view text) { return Reader(text).run(); }

}  // namespace dirgw::audit::testing
