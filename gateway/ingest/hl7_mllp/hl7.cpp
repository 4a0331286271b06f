#include "ingest/hl7_mllp/hl7.h"

#include <algorithm>
#include <cctype>
#include <optional>

#include "common/text.h"

namespace dirgw::hl7 {

namespace {

Error protocol(std::string detail) { return make_error(ErrorCode::kProtocol, std::move(detail)); }

bool is_upper_or_digit(char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// A separator must be visible ASCII punctuation: not a letter, digit, space or control byte.
bool valid_separator(char c) {
  auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7F && !std::isalnum(u);
}

// The n-th (0-based) piece of `s` split on `sep`; nullopt past the end. split("", x) has one
// empty piece.
std::optional<std::string_view> piece(std::string_view s, char sep, std::size_t n) {
  std::size_t start = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t p = s.find(sep, start);
    if (p == std::string_view::npos) return std::nullopt;
    start = p + 1;
  }
  std::size_t end = s.find(sep, start);
  return s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
}

std::size_t pieces(std::string_view s, char sep) {
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), sep)) + 1;
}

bool parse_index(std::string_view text, std::size_t& pos, std::size_t& out) {
  std::size_t start = pos;
  std::size_t v = 0;
  while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9' && pos - start < 6) {
    v = v * 10 + static_cast<std::size_t>(text[pos] - '0');
    ++pos;
  }
  if (pos == start || v == 0) return false;
  if (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') return false;  // too many digits
  out = v;
  return true;
}

// "(n)" or "[n]" at pos, if there.
bool parse_bracketed(std::string_view text, std::size_t& pos, std::size_t& out, bool& ok) {
  if (pos >= text.size() || (text[pos] != '(' && text[pos] != '[')) return false;
  const char close = text[pos] == '(' ? ')' : ']';
  ++pos;
  ok = parse_index(text, pos, out) && pos < text.size() && text[pos] == close;
  ++pos;
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool contains(const std::vector<std::string>& list, std::string_view v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

}  // namespace

// --- paths
// ------------------------------------------------------------------------------------------

Result<Path> Path::parse(std::string_view text) {
  auto bad = [&]() { return make_error(ErrorCode::kInvalidArgument, "malformed HL7 field path"); };
  Path p;
  if (text.size() < 5) return bad();
  for (std::size_t i = 0; i < 3; ++i) {
    if (!is_upper_or_digit(text[i])) return bad();
  }
  p.segment = std::string(text.substr(0, 3));
  std::size_t pos = 3;
  bool ok = true;
  if (parse_bracketed(text, pos, p.occurrence, ok) && !ok) return bad();
  if (pos >= text.size() || text[pos] != '-') return bad();
  ++pos;
  if (!parse_index(text, pos, p.field)) return bad();
  if (parse_bracketed(text, pos, p.repetition, ok) && !ok) return bad();
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    if (!parse_index(text, pos, p.component)) return bad();
    if (pos < text.size() && text[pos] == '.') {
      ++pos;
      if (!parse_index(text, pos, p.subcomponent)) return bad();
    }
  }
  if (pos != text.size()) return bad();
  return p;
}

// --- escapes
// ------------------------------------------------------------------------------------------

namespace {

// The number after a formatting command (".sp 2", ".sk+3", ".ti-2", ".sp"), its sign dropped:
// absent is `fallback`; nullopt when what follows is not a number. Capped: a report asks for a
// few lines, not millions.
std::optional<int> formatting_count(std::string_view rest, int fallback) {
  while (!rest.empty() && (rest.front() == ' ' || rest.front() == '+' || rest.front() == '-'))
    rest.remove_prefix(1);
  if (rest.empty()) return fallback;
  int n = 0;
  for (char d : rest) {
    if (d < '0' || d > '9') return std::nullopt;
    n = std::min(n * 10 + (d - '0'), 1000);
  }
  return n;
}

// HL7 2.7 2.7.6, formatted text (FT): the commands that shape lines, as plain text. nullopt
// when `body` is not one of them.
std::optional<std::string> formatting_text(std::string_view body) {
  constexpr int kMaxLines = 10, kMaxSpaces = 80;
  auto starts = [&](std::string_view cmd) { return body.substr(0, cmd.size()) == cmd; };
  if (body == ".br") return std::string("\n");
  if (starts(".sp")) {  // end the line and skip n (default 1) vertical spaces
    auto n = formatting_count(body.substr(3), 1);
    if (!n) return std::nullopt;
    return std::string(static_cast<std::size_t>(1 + std::min(*n, kMaxLines)), '\n');
  }
  if (starts(".sk")) {  // skip n spaces to the right
    auto n = formatting_count(body.substr(3), 1);
    if (!n) return std::nullopt;
    return std::string(static_cast<std::size_t>(std::min(*n, kMaxSpaces)), ' ');
  }
  // Indents, centring and fill mode: layout only, nothing of the text.
  for (std::string_view cmd : {".in", ".ti"})
    if (starts(cmd) && formatting_count(body.substr(3), 0)) return std::string();
  if (body == ".ce" || body == ".fi" || body == ".nf") return std::string();
  return std::nullopt;
}

}  // namespace

