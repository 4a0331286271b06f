#include "ingest/hl7_mllp/report.h"

#include <iconv.h>
#include <strings.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "common/text.h"
#include "ingest/hl7_mllp/charsets.h"

namespace dirgw::hl7 {

namespace {

Error refused(std::string why) { return make_error(ErrorCode::kProtocol, std::move(why)); }

// Field n of a segment as received, or "".
std::string_view field(const Segment* s, std::size_t n) {
  return s != nullptr && n < s->fields.size() ? std::string_view(s->fields[n]) : std::string_view();
}

// The n-th (0-based) piece of s split on sep, or "" when there are fewer.
std::string_view part(std::string_view s, char sep, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const auto at = s.find(sep);
    if (at == std::string_view::npos) return {};
    s.remove_prefix(at + 1);
  }
  return s.substr(0, s.find(sep));
}

// Component c (1-based) of the first repetition of a raw field, first subcomponent, decoded.
std::string component(const Message& m, std::string_view raw_field, std::size_t c,
                      std::size_t sub = 1) {
  const Separators& sep = m.separators();
  const auto rep = part(raw_field, sep.repetition, 0);
  const auto comp = part(rep, sep.component, c - 1);
  const auto s = part(comp, sep.subcomponent, sub - 1);
  std::string v(trim_whitespace(unescape(s, sep)));
  return v == "\"\"" ? std::string() : v;
}

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t n = c < 0x80                ? 0
                          : c >= 0xC2 && c < 0xE0 ? 1
                          : c >= 0xE0 && c < 0xF0 ? 2
                          : c >= 0xF0 && c < 0xF5 ? 3
                                                  : 99;
    if (n == 99 || s.size() - i <= n) return false;
    for (std::size_t k = 1; k <= n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    i += n + 1;
  }
  return true;
}

// A result status (OBR-25, table 0123; or OBX-11, table 0085) to what it means for the report;
// nullopt for statuses we refuse. A is an amendment: OBX-11's "amended", and what several RIS
// send in OBR-25 for an addendum after signing (table 0123 calls it "some results available",
// which a radiology report, dictated whole, does not use). Read as a correction: a new version
// that references the one before. Read as preliminary, an addendum would never go.
std::optional<ReportStatus> oru_status(std::string_view code) {
  if (code == "F") return ReportStatus::kFinal;
  if (code == "C" || code == "A") return ReportStatus::kCorrected;
  if (code == "P" || code == "R" || code == "S") return ReportStatus::kPreliminary;
  return std::nullopt;
}

// Result statuses that say something about an order but carry no report to file: X cancelled,
// O order received, I in progress, N completed with results pending, Y/Z no order or patient on
// record (OBR-25, table 0123); D deleted, U made final without the results again (OBX-11, table
// 0085). Answered AA and not stored (an AE here stalls an interface engine's queue behind a
// notification we have no use for).
bool notification_only(std::string_view code) {
  for (const char* c : {"X", "O", "I", "N", "Y", "Z", "D", "U"})
    if (code == c) return true;
  return false;
}

// A DICOM UID: digits and dots, at most 64 characters, no empty component.
bool is_uid(std::string_view s) {
  if (s.empty() || s.size() > 64 || s.front() == '.' || s.back() == '.') return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '.' && s[i + 1] == '.') return false;
    if (s[i] != '.' && (s[i] < '0' || s[i] > '9')) return false;
  }
  return true;
}

// TXA-17 Document Completion Status (table 0271).
std::optional<ReportStatus> mdm_status(std::string_view code) {
  if (code == "AU" || code == "LA") return ReportStatus::kFinal;
  if (code == "DO" || code == "IP" || code == "PA") return ReportStatus::kPreliminary;
  return std::nullopt;
}

std::string person_name(std::string family, std::string given) {
  std::string pn = std::move(family);
  if (!given.empty()) pn += "^" + given;
  // '^' and '\' would break the PN's structure once in DICOM.
  std::replace(pn.begin(), pn.end(), '\\', ' ');
  return pn;
}

