// DICOM audit messages (PS3.15 A.5): well-formed, the right codes, no patient values.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "audit/audit.h"
#include "audit/export.h"
#include "unit/audit/xml_reader.h"

namespace dirgw::audit {
namespace {

using testing::parse_xml;
using testing::XmlDocument;
using testing::XmlNode;

constexpr std::int64_t kAt = 1795000123456;  // 2026-11-18T11:08:43.456Z

ExportContext context() {
  ExportContext ctx;
  ctx.audit_source_id = "dirgw@lgh-gw1";
  ctx.enterprise_site_id = "LGH";
  ctx.local_user_id = "DIRGW";
  ctx.local_host = "lgh-gw1.example.org";
  ctx.destination_hosts["hdirs"] = host_of_url("https://dir.example.org/dicom-web");
  ctx.audit_log_uri = "file:///var/lib/dirgw/catalog.db#audit";
  return ctx;
}

Event event(EventType type, std::string actor) {
  Event e;
  e.at_ms = kAt;
  e.type = type;
  e.actor = std::move(actor);
  e.outcome = std::string(kSuccess);
  e.study_uid = "1.2.826.0.1.3680043.10.543.7";
  e.patient_ref = "a1b2c3d4e5f60718";
  return seal(e, Anchor{});
}

XmlNode parsed(const std::string& xml) {
  XmlDocument doc = parse_xml(xml);
  EXPECT_TRUE(doc.ok) << doc.error << "\n" << xml;
  EXPECT_EQ(doc.root.name, "AuditMessage");
  return doc.root;
}

const XmlNode* participant_with_role(const XmlNode& msg, std::string_view role) {
  for (const XmlNode* p : msg.all("ActiveParticipant")) {
    const XmlNode* r = p->child("RoleIDCode");
    if (r && r->attr("csd-code") == role) return p;
  }
  return nullptr;
}

const XmlNode* object_with_id_type(const XmlNode& msg, std::string_view code) {
  for (const XmlNode* o : msg.all("ParticipantObjectIdentification")) {
    const XmlNode* t = o->child("ParticipantObjectIDTypeCode");
    if (t && t->attr("csd-code") == code) return o;
  }
  return nullptr;
}

std::string requestor_user(const XmlNode& msg) {
  std::string who;
  for (const XmlNode* p : msg.all("ActiveParticipant")) {
    if (p->attr("UserIsRequestor") == "true") {
      EXPECT_TRUE(who.empty()) << "two requestors";
      who = p->attr("UserID");
    }
  }
  return who;
}

struct Expected {
  EventType type;
  std::string event_id, event_type, action;
};

// The mapping, as docs/audit.md states it.
TEST(AuditExport, EveryEventTypeMapsToItsDicomCodes) {
  const std::vector<Expected> table = {
      {EventType::kObjectReceived, "110104", "", "C"},
      {EventType::kStudySent, "110104", "", "R"},
      {EventType::kStudyFailed, "110104", "", "R"},
      {EventType::kConsentChanged, "110110", "CONSENT", "U"},
      {EventType::kQuarantineAction, "110103", "QUARANTINE", "U"},
      {EventType::kPatientDataViewed, "110110", "", "R"},
      {EventType::kOperatorAction, "110103", "OPERATOR", "U"},
      {EventType::kStarted, "110100", "110120", "E"},
      {EventType::kStopped, "110100", "110121", "E"},
      {EventType::kConfigChanged, "110113", "110131", "E"},
      {EventType::kAuditExported, "110101", "", "R"},
      {EventType::kConnectionRefused, "110113", "110126", "E"},
      {EventType::kStudyVerified, "110104", "", "R"},
      {EventType::kDeliveryRequeued, "110104", "", "R"},
      {EventType::kObjectsPurged, "110103", "", "D"},
      {EventType::kPriorsSearched, "110112", "", "E"},
      {EventType::kPriorFetched, "110104", "", "C"},
      {EventType::kStudyHeld, "110103", "", "U"},
      {EventType::kStudyReleased, "110103", "", "U"},
      {EventType::kStudyWithdrawn, "110103", "", "U"},
  };
  ASSERT_EQ(table.size(), all_event_types().size());
  for (const auto& x : table) {
    const Event e = event(x.type, user_actor("alice", 1000));
    const XmlNode msg = parsed(to_dicom_audit_xml(e, context()));
    const XmlNode* ident = msg.child("EventIdentification");
    ASSERT_NE(ident, nullptr);
    EXPECT_EQ(ident->attr("EventActionCode"), x.action) << event_type_name(x.type);
    EXPECT_EQ(ident->attr("EventDateTime"), "2026-11-18T11:08:43.456Z");
    EXPECT_EQ(ident->attr("EventOutcomeIndicator"), "0");
    const XmlNode* id = ident->child("EventID");
    ASSERT_NE(id, nullptr);
    EXPECT_EQ(id->attr("csd-code"), x.event_id) << event_type_name(x.type);
    EXPECT_EQ(id->attr("codeSystemName"), "DCM");
    EXPECT_FALSE(id->attr("originalText").empty());
    const XmlNode* tc = ident->child("EventTypeCode");
    if (x.event_type.empty()) {
      EXPECT_EQ(tc, nullptr) << event_type_name(x.type);
    } else {
      ASSERT_NE(tc, nullptr) << event_type_name(x.type);
      EXPECT_EQ(tc->attr("csd-code"), x.event_type);
      EXPECT_EQ(tc->attr("codeSystemName"), x.event_type.starts_with("110") ? "DCM" : "99DIRGW");
    }
    // Schema order: EventIdentification, ActiveParticipant+, AuditSourceIdentification,
    // ParticipantObjectIdentification*.
    ASSERT_GE(msg.children.size(), 3u);
    EXPECT_EQ(msg.children[0].name, "EventIdentification");
    std::size_t i = 1;
    while (i < msg.children.size() && msg.children[i].name == "ActiveParticipant") ++i;
    EXPECT_GE(i, 2u);
    ASSERT_LT(i, msg.children.size());
    EXPECT_EQ(msg.children[i].name, "AuditSourceIdentification");
    for (++i; i < msg.children.size(); ++i)
      EXPECT_EQ(msg.children[i].name, "ParticipantObjectIdentification");
    // A user ran it: the user is the one requestor.
    EXPECT_EQ(requestor_user(msg), "alice") << event_type_name(x.type);
  }
}

TEST(AuditExport, ObjectReceivedFromAPacs) {
  Event e;
  e.at_ms = kAt;
  e.type = EventType::kObjectReceived;
  e.actor = dicom_actor("PACS1", "10.0.0.5", 4242);
  e.outcome = std::string(kSuccess);
  e.study_uid = "1.2.3.4";
  e.sop_instance_uid = "1.2.3.4.5.6";
  e.patient_ref = "a1b2c3d4e5f60718";
  e.detail = {{"sop_class_uid", "1.2.840.10008.5.1.4.1.1.2"}, {"size", 524288}};
  e = seal(e, Anchor{});
  const XmlNode msg = parsed(to_dicom_audit_xml(e, context()));

  const XmlNode* source = participant_with_role(msg, "110153");
  ASSERT_NE(source, nullptr);
  EXPECT_EQ(source->attr("UserID"), "PACS1");
  EXPECT_EQ(source->attr("UserIsRequestor"), "true");
  EXPECT_EQ(source->attr("NetworkAccessPointID"), "10.0.0.5");
  EXPECT_EQ(source->attr("NetworkAccessPointTypeCode"), "2");
  const XmlNode* dest = participant_with_role(msg, "110152");
  ASSERT_NE(dest, nullptr);
  EXPECT_EQ(dest->attr("UserID"), "DIRGW");
  EXPECT_EQ(dest->attr("UserIsRequestor"), "false");
  EXPECT_EQ(dest->attr("NetworkAccessPointID"), "lgh-gw1.example.org");
  EXPECT_EQ(dest->attr("NetworkAccessPointTypeCode"), "1");

  const XmlNode* src = msg.child("AuditSourceIdentification");
  ASSERT_NE(src, nullptr);
  EXPECT_EQ(src->attr("AuditSourceID"), "dirgw@lgh-gw1");
  EXPECT_EQ(src->attr("AuditEnterpriseSiteID"), "LGH");
  ASSERT_NE(src->child("AuditSourceTypeCode"), nullptr);

  const XmlNode* study = object_with_id_type(msg, "110180");
  ASSERT_NE(study, nullptr);
  EXPECT_EQ(study->attr("ParticipantObjectID"), "1.2.3.4");
  EXPECT_EQ(study->attr("ParticipantObjectTypeCode"), "2");
  EXPECT_EQ(study->attr("ParticipantObjectTypeCodeRole"), "3");
  EXPECT_EQ(study->child("ParticipantObjectIDTypeCode")->attr("originalText"),
            "Study Instance UID");
  const auto sop = study->find_all("SOPClass");
  ASSERT_EQ(sop.size(), 1u);
  EXPECT_EQ(sop[0]->attr("UID"), "1.2.840.10008.5.1.4.1.1.2");
  EXPECT_EQ(sop[0]->attr("NumberOfInstances"), "1");
  ASSERT_NE(sop[0]->child("Instance"), nullptr);
  EXPECT_EQ(sop[0]->child("Instance")->attr("UID"), "1.2.3.4.5.6");
  const XmlNode* detail = study->child("ParticipantObjectDetail");
  ASSERT_NE(detail, nullptr);
  EXPECT_EQ(detail->attr("type"), "dirgw-detail");
  // base64 of {"size":524288,"sop_class_uid":"1.2.840.10008.5.1.4.1.1.2"}
  EXPECT_EQ(detail->attr("value"),
            "eyJzaXplIjo1MjQyODgsInNvcF9jbGFzc191aWQiOiIxLjIuODQwLjEwMDA4LjUuMS40LjEuMS4yIn0=");

  const XmlNode* patient = object_with_id_type(msg, "PATREF");
  ASSERT_NE(patient, nullptr);
  EXPECT_EQ(patient->attr("ParticipantObjectID"), "a1b2c3d4e5f60718");
  EXPECT_EQ(patient->attr("ParticipantObjectTypeCode"), "1");
  EXPECT_EQ(patient->attr("ParticipantObjectTypeCodeRole"), "1");
  EXPECT_EQ(patient->child("ParticipantObjectIDTypeCode")->attr("codeSystemName"), "99DIRGW");
  EXPECT_EQ(patient->child("ParticipantObjectName"), nullptr);  // no name, ever
}

// The format as an audit repository will see it; changing it is a compatibility decision.
TEST(AuditExport, GoldenObjectReceived) {
  Event e;
  e.at_ms = kAt;
  e.type = EventType::kObjectReceived;
  e.actor = dicom_actor("PACS1", "10.0.0.5", 4242);
  e.outcome = std::string(kSuccess);
  e.study_uid = "1.2.3.4";
  e.patient_ref = "a1b2c3d4e5f60718";
  e = seal(e, Anchor{});
  ExportContext ctx;
  EXPECT_EQ(
      to_dicom_audit_xml(e, ctx),
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<AuditMessage>"
      "<EventIdentification EventActionCode=\"C\" EventDateTime=\"2026-11-18T11:08:43.456Z\" "
      "EventOutcomeIndicator=\"0\">"
      "<EventID csd-code=\"110104\" codeSystemName=\"DCM\" "
      "originalText=\"DICOM Instances Transferred\"/>"
      "</EventIdentification>"
      "<ActiveParticipant UserID=\"PACS1\" UserIsRequestor=\"true\" "
      "NetworkAccessPointID=\"10.0.0.5\" NetworkAccessPointTypeCode=\"2\">"
      "<RoleIDCode csd-code=\"110153\" codeSystemName=\"DCM\" originalText=\"Source Role ID\"/>"
      "</ActiveParticipant>"
      "<ActiveParticipant UserID=\"DIRGW\" UserIsRequestor=\"false\">"
      "<RoleIDCode csd-code=\"110152\" codeSystemName=\"DCM\" "
      "originalText=\"Destination Role ID\"/>"
      "</ActiveParticipant>"
      "<AuditSourceIdentification AuditSourceID=\"dirgw\">"
      "<AuditSourceTypeCode csd-code=\"4\"/></AuditSourceIdentification>"
      "<ParticipantObjectIdentification ParticipantObjectID=\"1.2.3.4\" "
      "ParticipantObjectTypeCode=\"2\" ParticipantObjectTypeCodeRole=\"3\">"
      "<ParticipantObjectIDTypeCode csd-code=\"110180\" codeSystemName=\"DCM\" "
      "originalText=\"Study Instance UID\"/>"
      "</ParticipantObjectIdentification>"
      "<ParticipantObjectIdentification ParticipantObjectID=\"a1b2c3d4e5f60718\" "
      "ParticipantObjectTypeCode=\"1\" ParticipantObjectTypeCodeRole=\"1\">"
      "<ParticipantObjectIDTypeCode csd-code=\"PATREF\" codeSystemName=\"99DIRGW\" "
      "originalText=\"Keyed HMAC of the Patient ID\"/>"
      "</ParticipantObjectIdentification>"
      "</AuditMessage>");
}

TEST(AuditExport, StudySentNamesTheRepository) {
  Event e = event(EventType::kStudySent, system_actor());
  e.destination = "hdirs";
  e.detail = {{"instances", 120}};
  e = seal(e, Anchor{});
  const XmlNode msg = parsed(to_dicom_audit_xml(e, context()));
  const XmlNode* source = participant_with_role(msg, "110153");
  ASSERT_NE(source, nullptr);
  EXPECT_EQ(source->attr("UserID"), "DIRGW");
  EXPECT_EQ(source->attr("UserIsRequestor"), "true");
  const XmlNode* dest = participant_with_role(msg, "110152");
  ASSERT_NE(dest, nullptr);
  EXPECT_EQ(dest->attr("UserID"), "hdirs");
  EXPECT_EQ(dest->attr("UserIsRequestor"), "false");
  EXPECT_EQ(dest->attr("NetworkAccessPointID"), "dir.example.org");
  EXPECT_EQ(msg.all("ActiveParticipant").size(), 2u);
}

TEST(AuditExport, FailureOutcomes) {
  Event e = event(EventType::kStudySent, system_actor());
  e.outcome = failure("HTTP 503 <busy> & \"retrying\"");
  e = seal(e, Anchor{});
  XmlNode msg = parsed(to_dicom_audit_xml(e, context()));
  const XmlNode* ident = msg.child("EventIdentification");
  EXPECT_EQ(ident->attr("EventOutcomeIndicator"), "4");
  ASSERT_NE(ident->child("EventOutcomeDescription"), nullptr);
  EXPECT_EQ(ident->child("EventOutcomeDescription")->text, "HTTP 503 <busy> & \"retrying\"");

  e.type = EventType::kStudyFailed;
  e = seal(e, Anchor{});
  msg = parsed(to_dicom_audit_xml(e, context()));
  EXPECT_EQ(msg.child("EventIdentification")->attr("EventOutcomeIndicator"), "8");
}

TEST(AuditExport, EverythingIsEscaped) {
  Event e = event(EventType::kPatientDataViewed, user_actor("a<b>&\"c'\t\n\x01\xff", 7));
  e.study_uid = "1.2\"/><Injected/>";
  e.detail = {{"cmd", "dirgw study 1.2 --show </AuditMessage>"}};
  e = seal(e, Anchor{});
  const std::string xml = to_dicom_audit_xml(e, context());
  const XmlNode msg = parsed(xml);
  EXPECT_EQ(msg.find_all("Injected").size(), 0u);
  EXPECT_EQ(requestor_user(msg), "a<b>&\"c'\t\n\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(object_with_id_type(msg, "110180")->attr("ParticipantObjectID"), "1.2\"/><Injected/>");
  EXPECT_NE(xml.find("&#9;&#10;"), std::string::npos);  // kept through attribute normalisation
}

TEST(AuditExport, ApplicationStartAndStop) {
  Event e = event(EventType::kStarted, system_actor());
  e.study_uid.clear();
  e.patient_ref.clear();
  e = seal(e, Anchor{});
  XmlNode msg = parsed(to_dicom_audit_xml(e, context()));
  ASSERT_EQ(msg.all("ActiveParticipant").size(), 1u);
  const XmlNode* app = participant_with_role(msg, "110150");
  ASSERT_NE(app, nullptr);
  EXPECT_EQ(app->attr("UserIsRequestor"), "true");
  EXPECT_TRUE(msg.all("ParticipantObjectIdentification").empty());

  e.type = EventType::kStopped;
  e.actor = user_actor("root", 0);  // systemctl stop, as reported
  e = seal(e, Anchor{});
  msg = parsed(to_dicom_audit_xml(e, context()));
  const XmlNode* launcher = participant_with_role(msg, "110151");
  ASSERT_NE(launcher, nullptr);
  EXPECT_EQ(launcher->attr("UserID"), "root");
  EXPECT_EQ(launcher->attr("AlternativeUserID"), "0");
  EXPECT_EQ(participant_with_role(msg, "110150")->attr("UserIsRequestor"), "false");
}

TEST(AuditExport, AuditLogUsedAndConfigChangeNameTheirObjects) {
  Event e = event(EventType::kAuditExported, user_actor("alice", 1000));
  e.study_uid.clear();
  e.patient_ref.clear();
  e = seal(e, Anchor{});
  XmlNode msg = parsed(to_dicom_audit_xml(e, context()));
  const XmlNode* log = object_with_id_type(msg, "12");
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->attr("ParticipantObjectID"), "file:///var/lib/dirgw/catalog.db#audit");
  EXPECT_EQ(log->attr("ParticipantObjectTypeCodeRole"), "13");
  EXPECT_EQ(log->child("ParticipantObjectName")->text, "dirgw audit trail");