std::string unescape(std::string_view raw, const Separators& sep) {
  std::string out;
  out.reserve(raw.size());
  std::size_t i = 0;
  while (i < raw.size()) {
    const char c = raw[i];
    if (c != sep.escape) {
      out += c;
      ++i;
      continue;
    }
    const std::size_t end = raw.find(sep.escape, i + 1);
    if (end == std::string_view::npos) {  // unterminated: literal
      out.append(raw.substr(i));
      break;
    }
    const std::string_view body = raw.substr(i + 1, end - i - 1);
    bool handled = true;
    if (body == "F") {
      out += sep.field;
    } else if (body == "S") {
      out += sep.component;
    } else if (body == "T") {
      out += sep.subcomponent;
    } else if (body == "R") {
      out += sep.repetition;
    } else if (body == "E") {
      out += sep.escape;
    } else if (auto formatted = formatting_text(body)) {
      out += *formatted;
    } else if (body == "H" || body == "N") {
      // highlighting on/off: no meaning for data
    } else if (!body.empty() && (body[0] == 'C' || body[0] == 'M') && body.size() > 1 &&
               std::all_of(body.begin() + 1, body.end(),
                           [](char h) { return hex_value(h) >= 0; })) {
      // character set switches (ISO 2022): dropped, the bytes around them are kept
    } else if (!body.empty() && body[0] == 'X' && body.size() % 2 == 1) {
      std::string bytes;
      for (std::size_t k = 1; k + 1 < body.size() && handled; k += 2) {
        const int hi = hex_value(body[k]), lo = hex_value(body[k + 1]);
        if (hi < 0 || lo < 0) {
          handled = false;
        } else {
          bytes += static_cast<char>(hi * 16 + lo);
        }
      }
      if (handled) out += bytes;
    } else {
      handled = false;
    }
    if (!handled) out.append(raw.substr(i, end - i + 1));
    i = end + 1;
  }
  return out;
}

std::string escape(std::string_view text, const Separators& sep) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == sep.escape) {
      out += sep.escape;
      out += 'E';
      out += sep.escape;
    } else if (c == sep.field) {
      out += sep.escape;
      out += 'F';
      out += sep.escape;
    } else if (c == sep.component) {
      out += sep.escape;
      out += 'S';
      out += sep.escape;
    } else if (c == sep.subcomponent) {
      out += sep.escape;
      out += 'T';
      out += sep.escape;
    } else if (c == sep.repetition) {
      out += sep.escape;
      out += 'R';
      out += sep.escape;
    } else {
      out += c;
    }
  }
  return out;
}

// --- parsing
// ------------------------------------------------------------------------------------------