// The DTM's digits up to seconds, without fraction or zone; "" when not a valid DTM.
std::string dtm_digits(std::string_view v) {
  if (!valid_dtm(v)) return {};
  std::string out;
  for (char c : v) {
    if (c < '0' || c > '9') break;
    out.push_back(c);
  }
  return out.substr(0, 14);
}

// A numeric observation as a line: "Nodule size: 4 mm" (OBX-3's text, OBX-5, OBX-6's text or
// code); SN's comparator and numbers ("<^5", "^2^-^4") joined as written.
std::string numeric_line(const Message& m, const Segment* obx, const std::string& type) {
  const Separators& sep = m.separators();
  std::string label = component(m, field(obx, 3), 2);
  if (label.empty()) label = component(m, field(obx, 3), 1);
  std::string value;
  if (type == "SN") {
    const auto rep = part(field(obx, 5), sep.repetition, 0);
    for (std::size_t c = 0; c < 4; ++c)
      value += std::string(trim_whitespace(unescape(part(rep, sep.component, c), sep)));
  } else {
    value = component(m, field(obx, 5), 1);
  }
  if (value.empty()) return {};
  std::string unit = component(m, field(obx, 6), 2);
  if (unit.empty()) unit = component(m, field(obx, 6), 1);
  return (label.empty() ? "" : label + ": ") + value + (unit.empty() ? "" : " " + unit);
}

// The text and PDF of the report, in message order: every OBX's TX/FT/ST/CE repetitions are lines,
// an NM or SN observation a line of its own ("Nodule size: 4 mm"), and the comments (NTE-3) that
// follow the order or an observation are lines too (an addendum is sometimes one); an ED whose
// type is PDF (with Base64 encoding) is the document.
struct Range {
  std::size_t begin = 0, end = 0;  // segment indices, [begin, end)
};

