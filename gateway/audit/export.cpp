#include "audit/export.h"

#include <cctype>

#include "audit/text.h"

namespace dirgw::audit {

namespace {

// PS3.16 CID 400 (Audit Event ID) and CID 401 (Audit Event Type Code), scheme DCM.
constexpr Code kApplicationActivity{"110100", "DCM", "Application Activity"};
constexpr Code kAuditLogUsed{"110101", "DCM", "Audit Log Used"};
constexpr Code kInstancesAccessed{"110103", "DCM", "DICOM Instances Accessed"};
constexpr Code kInstancesTransferred{"110104", "DCM", "DICOM Instances Transferred"};
constexpr Code kPatientRecord{"110110", "DCM", "Patient Record"};
constexpr Code kQuery{"110112", "DCM", "Query"};
constexpr Code kSecurityAlert{"110113", "DCM", "Security Alert"};
constexpr Code kApplicationStart{"110120", "DCM", "Application Start"};
constexpr Code kApplicationStop{"110121", "DCM", "Application Stop"};
constexpr Code kSoftwareConfiguration{"110131", "DCM", "Software Configuration"};
constexpr Code kNodeAuthentication{"110126", "DCM", "Node Authentication"};
// Ours, for what CID 401 has no code for ("99" marks a private coding scheme designator).
constexpr Code kConsent{"CONSENT", "99DIRGW", "Consent Changed"};
constexpr Code kQuarantine{"QUARANTINE", "99DIRGW", "Quarantine Action"};
constexpr Code kOperator{"OPERATOR", "99DIRGW", "Operator Action"};

// CID 402 (Audit Active Participant Role ID Code).
constexpr Code kRoleApplication{"110150", "DCM", "Application"};
constexpr Code kRoleLauncher{"110151", "DCM", "Application Launcher"};
constexpr Code kRoleDestination{"110152", "DCM", "Destination Role ID"};
constexpr Code kRoleSource{"110153", "DCM", "Source Role ID"};

// Participant object ID types: CID 404, RFC 3881 and ours.
constexpr Code kIdStudyUid{"110180", "DCM", "Study Instance UID"};
constexpr Code kIdUri{"12", "RFC-3881", "URI"};
constexpr Code kIdPatientRef{"PATREF", "99DIRGW", "Keyed HMAC of the Patient ID"};
constexpr Code kIdConfiguration{"CONFIG", "99DIRGW", "Configuration"};

struct Participant {
  std::string user_id;
  std::string alternative_user_id;
  bool requestor = false;
  std::string host;
  std::optional<Code> role;
};

struct Object {
  std::string id;
  int type_code = 2;
  std::optional<int> role;
  Code id_type;
  std::string name;
  std::string detail;  // canonical detail JSON, base64 in a ParticipantObjectDetail
  std::string sop_instance_uid, sop_class_uid;
};

void attr(std::string& out, std::string_view name, std::string_view value) {
  out += ' ';
  out += name;
  out += "=\"";
  text::append_xml_escaped(out, value);
  out += '"';
}

void code(std::string& out, std::string_view element, const Code& c) {
  out += '<';
  out += element;
  attr(out, "csd-code", c.code);
  attr(out, "codeSystemName", c.scheme);
  attr(out, "originalText", c.meaning);
  out += "/>";
}

bool is_ip_literal(std::string_view host) {
  if (host.find(':') != std::string_view::npos) return true;  // IPv6
  int dots = 0;
  for (char c : host) {
    if (c == '.') {
      ++dots;
    } else if (!std::isdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return dots == 3;
}

void participant(std::string& out, const Participant& p) {
  out += "<ActiveParticipant";
  attr(out, "UserID", p.user_id.empty() ? "-" : p.user_id);
  if (!p.alternative_user_id.empty()) attr(out, "AlternativeUserID", p.alternative_user_id);
  attr(out, "UserIsRequestor", p.requestor ? "true" : "false");
  if (!p.host.empty()) {
    attr(out, "NetworkAccessPointID", p.host);
    attr(out, "NetworkAccessPointTypeCode", is_ip_literal(p.host) ? "2" : "1");
  }
  if (p.role) {
    out += '>';
    code(out, "RoleIDCode", *p.role);
    out += "</ActiveParticipant>";
  } else {
    out += "/>";
  }
}

void object(std::string& out, const Object& o) {
  out += "<ParticipantObjectIdentification";
  attr(out, "ParticipantObjectID", o.id);
  attr(out, "ParticipantObjectTypeCode", std::to_string(o.type_code));
  if (o.role) attr(out, "ParticipantObjectTypeCodeRole", std::to_string(*o.role));
  out += '>';
  code(out, "ParticipantObjectIDTypeCode", o.id_type);
  if (!o.name.empty()) {
    out += "<ParticipantObjectName>";
    text::append_xml_escaped(out, o.name);
    out += "</ParticipantObjectName>";
  }
  if (!o.detail.empty()) {
    out += "<ParticipantObjectDetail";
    attr(out, "type", "dirgw-detail");
    attr(out, "value", text::base64(o.detail));
    out += "/>";
  }
  if (!o.sop_instance_uid.empty()) {
    out += "<ParticipantObjectDescription><SOPClass";
    if (!o.sop_class_uid.empty()) attr(out, "UID", o.sop_class_uid);
    attr(out, "NumberOfInstances", "1");
    out += "><Instance";
    attr(out, "UID", o.sop_instance_uid);
    out += "/></SOPClass></ParticipantObjectDescription>";
  }
  out += "</ParticipantObjectIdentification>";
}

std::string detail_text(const Event& e) {
  if (e.detail.is_null() || (e.detail.is_object() && e.detail.empty())) return {};
  return canonical_detail(e.detail);
}

Participant own(const ExportContext& ctx, bool requestor, std::optional<Code> role) {
  return Participant{ctx.local_user_id, {}, requestor, ctx.local_host, role};
}

Participant from_actor(const Actor& a, bool requestor, std::optional<Code> role) {
  Participant p;
  p.user_id = a.id;
  p.requestor = requestor;
  p.role = role;
  if (a.kind == Actor::Kind::kDicom || a.kind == Actor::Kind::kHl7) p.host = a.host;
  if (a.kind == Actor::Kind::kUser && a.uid) p.alternative_user_id = std::to_string(*a.uid);
  return p;
}

bool is_self(const Actor& a) { return a.kind == Actor::Kind::kSystem || a.id.empty(); }

std::string detail_string(const Event& e, const char* name) {
  if (e.detail.is_object()) {
    auto it = e.detail.find(name);
    if (it != e.detail.end() && it->is_string()) return it->get<std::string>();
  }
  return {};
}

}  // namespace

DicomEventCodes dicom_event_codes(const Event& e) {
  switch (e.type) {
    case EventType::kObjectReceived:
      return {kInstancesTransferred, std::nullopt, 'C'};
    case EventType::kStudySent:
    case EventType::kStudyFailed:
    case EventType::kStudyVerified:
    case EventType::kDeliveryRequeued:
      return {kInstancesTransferred, std::nullopt, 'R'};
    case EventType::kObjectsPurged:
      return {kInstancesAccessed, std::nullopt, 'D'};
    case EventType::kPriorsSearched:
      return {kQuery, std::nullopt, 'E'};
    case EventType::kPriorFetched:
      return {kInstancesTransferred, std::nullopt, 'C'};
    case EventType::kStudyHeld:
    case EventType::kStudyReleased:
    case EventType::kStudyWithdrawn:
      return {kInstancesAccessed, std::nullopt, 'U'};
    case EventType::kConsentChanged:
      return {kPatientRecord, kConsent, 'U'};
    case EventType::kQuarantineAction: {
      const std::string action = detail_string(e, "action");
      const bool deletes = action == "delete" || action == "purge";
      return {kInstancesAccessed, kQuarantine, deletes ? 'D' : 'U'};
    }
    case EventType::kPatientDataViewed:
      return {kPatientRecord, std::nullopt, 'R'};
    case EventType::kOperatorAction:
      return {kInstancesAccessed, kOperator, 'U'};
    case EventType::kStarted:
      return {kApplicationActivity, kApplicationStart, 'E'};
    case EventType::kStopped:
      return {kApplicationActivity, kApplicationStop, 'E'};
    case EventType::kConfigChanged:
      return {kSecurityAlert, kSoftwareConfiguration, 'E'};
    case EventType::kAuditExported:
      return {kAuditLogUsed, std::nullopt, 'R'};
    case EventType::kConnectionRefused:
      return {kSecurityAlert, kNodeAuthentication, 'E'};
  }
  return {kApplicationActivity, std::nullopt, 'E'};
}

int outcome_indicator(const Event& e) {
  if (is_success(e)) return 0;
  return e.type == EventType::kStudyFailed ? 8 : 4;
}

namespace {

// Who took part, by event type (PS3.15 A.5.3, the role each message defines).
std::vector<Participant> participants_of(const Event& e, const Actor& actor, bool self,
                                         const ExportContext& ctx) {
  std::vector<Participant> participants;
  switch (e.type) {
    case EventType::kObjectReceived:
      if (self) {
        participants.push_back(own(ctx, true, kRoleDestination));
      } else {
        participants.push_back(from_actor(actor, true, kRoleSource));
        participants.push_back(own(ctx, false, kRoleDestination));
      }
      break;
    case EventType::kStudySent:
    case EventType::kStudyFailed:
    case EventType::kStudyVerified:
    case EventType::kDeliveryRequeued: {
      participants.push_back(own(ctx, self, kRoleSource));
      Participant dest;
      dest.user_id = e.destination;
      dest.role = kRoleDestination;
      if (auto it = ctx.destination_hosts.find(e.destination); it != ctx.destination_hosts.end())
        dest.host = it->second;
      participants.push_back(dest);
      if (!self) participants.push_back(from_actor(actor, true, std::nullopt));
      break;
    }
    case EventType::kStarted:
    case EventType::kStopped:
      participants.push_back(own(ctx, self, kRoleApplication));
      if (!self) participants.push_back(from_actor(actor, true, kRoleLauncher));
      break;
    default:
      if (self) {
        participants.push_back(own(ctx, true, kRoleApplication));
      } else {
        participants.push_back(from_actor(actor, true, std::nullopt));
        participants.push_back(own(ctx, false, kRoleApplication));
      }
  }

  return participants;
}

// What the event was about: the study, the patient (keyed reference only), the audit log, the
// configuration.
std::vector<Object> objects_of(const Event& e, const ExportContext& ctx) {
  std::vector<Object> objects;
  if (!e.study_uid.empty()) {
    Object o;
    o.id = e.study_uid;
    o.type_code = 2;
    o.role = 3;  // Report
    o.id_type = kIdStudyUid;
    o.sop_instance_uid = e.sop_instance_uid;
    o.sop_class_uid = detail_string(e, "sop_class_uid");
    objects.push_back(o);
  }
  if (!e.patient_ref.empty()) {
    Object o;
    o.id = e.patient_ref;
    o.type_code = 1;  // Person
    o.role = 1;       // Patient
    o.id_type = kIdPatientRef;
    objects.push_back(o);
  }
  if (e.type == EventType::kAuditExported) {
    Object o;
    o.id = ctx.audit_log_uri;
    o.type_code = 2;
    o.role = 13;  // Security Resource
    o.id_type = kIdUri;
    o.name = "dirgw audit trail";
    objects.push_back(o);
  }
  if (e.type == EventType::kConfigChanged) {
    Object o;
    const std::string path = detail_string(e, "path");
    o.id = path.empty() ? "configuration" : path;
    o.type_code = 2;
    o.id_type = kIdConfiguration;
    objects.push_back(o);
  }
  // Our own detail (no patient data by construction), so nothing the event said is lost.
  if (!objects.empty()) objects.front().detail = detail_text(e);

  return objects;
}

}  // namespace

std::string to_dicom_audit_xml(const Event& e, const ExportContext& ctx, bool xml_declaration) {
  const DicomEventCodes codes = dicom_event_codes(e);
  const Actor actor = parse_actor(e.actor);
  const bool self = is_self(actor);

  const std::vector<Participant> participants = participants_of(e, actor, self, ctx);
  const std::vector<Object> objects = objects_of(e, ctx);

  std::string out;
  out.reserve(2048);
  if (xml_declaration) out += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += "<AuditMessage><EventIdentification";
  attr(out, "EventActionCode", std::string(1, codes.action));
  attr(out, "EventDateTime", text::utc_timestamp_ms(e.at_ms));
  attr(out, "EventOutcomeIndicator", std::to_string(outcome_indicator(e)));
  out += '>';
  code(out, "EventID", codes.event_id);
  if (codes.event_type) code(out, "EventTypeCode", *codes.event_type);
  if (!is_success(e)) {
    out += "<EventOutcomeDescription>";
    text::append_xml_escaped(out, failure_reason(e));
    out += "</EventOutcomeDescription>";
  }
  out += "</EventIdentification>";
  for (const auto& p : participants) participant(out, p);
  out += "<AuditSourceIdentification";
  if (!ctx.enterprise_site_id.empty()) attr(out, "AuditEnterpriseSiteID", ctx.enterprise_site_id);
  attr(out, "AuditSourceID", ctx.audit_source_id);
  out += "><AuditSourceTypeCode csd-code=\"4\"/></AuditSourceIdentification>";
  for (const auto& o : objects) object(out, o);
  out += "</AuditMessage>";
  return out;
}

std::string export_header(const ExportContext& ctx, std::int64_t since_ms) {
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<AuditMessages";
  attr(out, "generator", "dirgw");
  attr(out, "AuditSourceID", ctx.audit_source_id);
  attr(out, "since", text::utc_timestamp_ms(since_ms));
  out += ">\n";
  return out;
}

std::string export_entry(const Event& e, const ExportContext& ctx) {
  std::string out = "<AuditEntry";
  attr(out, "seq", std::to_string(e.seq));
  attr(out, "prev_hash", e.prev_hash);
  attr(out, "hash", e.hash);
  out += '>';
  out += to_dicom_audit_xml(e, ctx, /*xml_declaration=*/false);
  out += "</AuditEntry>\n";
  return out;
}

std::string export_footer() { return "</AuditMessages>\n"; }

std::string export_since(const std::vector<Event>& events, std::int64_t since_ms,
                         const ExportContext& ctx) {
  std::string out = export_header(ctx, since_ms);
  for (const auto& e : events)
    if (e.at_ms >= since_ms) out += export_entry(e, ctx);
  out += export_footer();
  return out;
}

std::string host_of_url(std::string_view url) {
  if (auto scheme = url.find("://"); scheme != std::string_view::npos) url = url.substr(scheme + 3);
  url = url.substr(0, url.find_first_of("/?#"));
  if (auto at = url.rfind('@'); at != std::string_view::npos) url = url.substr(at + 1);
  if (!url.empty() && url.front() == '[') {
    const auto close = url.find(']');
    return std::string(url.substr(1, close == std::string_view::npos ? url.npos : close - 1));
  }
  return std::string(url.substr(0, url.find(':')));
}

}  // namespace dirgw::audit