// Long (~80 lines): one pass over the message that checks each limit where it is reached (size,
// control bytes, MSH delimiters, segments, fields); the checks share the cursor and the counts.
Result<Message> Message::parse(std::string_view bytes, const ParseLimits& limits) {
  if (bytes.size() > limits.max_message_bytes) {
    return make_error(ErrorCode::kInvalidArgument, "HL7 message larger than allowed");
  }
  // A UTF-8 byte order mark, and line ends, before MSH: some engines write them. Skipped.
  if (bytes.substr(0, 3) == "\xEF\xBB\xBF") bytes.remove_prefix(3);
  while (!bytes.empty() && (bytes.front() == '\r' || bytes.front() == '\n')) bytes.remove_prefix(1);
  if (bytes.size() < 8 || bytes.substr(0, 3) != "MSH") {
    return protocol("message does not start with an MSH segment");
  }
  // Control bytes have no place in ER7 (CR ends a segment; LF and CRLF are tolerated as segment
  // ends; TAB and ESC occur in text and ISO 2022 encodings).
  for (char c : bytes) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\r' && c != '\n' && c != '\t' && u != 0x1B) || u == 0x7F) {
      return protocol("message contains a control character");
    }
  }

  Message m;
  m.sep_.field = bytes[3];
  if (!valid_separator(m.sep_.field)) return protocol("MSH field separator is not valid");
  const std::size_t enc_end = bytes.find_first_of(std::string{m.sep_.field, '\r', '\n'}, 4);
  const std::string_view enc =
      bytes.substr(4, enc_end == std::string_view::npos ? std::string_view::npos : enc_end - 4);
  // Component, repetition, escape, subcomponent; HL7 2.7 adds a fifth (truncation) character.
  if (enc.size() != 4 && enc.size() != 5) {
    return protocol("MSH-2 must hold four (or five) encoding characters");
  }
  std::string all{m.sep_.field};
  for (char c : enc) {
    if (!valid_separator(c)) return protocol("MSH-2 holds an invalid encoding character");
    if (all.find(c) != std::string::npos) return protocol("MSH-2 repeats a separator");
    all += c;
  }
  m.sep_.component = enc[0];
  m.sep_.repetition = enc[1];
  m.sep_.escape = enc[2];
  m.sep_.subcomponent = enc[3];

  std::size_t start = 0;
  while (start < bytes.size()) {
    std::size_t end = bytes.find_first_of("\r\n", start);
    if (end == std::string_view::npos) end = bytes.size();
    const std::string_view line = bytes.substr(start, end - start);
    start = end + 1;
    if (line.empty()) continue;  // CRLF, blank lines, a trailing terminator
    if (m.segments_.size() >= limits.max_segments) {
      return make_error(ErrorCode::kInvalidArgument, "HL7 message has too many segments");
    }
    const std::size_t index = m.segments_.size() + 1;
    if (line.size() < 3 || !(line[0] >= 'A' && line[0] <= 'Z') || !is_upper_or_digit(line[1]) ||
        !is_upper_or_digit(line[2]) || (line.size() > 3 && line[3] != m.sep_.field)) {
      return protocol("segment " + std::to_string(index) + " has a malformed segment ID");
    }
    Segment seg;
    seg.id = std::string(line.substr(0, 3));
    if (seg.id == "MSH" && index != 1)
      return protocol(
          "more than one MSH segment (batches are "
          "not supported)");
    if (seg.id == "FHS" || seg.id == "BHS") return protocol("batches are not supported");
    std::size_t fstart = 0;
    for (;;) {
      if (seg.fields.size() >= limits.max_fields) {
        return make_error(ErrorCode::kInvalidArgument,
                          "segment " + std::to_string(index) + " has too many fields");
      }
      const std::size_t fend = line.find(m.sep_.field, fstart);
      seg.fields.emplace_back(line.substr(
          fstart, fend == std::string_view::npos ? std::string_view::npos : fend - fstart));
      if (fend == std::string_view::npos) break;
      fstart = fend + 1;
    }
    if (index == 1) {
      // "MSH|^~\&|A" splits into MSH, ^~\&, A: insert MSH-1 so that MSH-n is fields[n].
      seg.fields.insert(seg.fields.begin() + 1, std::string(1, m.sep_.field));
    }
    m.segments_.push_back(std::move(seg));
  }
  if (m.segments_.empty() || m.segments_.front().id != "MSH") {
    return protocol("message does not start with an MSH segment");
  }
  return m;
}

const Segment* Message::segment(std::string_view id, std::size_t occurrence) const {
  for (const Segment& s : segments_) {
    if (s.id != id) continue;
    if (occurrence == 0) return &s;
    --occurrence;
  }
  return nullptr;
}

std::size_t Message::count(std::string_view id) const {
  return static_cast<std::size_t>(std::count_if(segments_.begin(), segments_.end(),
                                                [&](const Segment& s) { return s.id == id; }));
}

