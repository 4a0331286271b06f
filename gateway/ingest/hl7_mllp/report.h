// Reports over HL7 v2 (issue 12): ORU^R01 and MDM^T02 mapped to what a DICOM report object
// needs (accession, patient identifiers, result status, text or an embedded PDF, author,
// observation time), with the message's character set (MSH-18) decoded to UTF-8. Pure: a parsed
// message in, a Report or a refusal (our words, never a value from the message) out. What the
// report becomes (Basic Text SR, Encapsulated PDF) and when it goes: gateway/ingest/reports/.
// Rules: docs/hl7.md "Reports".
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "ingest/hl7_mllp/hl7.h"

namespace dirgw::hl7 {

enum class ReportStatus { kPreliminary, kFinal, kCorrected };
std::string_view to_string(ReportStatus status);  // "preliminary", "final", "corrected"

struct ReportConfig {
  // Where the Accession Number is read: "filler" (OBR-3, TXA-15) or "placer" (OBR-2, TXA-14).
  // filler (OBR-3; TXA-15), placer (OBR-2; TXA-14), or an HL7 field path (OBR-18, OBR-20.1...).
  std::string accession_field = "filler";
  // The character set of a message without MSH-18 whose text is neither ASCII nor UTF-8 (a
  // sender that writes Latin-1 and says nothing): an MSH-18 term, e.g. "8859/1". Empty: such a
  // message is refused.
  std::string default_charset;
};

struct Report {
  std::string message_type;        // "ORU" or "MDM"
  std::string message_key;         // MSH-3.1 / MSH-4.1 / MSH-10: a message sent again is known
  std::string facility;            // MSH-4.1, the sending facility (the verifying organization)
  Phi<std::string> accession{""};  // as sent (ASCII in practice)
  std::vector<PatientIdentifier> patient_ids;
  ReportStatus status = ReportStatus::kFinal;
  std::string status_code;       // as sent: "F", "P", "C", "AU", ...
  Phi<std::string> text{""};     // UTF-8; lines separated by LF; empty for a PDF report
  Phi<std::string> pdf{""};      // the decoded bytes of an ED (Base64) PDF; empty otherwise
  Phi<std::string> title{""};    // OBR-4.2 (or TXA-2), UTF-8; may be empty
  Phi<std::string> author{""};   // DICOM PN "Family^Given", UTF-8; may be empty
  std::string observation_time;  // HL7 DTM digits (no zone), e.g. "20261203091500"; may be empty
  // The Study Instance UID the RIS names (ZDS-1.1, IHE Radiology; the first ZDS of the order's
  // segments, else of the message): picks the study when several of the patient's carry the
  // accession. Empty when absent or not a UID.
  std::string study_uid;
};

// kProtocol with a reason (our words) when the message is not a report we can take: not ORU^R01 /
// MDM^T02/T04/T10, no accession, no patient identifier, no text and no PDF, a status we do not
// handle (cancelled, deleted), a character set we cannot decode, bad Base64.
// kNotFound (not an error to refuse): a notification that carries no report (OBR-25 X cancelled,
// I in progress, ...; notification_only in report.cpp), to be acknowledged and not stored.
// `order`: which OBR (0-based) of an ORU with several, each with the observations that follow it
// (its message_key then ends "\x1fobr<n>", n from 2); an order with no observations of its own gets
// every order's text.
Result<Report> extract_report(const Message& message, const ReportConfig& config,
                              std::size_t order = 0);
// How many reports a message holds: the ORU's OBR segments (at least 1); 1 for MDM.
std::size_t report_orders(const Message& message);
// The order a stored report's message_key names (0 without "\x1fobr<n>").
std::size_t report_order_of(std::string_view message_key);

// MDM triggers taken as reports: T02 (original document), T04 (status change with content),
// T10 (replacement with content: read as a correction, a new version).
bool mdm_with_content(std::string_view trigger);
// Why another MDM trigger is refused (answered AR; our words); "" for those taken.
std::string mdm_refusal(std::string_view trigger);

// Bytes in the character set named by MSH-18 (HL7 table 0211: "" / ASCII, 8859/1..9, 8859/15,
// UNICODE UTF-8; and the field's other spellings, see charsets.h) to UTF-8. Without
// MSH-18 the text must be ASCII or valid UTF-8, else it is read in `fallback` when one is given.
Result<std::string> hl7_text_to_utf8(std::string_view bytes, std::string_view charset,
                                     std::string_view fallback = {});

// Strict Base64 (RFC 4648 alphabet, padding; CR/LF/space ignored).
Result<std::string> decode_base64(std::string_view text);

}  // namespace dirgw::hl7
