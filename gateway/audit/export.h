// Audit events as DICOM Audit Messages (PS3.15 A.5, the schema derived from RFC 3881), the form
// an ATNA audit repository and `dirgw audit export` use. Pure: builds text, no I/O.
//
// Patients appear only as the keyed HMAC tag the event carries (ParticipantObjectIDTypeCode
// 99DIRGW "PATREF"), never as a Patient ID or name: see docs/audit.md for why, and for what an
// ATNA deployment that requires the real Patient ID would need.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/audit.h"

namespace dirgw::audit {

struct ExportContext {
  std::string audit_source_id = "dirgw";  // AuditSourceID: this gateway, e.g. "dirgw@lgh-gw1"
  std::string enterprise_site_id;         // AuditEnterpriseSiteID, e.g. the facility id "LGH"
  std::string local_user_id = "DIRGW";    // UserID of the gateway itself: its AE title
  std::string local_host;                 // the gateway's host name or address (may be empty)
  // Destination name -> the repository's host (see host_of_url), for the destination
  // participant's NetworkAccessPointID.
  std::map<std::string, std::string, std::less<>> destination_hosts;
  std::string audit_log_uri = "dirgw:audit";  // ParticipantObjectID of the trail (Audit Log Used)
};

struct Code {
  std::string_view code, scheme, meaning;  // csd-code, codeSystemName, originalText
  bool operator==(const Code&) const = default;
};

struct DicomEventCodes {
  Code event_id;                   // CID 400
  std::optional<Code> event_type;  // CID 401, or ours (99DIRGW)
  char action = 'E';               // EventActionCode: C R U D E
};
// The mapping of our event types to DICOM audit events (table in docs/audit.md).
DicomEventCodes dicom_event_codes(const Event& e);
// EventOutcomeIndicator: 0 success, 4 failure (minor: will be retried or was refused once),
// 8 for kStudyFailed (serious: the gateway gave up).
int outcome_indicator(const Event& e);

// One <AuditMessage> (PS3.15 A.5.1 schema), preceded by an XML declaration when asked.
std::string to_dicom_audit_xml(const Event& e, const ExportContext& ctx,
                               bool xml_declaration = true);

// `dirgw audit export`: one well-formed document, streamed in three parts so that millions of
// entries need not be held. The root <AuditMessages> is ours; each child <AuditEntry seq=
// prev_hash= hash=> holds one standard <AuditMessage>, so a tool that wants the messages takes
// //AuditMessage, and the chain values let an auditor match the export against `audit verify`.
std::string export_header(const ExportContext& ctx, std::int64_t since_ms);
std::string export_entry(const Event& e, const ExportContext& ctx);
std::string export_footer();
// All of it in memory: the entries with at_ms >= since_ms, in the order given.
std::string export_since(const std::vector<Event>& events, std::int64_t since_ms,
                         const ExportContext& ctx);

// "https://user@dir.example.org:8443/dicom-web" -> "dir.example.org"; "[::1]" -> "::1".
std::string host_of_url(std::string_view url);

}  // namespace dirgw::audit