std::optional<std::string_view> Message::locate(const Path& p, bool whole_repetition) const {
  const Segment* seg = segment(p.segment, p.occurrence - 1);
  if (seg == nullptr || p.field >= seg->fields.size()) return std::nullopt;
  std::string_view field = seg->fields[p.field];
  if (p.segment == "MSH" && p.field <= 2) {  // separators: no structure inside
    if (p.repetition != 1 || p.component > 1 || p.subcomponent > 1) return std::nullopt;
    return field;
  }
  std::optional<std::string_view> rep = piece(field, sep_.repetition, p.repetition - 1);
  if (!rep) return std::nullopt;
  if (p.component == 0 && whole_repetition) return rep;
  std::optional<std::string_view> comp =
      piece(*rep, sep_.component, p.component == 0 ? 0 : p.component - 1);
  if (!comp) return std::nullopt;
  if (p.subcomponent == 0 && whole_repetition) return comp;
  return piece(*comp, sep_.subcomponent, p.subcomponent == 0 ? 0 : p.subcomponent - 1);
}

std::optional<std::string> Message::get(const Path& path) const {
  std::optional<std::string_view> v = locate(path, false);
  if (!v) return std::nullopt;
  if (path.segment == "MSH" && path.field <= 2) return std::string(*v);
  return unescape(*v, sep_);
}

std::optional<std::string> Message::get(std::string_view path) const {
  Result<Path> p = Path::parse(path);
  if (!p) return std::nullopt;
  return get(*p);
}

std::optional<std::string> Message::raw(std::string_view path) const {
  Result<Path> p = Path::parse(path);
  if (!p) return std::nullopt;
  std::optional<std::string_view> v = locate(*p, true);
  if (!v) return std::nullopt;
  return std::string(*v);
}

std::size_t Message::repetitions(std::string_view path) const {
  Result<Path> p = Path::parse(path);
  if (!p) return 0;
  const Segment* seg = segment(p->segment, p->occurrence - 1);
  if (seg == nullptr || p->field >= seg->fields.size() || seg->fields[p->field].empty()) return 0;
  if (p->segment == "MSH" && p->field <= 2) return 1;
  return pieces(seg->fields[p->field], sep_.repetition);
}

Result<void> check_header(const Message& message) {
  if (message.message_type().empty()) return protocol("MSH-9.1 (message type) is empty");
  if (message.trigger_event().empty()) return protocol("MSH-9.2 (trigger event) is empty");
  if (message.control_id().empty()) return protocol("MSH-10 (message control ID) is empty");
  return {};
}

// --- ACK
// -------------------------------------------------------------------------------------------