  e.type = EventType::kConfigChanged;
  e.detail = {{"path", "/etc/dirgw/dirgw.yaml"}, {"sha256", "ab12"}};
  e = seal(e, Anchor{});
  msg = parsed(to_dicom_audit_xml(e, context()));
  const XmlNode* cfg = object_with_id_type(msg, "CONFIG");
  ASSERT_NE(cfg, nullptr);
  EXPECT_EQ(cfg->attr("ParticipantObjectID"), "/etc/dirgw/dirgw.yaml");
}

TEST(AuditExport, QuarantineDeleteIsADelete) {
  Event e = event(EventType::kQuarantineAction, user_actor("alice", 1000));
  e.detail = {{"action", "delete"}};
  EXPECT_EQ(dicom_event_codes(e).action, 'D');
  e.detail = {{"action", "release"}};
  EXPECT_EQ(dicom_event_codes(e).action, 'U');
}

TEST(AuditExport, DocumentSinceIsWellFormedAndCarriesTheChain) {
  std::vector<Event> events;
  Anchor last;
  for (int i = 0; i < 10; ++i) {
    Event e;
    e.at_ms = kAt + i * 60'000;
    e.type = (i % 2) ? EventType::kStudySent : EventType::kObjectReceived;
    e.actor = (i % 2) ? system_actor() : dicom_actor("PACS1", "10.0.0.5", 4242);
    e.outcome = std::string(kSuccess);
    e.study_uid = "1.2.3." + std::to_string(i);
    e.destination = (i % 2) ? "hdirs" : "";
    events.push_back(seal(e, last));
    last = anchor_of(events.back());
  }
  const std::string doc_text = export_since(events, kAt + 4 * 60'000, context());
  XmlDocument doc = parse_xml(doc_text);
  ASSERT_TRUE(doc.ok) << doc.error;
  EXPECT_EQ(doc.root.name, "AuditMessages");
  EXPECT_EQ(doc.root.attr("since"), "2026-11-18T11:12:43.456Z");
  const auto entries = doc.root.all("AuditEntry");
  ASSERT_EQ(entries.size(), 6u);
  EXPECT_EQ(entries[0]->attr("seq"), "5");
  EXPECT_EQ(entries[0]->attr("hash"), events[4].hash);
  EXPECT_EQ(entries[0]->attr("prev_hash"), events[3].hash);
  EXPECT_EQ(entries[5]->attr("seq"), "10");
  EXPECT_EQ(doc.root.find_all("AuditMessage").size(), 6u);
  EXPECT_EQ(doc_text.rfind("<?xml", 0), 0u);
  EXPECT_EQ(doc_text.find("<?xml", 1), std::string::npos);  // one declaration only

  const std::string empty = export_since(events, kAt + 3'600'000, context());
  XmlDocument none = parse_xml(empty);
  ASSERT_TRUE(none.ok) << none.error;
  EXPECT_TRUE(none.root.children.empty());
}

TEST(AuditExport, NoPatientValueCanReachTheMessage) {
  // Whatever a caller mistakenly puts in detail stays inside our base64 detail; the message has
  // no element for a patient name or ID, and the patient object carries the keyed tag only.
  Event e = event(EventType::kPatientDataViewed, user_actor("alice", 1000));
  const std::string xml = to_dicom_audit_xml(e, context());
  for (const char* element :
       {"ParticipantObjectName", "ParticipantObjectQuery", "PatientName", "PatientID", "Accession"})
    EXPECT_EQ(xml.find(element), std::string::npos) << element;
}

TEST(AuditExport, HostOfUrl) {
  EXPECT_EQ(host_of_url("https://dir.example.org/dicom-web"), "dir.example.org");
  EXPECT_EQ(host_of_url("https://user:pw@dir.example.org:8443/x?y#z"), "dir.example.org");
  EXPECT_EQ(host_of_url("http://[fe80::1]:8042/dicom-web"), "fe80::1");
  EXPECT_EQ(host_of_url("10.1.2.3:104"), "10.1.2.3");
  EXPECT_EQ(host_of_url(""), "");
}

}  // namespace
}  // namespace dirgw::audit
