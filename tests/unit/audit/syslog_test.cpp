// RFC 5424 messages and RFC 5425 octet-counting frames for forwarding to an audit repository.
#include <gtest/gtest.h>

#include <string>

#include "audit/audit.h"
#include "audit/export.h"
#include "audit/syslog.h"

namespace dirgw::audit {
namespace {

Event sealed(std::string outcome) {
  Event e;
  e.at_ms = 1795000123456;
  e.type = EventType::kObjectReceived;
  e.actor = dicom_actor("PACS1", "10.0.0.5", 4242);
  e.outcome = std::move(outcome);
  e.study_uid = "1.2.3.4";
  return seal(e, Anchor{});
}

TEST(AuditSyslog, Rfc5424Message) {
  const Event e = sealed(std::string(kSuccess));
  SyslogContext ctx;
  ctx.hostname = "lgh-gw1";
  ctx.procid = "4242";
  const std::string msg = rfc5424_message(e, "<AuditMessage/>", ctx);
  EXPECT_EQ(msg,
            "<85>1 2026-11-18T11:08:43.456Z lgh-gw1 dirgwd 4242 IHE+RFC-3881 "
            "[dirgw@32473 seq=\"1\" type=\"object_received\" prev=\"" +
                std::string(kGenesisHash) + "\" hash=\"" + e.hash +
                "\"] \xEF\xBB\xBF<AuditMessage/>");
}

TEST(AuditSyslog, FailureIsAWarningAndHeaderFieldsAreSanitised) {
  const Event e = sealed(failure("refused"));
  SyslogContext ctx;
  ctx.hostname = "";
  ctx.app_name = "dirg wd";
  ctx.procid = "";
  ctx.msgid = std::string(40, 'M');
  ctx.sd_id = "bad]id=\"x";
  const std::string msg = rfc5424_message(e, "x", ctx);
  EXPECT_EQ(msg.rfind("<84>1 2026-11-18T11:08:43.456Z - dirg_wd - " + std::string(32, 'M') +
                          " [bad_id__x seq=",
                      0),
            0u)
      << msg;
}

TEST(AuditSyslog, ParamValuesAreEscaped) {
  Event e = sealed(std::string(kSuccess));
  e.hash = "a\"b\\c]d";  // not a real hash; exercises PARAM-VALUE escaping
  const std::string msg = rfc5424_message(e, "x", SyslogContext{});
  EXPECT_NE(msg.find(R"(hash="a\"b\\c\]d"])"), std::string::npos) << msg;
}

TEST(AuditSyslog, CarriesTheExportedXml) {
  const Event e = sealed(std::string(kSuccess));
  const std::string xml = to_dicom_audit_xml(e, ExportContext{});
  const std::string msg = rfc5424_message(e, xml, SyslogContext{});
  EXPECT_EQ(msg.substr(msg.size() - xml.size()), xml);
}

TEST(AuditSyslog, OctetCountingCountsBytes) {
  EXPECT_EQ(octet_counted("abc"), "3 abc");
  EXPECT_EQ(octet_counted("\xC3\xA9"), "2 \xC3\xA9");
  EXPECT_EQ(octet_counted(""), "0 ");
}

TEST(AuditSyslog, TakeFramesSplitsAndKeepsPartialFrames) {
  std::string buffer = octet_counted("first") + octet_counted("second message") + "12 partial";
  auto frames = take_frames(buffer);
  ASSERT_TRUE(frames.ok());
  ASSERT_EQ(frames->size(), 2u);
  EXPECT_EQ((*frames)[0], "first");
  EXPECT_EQ((*frames)[1], "second message");
  EXPECT_EQ(buffer, "12 partial");
  buffer += "-done";
  frames = take_frames(buffer);
  ASSERT_TRUE(frames.ok());
  ASSERT_EQ(frames->size(), 1u);
  EXPECT_EQ((*frames)[0], "partial-done");
  EXPECT_TRUE(buffer.empty());

  buffer = "12";  // the length itself still arriving
  frames = take_frames(buffer);
  ASSERT_TRUE(frames.ok());
  EXPECT_TRUE(frames->empty());
  EXPECT_EQ(buffer, "12");

  for (std::string bad : {"x 1", "05 hello", "3x abc", " 3 abc"}) {
    std::string b = bad;
    EXPECT_FALSE(take_frames(b).ok()) << bad;
  }
  std::string huge = "99999999999 x";
  EXPECT_FALSE(take_frames(huge, 1024).ok());
}

}  // namespace
}  // namespace dirgw::audit