Result<void> read_observations(const Message& m, Report& r, std::string_view fallback,
                               const std::vector<Range>& ranges) {
  const Separators& sep = m.separators();
  std::string text;
  std::string pdf_base64, pdf_sub_id;
  bool pdf_open = false;  // the last OBX was the PDF's: a next one with its sub-ID continues it
  bool in_order = false;  // NTE before the OBR are the patient's notes: not the report's
  for (const Range& range : ranges)
    for (std::size_t k = range.begin; k < range.end; ++k) {
      const Segment& s = m.segments()[k];
      if (s.id == "OBR" || s.id == "TXA") in_order = true;
      if (s.id == "NTE" && in_order) {
        std::string_view rest = field(&s, 3);
        for (;;) {
          const auto at = rest.find(sep.repetition);
          const std::string line = unescape(rest.substr(0, at), sep);
          if (line != "\"\"" && !line.empty()) text += line + "\n";
          if (at == std::string_view::npos) break;
          rest.remove_prefix(at + 1);
        }
        continue;
      }
      if (s.id != "OBX") continue;
      const Segment* obx = &s;
      const bool continues_pdf = pdf_open;
      pdf_open = false;
      const std::string type(trim_whitespace(field(obx, 2)));
      const std::string_view value = field(obx, 5);
      if (type == "NM" || type == "SN") {
        if (const std::string line = numeric_line(m, obx, type); !line.empty()) text += line + "\n";
        continue;
      }
      if (type == "ED") {
        const std::string_view rep = part(value, sep.repetition, 0);
        const std::string subtype(trim_whitespace(unescape(part(rep, sep.component, 2), sep)));
        const std::string encoding(trim_whitespace(unescape(part(rep, sep.component, 3), sep)));
        if (strcasecmp(subtype.c_str(), "PDF") != 0 &&
            strcasecmp(subtype.c_str(), "application/pdf") != 0)
          return refused("OBX-5 encapsulated data is not a PDF (OBX-5.3)");
        if (strcasecmp(encoding.c_str(), "Base64") != 0)
          return refused("OBX-5 encapsulated PDF is not Base64 encoded (OBX-5.4)");
        // A large PDF is often split over consecutive OBX segments with the same sub-ID (OBX-4):
        // one document, its Base64 text continued.
        const std::string sub_id(trim_whitespace(field(obx, 4)));
        if (!pdf_base64.empty() && (sub_id.empty() || sub_id != pdf_sub_id || !continues_pdf))
          return refused("more than one PDF in the report");
        pdf_base64 += unescape(part(rep, sep.component, 4), sep);
        pdf_sub_id = sub_id;
        pdf_open = true;
        continue;
      }
      if (type == "TX" || type == "FT" || type == "ST" || type == "CE" || type == "CWE") {
        std::string_view rest = value;
        for (;;) {
          const auto at = rest.find(sep.repetition);
          std::string_view rep = rest.substr(0, at);
          // Coded values show their text (component 2); text types are the whole repetition.
          std::string line = (type == "CE" || type == "CWE")
                                 ? unescape(part(rep, sep.component, 1), sep)
                                 : unescape(rep, sep);
          if (line != "\"\"") text += line + "\n";
          if (at == std::string_view::npos) break;
          rest.remove_prefix(at + 1);
        }
      }
    }
  if (!pdf_base64.empty()) {
    auto pdf = decode_base64(pdf_base64);
    if (!pdf) return pdf.error();
    if (pdf->rfind("%PDF-", 0) != 0) return refused("OBX-5 encapsulated data is not a PDF");
    r.pdf = Phi<std::string>(std::move(*pdf));
  }
  // One kind of line end: a sender's \X0D0A\ (CR LF) or \X0D\ beside \.br\ and repetitions
  // (LF) gave a report with mixed line ends.
  std::string lines;
  lines.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\r') {
      lines += text[i];
    } else if (i + 1 == text.size() || text[i + 1] != '\n') {
      lines += '\n';
    }
  }
  text = std::move(lines);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  auto utf8 = hl7_text_to_utf8(text, m.charset(), fallback);
  if (!utf8) return utf8.error();
  r.text = Phi<std::string>(std::move(*utf8));
  if (r.text.reveal().empty() && r.pdf.reveal().empty())
    return refused("the report has neither text (OBX TX/FT/ST) nor a PDF (OBX ED)");
  return {};
}

Result<std::string> utf8_field(const Message& m, std::string value, std::string_view fallback) {
  return hl7_text_to_utf8(value, m.charset(), fallback);
}

}  // namespace

std::string_view to_string(ReportStatus status) {
  switch (status) {
    case ReportStatus::kPreliminary:
      return "preliminary";
    case ReportStatus::kCorrected:
      return "corrected";
    default:
      return "final";
  }
}