namespace {

std::string_view ack_code_text(AckCode code) {
  switch (code) {
    case AckCode::kAA:
      return "AA";
    case AckCode::kAE:
      return "AE";
    case AckCode::kAR:
      return "AR";
  }
  return "AR";
}

std::string_view error_text(AckError e) {
  switch (e) {
    case AckError::kSegmentSequence:
      return "Segment sequence error";
    case AckError::kRequiredFieldMissing:
      return "Required field missing";
    case AckError::kDataType:
      return "Data type error";
    case AckError::kTableValueNotFound:
      return "Table value not found";
    case AckError::kUnsupportedMessageType:
      return "Unsupported message type";
    case AckError::kUnsupportedEventCode:
      return "Unsupported event code";
    case AckError::kUnsupportedProcessingId:
      return "Unsupported processing id";
    case AckError::kUnsupportedVersionId:
      return "Unsupported version id";
    case AckError::kUnknownKeyIdentifier:
      return "Unknown key identifier";
    case AckError::kDuplicateKeyIdentifier:
      return "Duplicate key identifier";
    case AckError::kApplicationRecordLocked:
      return "Application record locked";
    case AckError::kApplicationInternalError:
      return "Application internal error";
  }
  return "Application internal error";
}

// Our own words only: printable ASCII, at most 200 characters, then escaped.
std::string clean_text(std::string_view text, const Separators& sep) {
  std::string t;
  for (char c : text.substr(0, 200)) t += (c >= 0x20 && c <= 0x7E) ? c : ' ';
  return escape(t, sep);
}

// A value the gateway puts in a header field by itself (control ID, timestamp): same cleaning.
std::string clean_field(std::string_view value, const Separators& sep) {
  return clean_text(value, sep);
}

struct HeaderCopy {
  std::string sending_app, sending_facility, receiving_app, receiving_facility;
  std::string trigger, control_id, processing_id = "P", version = "2.5", charset;
};

std::string build_ack(const Separators& sep, const HeaderCopy& h, AckCode code,
                      std::string_view text, const AckOptions& options) {
  const char f = sep.field;
  std::string enc{sep.component, sep.repetition, sep.escape, sep.subcomponent};
  std::string out = "MSH";
  out += f;
  out += enc;
  // MSH-3..6: the reply goes back where the message came from.
  for (const std::string* v :
       {&h.receiving_app, &h.receiving_facility, &h.sending_app, &h.sending_facility}) {
    out += f;
    out += *v;
  }
  out += f;
  out += clean_field(options.timestamp, sep);  // MSH-7
  out += f;                                    // MSH-8 security
  out += f;
  out += "ACK";  // MSH-9
  if (!h.trigger.empty()) {
    out += sep.component;
    out += h.trigger;
    out += sep.component;
    out += "ACK";
  }
  out += f;
  out += clean_field(options.control_id, sep);  // MSH-10
  out += f;
  out += h.processing_id;  // MSH-11
  out += f;
  out += h.version;  // MSH-12
  if (!h.charset.empty()) {
    for (int i = 13; i <= 18; ++i) out += f;  // MSH-13..17 empty, MSH-18 the character set
    out += h.charset;
  }
  out += '\r';

  out += "MSA";
  out += f;
  out += ack_code_text(code);
  out += f;
  out += h.control_id;
  if (code != AckCode::kAA && !text.empty()) {
    out += f;
    out += clean_text(text, sep);  // MSA-3, for receivers older than 2.5
  }
  out += '\r';

  if (code != AckCode::kAA) {
    // ERR (2.5+): ERR-1 and ERR-2 empty, ERR-3 table 0357 code, ERR-4 severity, ERR-8 user message.
    out += "ERR";
    out += f;
    out += f;
    out += f;
    out += std::to_string(static_cast<int>(options.error));
    out += sep.component;
    out += escape(error_text(options.error), sep);
    out += sep.component;
    out += "HL70357";
    out += f;
    out += 'E';
    out += f;
    out += f;
    out += f;
    out += f;
    out += clean_text(text, sep);
    out += '\r';
  }
  return out;
}

}  // namespace

std::string make_ack(const Message& in, AckCode code, std::string_view text,
                     const AckOptions& options) {
  const Separators& sep = in.separators();
  HeaderCopy h;
  // Header fields are copied as received: they are already encoded with these separators, and a
  // segment cannot hold a CR or control byte (parse refused those).
  h.sending_app = in.raw("MSH-3").value_or("");
  h.sending_facility = in.raw("MSH-4").value_or("");
  h.receiving_app = in.raw("MSH-5").value_or("");
  h.receiving_facility = in.raw("MSH-6").value_or("");
  h.trigger = in.raw("MSH-9.2").value_or("");
  h.control_id = in.raw("MSH-10").value_or("");
  if (std::string p = in.raw("MSH-11").value_or(""); !p.empty()) h.processing_id = p;
  if (std::string v = in.raw("MSH-12").value_or(""); !v.empty()) h.version = v;
  h.charset = in.raw("MSH-18").value_or("");
  // A repetition separator in a copied field would turn into one in ours: keep the first.
  for (std::string* v :
       {&h.sending_app, &h.sending_facility, &h.receiving_app, &h.receiving_facility, &h.control_id,
        &h.processing_id, &h.version, &h.charset}) {
    v->erase(std::min(v->find(sep.repetition), v->size()));
  }
  return build_ack(sep, h, code, text, options);
}

std::string make_ack_unparsed(AckCode code, std::string_view text, const AckOptions& options) {
  return build_ack(Separators{}, HeaderCopy{}, code, text, options);
}

// --- identifiers and consent ---------------------------------------------------------------------

std::string_view to_string(ConsentAction action) {
  switch (action) {
    case ConsentAction::kGrant:
      return "grant";
    case ConsentAction::kWithdraw:
      return "withdraw";
    case ConsentAction::kUnknown:
      return "unknown";
  }
  return "unknown";
}