Result<std::string> hl7_text_to_utf8(std::string_view bytes, std::string_view charset,
                                     std::string_view fallback) {
  std::string set(trim_whitespace(charset));
  const bool ascii = std::all_of(bytes.begin(), bytes.end(),
                                 [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (set.empty()) {
    if (ascii || valid_utf8(bytes)) return std::string(bytes);
    if (fallback.empty()) return refused("non-ASCII text without a character set in MSH-18");
    set = std::string(fallback);  // the site's default_charset
  }
  if (strcasecmp(set.c_str(), "ASCII") == 0) {
    if (ascii || valid_utf8(bytes)) return std::string(bytes);
    return refused("non-ASCII text without a character set in MSH-18");
  }
  const char* from = hl7_charset_iconv_name(set);
  if (from == nullptr) return refused("character set in MSH-18 not supported");
  if (ascii) return std::string(bytes);
  if (std::strncmp(from, "ISO-8859-", 9) == 0 && valid_utf8(bytes)) {
    // Multi-byte UTF-8 under a declared ISO 8859 set: an engine that converted the text and not
    // MSH-18. Latin text read as ISO 8859 is almost never valid UTF-8, so it is taken as UTF-8
    // (read as 8859 it would be "Ã©" for "é").
    return std::string(bytes);
  }
  if (std::strcmp(from, "ISO-8859-1") == 0 && std::any_of(bytes.begin(), bytes.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u >= 0x80 && u < 0xA0;
      })) {
    // Bytes 0x80-0x9F are control codes in ISO 8859-1 and never text: a sender that says 8859/1
    // with them writes Windows-1252 (quotes, dashes from a word processor), which is 8859-1
    // everywhere else. Read as such; a byte that Windows-1252 leaves undefined is refused below.
    from = "WINDOWS-1252";
  }
  if (std::strcmp(from, "UTF-8") == 0) {
    if (valid_utf8(bytes)) return std::string(bytes);
    return refused("text is not valid UTF-8 although MSH-18 says so");
  }
  iconv_t cd = iconv_open("UTF-8", from);
  if (cd == reinterpret_cast<iconv_t>(-1))
    return make_error(ErrorCode::kInternal, "no converter for the character set");
  std::unique_ptr<void, int (*)(iconv_t)> close(cd, iconv_close);
  std::string in(bytes), out(bytes.size() * 4 + 4, '\0');
  char* ip = in.data();
  char* op = out.data();
  std::size_t il = in.size(), ol = out.size();
  if (iconv(cd, &ip, &il, &op, &ol) == static_cast<std::size_t>(-1))
    return refused("text does not decode in the character set of MSH-18");
  out.resize(out.size() - ol);
  return out;
}

Result<std::string> decode_base64(std::string_view text) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve(text.size() / 4 * 3);
  std::uint32_t acc = 0;
  int bits = 0, pad = 0;
  for (char c : text) {
    if (c == '\r' || c == '\n' || c == ' ') continue;
    if (c == '=') {
      ++pad;
      continue;
    }
    const auto v = kAlphabet.find(c);
    if (v == std::string_view::npos || pad > 0) return refused("OBX-5 Base64 data is malformed");
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  if (pad > 2 || bits >= 6) return refused("OBX-5 Base64 data is malformed");
  return out;
}

bool mdm_with_content(std::string_view trigger) {
  return trigger == "T02" || trigger == "T04" || trigger == "T10";
}

std::string mdm_refusal(std::string_view trigger) {
  if (mdm_with_content(trigger)) return {};
  if (trigger == "T11" || trigger == "T03" || trigger == "T01" || trigger == "T05" ||
      trigger == "T07" || trigger == "T09")
    return "MDM^" + std::string(trigger) +
           " carries no document content: not taken (send T02, T04 or T10 with the content; a "
           "document already sent cannot be withdrawn from the repository, only replaced by T10)";
  return "MDM^" + std::string(trigger) +
         " is not taken: only T02 (original), T04 (status change) and T10 (replacement) with "
         "content";
}

// Exams dictated together are a handful; a message with hundreds of OBR segments is refused
// rather than read once per order.
constexpr std::size_t kMaxOrders = 64;
// Between a message's key and its order: a control byte, which the key itself never holds (they
// are replaced), so a control ID cannot pose as an order.
constexpr std::string_view kOrderMark =
    "\x1f"
    "obr";

namespace {

// The segments of each order of an ORU: an OBR up to the next; the whole message for MDM (or an
// ORU without OBR).
std::vector<Range> order_ranges(const Message& m) {
  std::vector<Range> out;
  if (m.message_type() == "ORU")
    for (std::size_t k = 0; k < m.segments().size(); ++k)
      if (m.segments()[k].id == "OBR") {
        if (!out.empty()) out.back().end = k;
        out.push_back({k, m.segments().size()});
      }
  if (out.empty()) out.push_back({0, m.segments().size()});
  return out;
}

// An order's accession as ingest.hl7.reports.accession_field says ("" when absent).
std::string order_accession(const Message& m, const ReportConfig& config, std::size_t order) {
  const bool filler = config.accession_field == "filler";
  const bool placer = config.accession_field == "placer";
  std::string accession;
  if (filler || placer) {
    if (const Segment* obr = m.segment("OBR", order); obr != nullptr)
      accession = component(m, field(obr, filler ? 3 : 2), 1);
    if (const Segment* txa = m.segment("TXA"); accession.empty() && txa != nullptr)
      accession = component(m, field(txa, filler ? 15 : 14), 1);
  } else {
    // A field path (OBR-18, OBR-20...: where the site's RIS writes the accession).
    std::string path = config.accession_field;
    if (order > 0 && path.rfind("OBR-", 0) == 0)
      path = "OBR(" + std::to_string(order + 1) + ")" + path.substr(3);
    accession = std::string(trim_whitespace(m.get(path).value_or("")));
  }
  return accession == "\"\"" ? std::string() : accession;
}

}  // namespace

std::size_t report_orders(const Message& m) { return order_ranges(m).size(); }

std::size_t report_order_of(std::string_view message_key) {
  const auto at = message_key.rfind(kOrderMark);
  if (at == std::string_view::npos) return 0;
  std::size_t n = 0;
  for (std::size_t i = at + kOrderMark.size();
       i < message_key.size() && message_key[i] >= '0' && message_key[i] <= '9' && n < 100000; ++i)
    n = n * 10 + static_cast<std::size_t>(message_key[i] - '0');
  return n > 0 ? n - 1 : 0;
}

Result<Report> extract_report(const Message& m, const ReportConfig& config, std::size_t order) {
  Report r;
  r.message_type = m.message_type();
  const std::string trigger = m.trigger_event();
  if (!((r.message_type == "ORU" && trigger == "R01") ||
        (r.message_type == "MDM" && mdm_with_content(trigger))))
    return refused("only ORU^R01 and MDM^T02, T04, T10 carry reports");
  // Control bytes (an escape such as \X1F\ decodes to one) become '?': the key's order mark is
  // a control byte, and the key is shown by `dirgw reports`.
  r.message_key = m.sending_application() + "/" + m.sending_facility() + "/" + m.control_id();
  for (char& c : r.message_key)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  // Several orders in one message (exams dictated together: PowerScribe's linked exams): each
  // OBR, with the observations that follow it, is a report of its own study.
  const std::vector<Range> ranges = order_ranges(m);
  const std::size_t orders = ranges.size();
  if (orders > kMaxOrders) return refused("more than 64 orders (OBR) in one message");
  if (order >= orders) return refused("no such order in the message");
  if (order > 0) r.message_key += std::string(kOrderMark) + std::to_string(order + 1);
  auto facility = hl7_text_to_utf8(m.sending_facility(), m.charset(), config.default_charset);
  r.facility = facility ? *facility : std::string();
  r.patient_ids = patient_identifiers(m);
  if (r.patient_ids.empty()) {
    // HL7 2.3 senders may carry the record number in PID-2 (Patient ID, external) alone.
    const Segment* pid = m.segment("PID");
    if (std::string id = component(m, field(pid, 2), 1); !id.empty())
      r.patient_ids.push_back({Phi<std::string>(std::move(id)), component(m, field(pid, 2), 4),
                               component(m, field(pid, 2), 5)});
  }
  if (r.patient_ids.empty()) return refused("no patient identifier in PID-3 (or PID-2)");
  const bool filler = config.accession_field == "filler";
  const bool placer = config.accession_field == "placer";
  const Segment* obr = m.segment("OBR", order);
  const Segment* txa = m.segment("TXA");
  std::string accession = order_accession(m, config, order);
  // Orders with one accession are one report (two procedure codes of one exam, or an accession
  // field outside the OBR): the first of them carries the observations of all.
  std::vector<Range> mine{ranges[order]};
  if (!accession.empty()) {
    for (std::size_t j = 0; j < ranges.size(); ++j) {
      if (j == order || order_accession(m, config, j) != accession) continue;
      if (j < order)
        return make_error(ErrorCode::kNotFound,
                          "order " + std::to_string(order + 1) + " has the accession of order " +
                              std::to_string(j + 1) + ": one report with it, not stored twice");
      mine.push_back(ranges[j]);
    }
  }
  const auto first_obx_in = [&](const std::vector<Range>& rs) -> const Segment* {
    for (const Range& range : rs)
      for (std::size_t k = range.begin; k < range.end; ++k)
        if (m.segments()[k].id == "OBX") return &m.segments()[k];
    return nullptr;
  };
  const Segment* first_obx = first_obx_in(mine);
  // An order without observations of its own, beside others: the dictation covers them all (some
  // RIS send the text once, after the last OBR), so it gets the text of every order.
  if (ranges.size() > 1 && first_obx == nullptr) {
    mine = {Range{ranges.front().begin, ranges.back().end}};
    first_obx = first_obx_in(mine);
  }
  if (accession.empty())
    return refused(filler   ? "no accession number (filler order number, OBR-3)"
                   : placer ? "no accession number (placer order number, OBR-2)"
                            : "no accession number in " + config.accession_field +
                                  " (ingest.hl7.reports.accession_field)");
  if (accession.size() > 16) return refused("accession number longer than 16 characters");
  r.accession = Phi<std::string>(std::move(accession));
  std::optional<ReportStatus> status;
  if (r.message_type == "ORU") {
    r.status_code = component(m, field(obr, 25), 1);
    if (r.status_code.empty()) r.status_code = component(m, field(first_obx, 11), 1);
    status = oru_status(r.status_code);
  } else {
    r.status_code = component(m, field(txa, 17), 1);
    status = mdm_status(r.status_code);
    // T10 replaces a document with new content: a correction, as ORU's C (a new version that
    // references the one before). T04 (status change with content) is read as its TXA-17 says:
    // a preliminary made final becomes the next version, as with ORU.
    if (trigger == "T10" && status == ReportStatus::kFinal) status = ReportStatus::kCorrected;
  }
  if (!status && r.message_type == "ORU" && notification_only(r.status_code))
    return make_error(ErrorCode::kNotFound, "result status " + r.status_code +
                                                " carries no report (a notification): not stored");
  if (!status) return refused("result status not handled (final, corrected or preliminary)");
  r.status = *status;
  if (auto ok = read_observations(m, r, config.default_charset, mine); !ok) return ok.error();
  // Author: OBR-32 (principal result interpreter), else OBX-16 (responsible observer), else
  // TXA-22 / TXA-9 (authenticator, originator). OBR-32 is ID&family&given in its first
  // component; HL7 2.3 senders often write it as components instead (ID^family^given).
  std::string family = component(m, field(obr, 32), 1, 2),
              given = component(m, field(obr, 32), 1, 3);
  if (family.empty() && component(m, field(obr, 32), 2).size() > 0) {
    family = component(m, field(obr, 32), 2);
    given = component(m, field(obr, 32), 3);
  }
  for (const auto& [seg, n] : {std::pair{first_obx, 16}, {txa, 22}, {txa, 9}}) {
    if (!family.empty()) break;
    family = component(m, field(seg, n), 2);
    given = component(m, field(seg, n), 3);
  }
  auto author = utf8_field(m, person_name(family, given), config.default_charset);
  if (!author) return author.error();
  r.author = Phi<std::string>(std::move(*author));
  auto title = utf8_field(
      m, obr != nullptr ? component(m, field(obr, 4), 2) : component(m, field(txa, 2), 2),
      config.default_charset);
  if (!title) return title.error();
  r.title = Phi<std::string>(std::move(*title));
  const Segment* zds = nullptr;
  for (std::size_t k = ranges[order].begin; k < ranges[order].end && zds == nullptr; ++k)
    if (m.segments()[k].id == "ZDS") zds = &m.segments()[k];
  if (zds == nullptr && orders == 1) zds = m.segment("ZDS");
  if (std::string uid = component(m, field(zds, 1), 1); is_uid(uid)) r.study_uid = std::move(uid);
  for (const auto& [seg, n] : {std::pair{obr, 7}, {first_obx, 14}, {txa, 4}, {obr, 22}}) {
    if (!r.observation_time.empty()) break;
    r.observation_time = dtm_digits(component(m, field(seg, n), 1));
  }
  return r;
}

}  // namespace dirgw::hl7