std::vector<PatientIdentifier> patient_identifiers(const Message& message) {
  std::vector<PatientIdentifier> out;
  const Segment* pid = message.segment("PID");
  if (pid == nullptr || pid->fields.size() <= 3) return out;
  const Separators& sep = message.separators();
  // One pass over the repetitions: linear in the field, however many repetitions it has.
  const std::string_view field = pid->fields[3];
  std::size_t start = 0;
  while (start <= field.size()) {
    std::size_t end = field.find(sep.repetition, start);
    if (end == std::string_view::npos) end = field.size();
    const std::string_view rep = field.substr(start, end - start);
    start = end + 1;
    auto part = [&](std::size_t component, std::size_t sub) {
      std::optional<std::string_view> c = piece(rep, sep.component, component);
      if (!c) return std::string();
      std::optional<std::string_view> s = piece(*c, sep.subcomponent, sub);
      return s ? std::string(trim_whitespace(unescape(*s, sep))) : std::string();
    };
    std::string id = part(0, 0);
    if (!id.empty() && id != "\"\"") {
      out.push_back(PatientIdentifier{Phi<std::string>(std::move(id)), part(3, 0), part(4, 0)});
    }
    if (end == field.size()) break;
  }
  return out;
}

bool valid_dtm(std::string_view v) {
  std::size_t tz = v.find_first_of("+-");
  std::string_view main = v.substr(0, tz);
  if (tz != std::string_view::npos) {
    std::string_view zone = v.substr(tz + 1);
    if (zone.size() != 4 ||
        !std::all_of(zone.begin(), zone.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return false;
    }
    if ((zone[0] - '0') * 10 + (zone[1] - '0') > 14 ||
        (zone[2] - '0') * 10 + (zone[3] - '0') > 59) {
      return false;
    }
  }
  std::string_view frac;
  if (std::size_t dot = main.find('.'); dot != std::string_view::npos) {
    frac = main.substr(dot + 1);
    main = main.substr(0, dot);
    if (main.size() != 14 || frac.empty() || frac.size() > 4) return false;
  }
  const std::size_t n = main.size();
  if (n != 4 && n != 6 && n != 8 && n != 10 && n != 12 && n != 14) return false;
  for (char c : main) {
    if (c < '0' || c > '9') return false;
  }
  for (char c : frac) {
    if (c < '0' || c > '9') return false;
  }
  auto num = [&](std::size_t pos) { return (main[pos] - '0') * 10 + (main[pos + 1] - '0'); };
  if (n >= 6 && (num(4) < 1 || num(4) > 12)) return false;
  if (n >= 8 && (num(6) < 1 || num(6) > 31)) return false;
  if (n >= 10 && num(8) > 23) return false;
  if (n >= 12 && num(10) > 59) return false;
  if (n >= 14 && num(12) > 59) return false;
  return true;
}

Result<void> check_config(const ConsentConfig& config) {
  auto check = [](const std::string& path) -> Result<void> {
    if (!Path::parse(path)) {
      return make_error(ErrorCode::kConfig, "not an HL7 field path (SEG-n[.n[.n]]): " + path);
    }
    return {};
  };
  if (auto r = check(config.flag_path); !r) return r;
  for (const std::string& p : config.effective_time_paths) {
    if (auto r = check(p); !r) return r;
  }
  return {};
}

namespace {

// Component `component` (1-based, first subcomponent, first repetition) of field `field` of one
// segment, decoded and trimmed; "" when absent.
std::string component_value(const Segment& seg, const Separators& sep, std::size_t field,
                            std::size_t component) {
  if (field >= seg.fields.size()) return "";
  std::optional<std::string_view> rep = piece(seg.fields[field], sep.repetition, 0);
  if (!rep) return "";
  std::optional<std::string_view> comp = piece(*rep, sep.component, component - 1);
  if (!comp) return "";
  std::optional<std::string_view> sub = piece(*comp, sep.subcomponent, 0);
  return sub ? std::string(trim_whitespace(unescape(*sub, sep))) : std::string();
}

std::string first_valid_time(const Message& m, const std::vector<std::string>& paths) {
  for (const std::string& p : paths) {
    std::string v = std::string(trim_whitespace(m.get(p).value_or("")));
    if (!v.empty() && valid_dtm(v)) return v;
  }
  return "";
}

ConsentAction classify(std::string_view value, const std::vector<std::string>& grant,
                       const std::vector<std::string>& withdraw) {
  std::string v(trim_whitespace(value));
  std::transform(v.begin(), v.end(), v.begin(), [](char c) {
    return static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  });
  if (v.empty()) return ConsentAction::kUnknown;
  if (contains(grant, v)) return ConsentAction::kGrant;
  if (contains(withdraw, v)) return ConsentAction::kWithdraw;
  return ConsentAction::kUnknown;
}

}  // namespace

Result<std::vector<ConsentEvent>> extract_consent(const Message& message,
                                                  const ConsentConfig& config) {
  if (auto r = check_config(config); !r) return r.error();
  std::vector<ConsentEvent> events;

  // Which CON segments concern us (one pass over the segments: linear however many there are).
  struct Con {
    std::size_t occurrence;
    const Segment* segment;
  };
  std::vector<Con> cons;
  if (config.use_con_segments) {
    std::size_t occurrence = 0;
    for (const Segment& seg : message.segments()) {
      if (seg.id != "CON") continue;
      ++occurrence;
      std::string type = component_value(seg, message.separators(), 2, 1);
      if (config.con_types.empty() || contains(config.con_types, type)) {
        cons.push_back(Con{occurrence, &seg});
      }
    }
  }
  const bool adt =
      message.message_type() == "ADT" && contains(config.adt_triggers, message.trigger_event());
  if (cons.empty() && !adt) return events;

  if (message.segment("PID") == nullptr) return protocol("consent message has no PID segment");
  std::vector<PatientIdentifier> ids = patient_identifiers(message);
  if (ids.empty()) return protocol("consent message has no identifier in PID-3");

  auto base = [&]() {
    ConsentEvent ev;
    ev.patient_ids = ids;
    ev.source = message.sending_facility();
    ev.control_id = message.control_id();
    return ev;
  };

  if (!cons.empty()) {
    const Separators& sep = message.separators();
    std::vector<std::string> fallback_times;
    for (const std::string& p : config.effective_time_paths) {
      if (p.rfind("PD1-", 0) != 0) fallback_times.push_back(p);  // PD1 dates belong to the flag
    }
    const std::string fallback = first_valid_time(message, fallback_times);
    for (const Con& con : cons) {
      ConsentEvent ev = base();
      ev.origin = "CON(" + std::to_string(con.occurrence) + ")-11";
      ev.consent_type = component_value(*con.segment, sep, 2, 1);
      ev.action = classify(component_value(*con.segment, sep, 11, 1), config.con_grant_status,
                           config.con_withdraw_status);
      // CON-14 Consent Effective Date/Time, then CON-13 Consent Decision Date/Time.
      for (std::size_t field : {std::size_t{14}, std::size_t{13}}) {
        std::string t = component_value(*con.segment, sep, field, 1);
        if (ev.effective_time.empty() && valid_dtm(t)) ev.effective_time = t;
      }
      if (ev.effective_time.empty()) ev.effective_time = fallback;
      events.push_back(std::move(ev));
    }
    return events;
  }

  ConsentEvent ev = base();
  ev.origin = config.flag_path;
  ev.action = classify(message.get(config.flag_path).value_or(""), config.grant_values,
                       config.withdraw_values);
  ev.effective_time = first_valid_time(message, config.effective_time_paths);
  events.push_back(std::move(ev));
  return events;
}

std::vector<HealthNumberLink> extract_health_number_links(const Message& message,
                                                          const LinkConfig& config) {
  std::vector<HealthNumberLink> out;
  if (!contains(config.message_types, message.message_type())) return out;
  std::vector<PatientIdentifier> ids = patient_identifiers(message);
  const PatientIdentifier* hn = nullptr;
  for (const PatientIdentifier& id : ids) {
    const bool is_hn = (!config.health_number_authority.empty() &&
                        id.assigning_authority == config.health_number_authority) ||
                       (id.assigning_authority.empty() && !config.health_number_type.empty() &&
                        id.identifier_type == config.health_number_type);
    if (!is_hn) continue;
    if (hn != nullptr && hn->id.reveal() != id.id.reveal()) return out;  // ambiguous
    hn = &id;
  }
  if (hn == nullptr) return out;
  for (const PatientIdentifier& id : ids) {
    if (&id == hn) continue;
    const bool is_mrn = config.mrn_authority.empty()
                            ? (!config.mrn_type.empty() && id.identifier_type == config.mrn_type)
                            : id.assigning_authority == config.mrn_authority;
    if (!is_mrn) continue;
    out.push_back(HealthNumberLink{Phi<std::string>(id.id.reveal()), id.assigning_authority,
                                   Phi<std::string>(hn->id.reveal()), hn->assigning_authority});
  }
  return out;
}

}  // namespace dirgw::hl7
