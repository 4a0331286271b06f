// Consent events from ADT (a configurable flag field) and CON segments; MRN -> health number links.
#include <gtest/gtest.h>

#include <sstream>

#include "ingest/hl7_mllp/hl7.h"

namespace dirgw::hl7 {
namespace {

const std::string kHeader = "MSH|^~\\&|REG|LGH|DIRGW|LGH|20240105123000||";
const std::string kPid =
    "PID|1||MRN000123^^^LGH-MRN^MR~1234567897^^^ON&2.16.840.1.113883.4.59&ISO^JHN||"
    "SYNTHETIC^PATIENT\r";

Message adt(const std::string& trigger, const std::string& rest) {
  return Message::parse(kHeader + "ADT^" + trigger + "|C" + trigger + "|P|2.5\r" + rest).value();
}

std::vector<ConsentEvent> events(const Message& m, const ConsentConfig& c = {}) {
  Result<std::vector<ConsentEvent>> r = extract_consent(m, c);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().to_string());
  return r.ok() ? std::move(r).value() : std::vector<ConsentEvent>{};
}

TEST(PatientIds, AllRepetitions) {
  Message m = adt("A04", kPid);
  std::vector<PatientIdentifier> ids = patient_identifiers(m);
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[0].id.reveal(), "MRN000123");
  EXPECT_EQ(ids[0].assigning_authority, "LGH-MRN");
  EXPECT_EQ(ids[0].identifier_type, "MR");
  EXPECT_EQ(ids[1].id.reveal(), "1234567897");
  EXPECT_EQ(ids[1].assigning_authority, "ON");
  EXPECT_EQ(ids[1].identifier_type, "JHN");
  std::ostringstream os;
  os << ids[0].id;
  EXPECT_EQ(os.str(), "[redacted]");
}

TEST(ConsentAdt, ProtectionIndicator) {
  const std::pair<const char*, ConsentAction> cases[] = {
      {"Y", ConsentAction::kWithdraw}, {"N", ConsentAction::kGrant},
      {"y", ConsentAction::kWithdraw}, {"", ConsentAction::kUnknown},
      {"X", ConsentAction::kUnknown},  {"\"\"", ConsentAction::kUnknown}};
  for (const auto& [flag, action] : cases) {
    for (const char* trigger : {"A04", "A08", "A31"}) {
      Message m = adt(trigger, "EVN|" + std::string(trigger) + "|20240105122900\r" + kPid +
                                   "PD1||||||||||||" + flag + "\r");
      std::vector<ConsentEvent> ev = events(m);
      ASSERT_EQ(ev.size(), 1u) << flag << " " << trigger;
      EXPECT_EQ(ev[0].action, action) << flag << " " << trigger;
      EXPECT_EQ(ev[0].origin, "PD1-12");
      EXPECT_EQ(ev[0].source, "LGH");
      EXPECT_EQ(ev[0].control_id, std::string("C") + trigger);
      EXPECT_EQ(ev[0].patient_ids.size(), 2u);
      EXPECT_EQ(ev[0].consent_type, "");
    }
  }
}

TEST(ConsentAdt, NoPd1IsUnknownNotWithdrawn) {
  std::vector<ConsentEvent> ev = events(adt("A08", kPid));
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].action, ConsentAction::kUnknown);
}

TEST(ConsentAdt, OtherTriggersAndTypesCarryNothing) {
  EXPECT_TRUE(events(adt("A01", kPid + "PD1||||||||||||Y\r")).empty());
  Message orm = Message::parse(kHeader + "ORM^O01|1|P|2.5\r" + kPid + "PD1||||||||||||Y\r").value();
  EXPECT_TRUE(events(orm).empty());
}

TEST(ConsentAdt, EffectiveTimeOrder) {
  // PD1-13 first, then EVN-6, EVN-2, MSH-7; invalid values are skipped.
  Message all = adt(
      "A04", "EVN|A04|20240105122900||||20240105120000\r" + kPid + "PD1||||||||||||Y|20240101\r");
  EXPECT_EQ(events(all)[0].effective_time, "20240101");
  Message evn6 = adt(
      "A04", "EVN|A04|20240105122900||||20240105120000\r" + kPid + "PD1||||||||||||Y|notadate\r");
  EXPECT_EQ(events(evn6)[0].effective_time, "20240105120000");
  Message evn2 = adt("A04", "EVN|A04|20240105122900\r" + kPid + "PD1||||||||||||Y\r");
  EXPECT_EQ(events(evn2)[0].effective_time, "20240105122900");
  Message msh7 = adt("A04", kPid + "PD1||||||||||||Y\r");
  EXPECT_EQ(events(msh7)[0].effective_time, "20240105123000");
}

TEST(ConsentAdt, ConfigurableZSegment) {
  ConsentConfig c;
  c.flag_path = "ZCN-1";
  c.grant_values = {"G", "OPT-IN"};
  c.withdraw_values = {"W"};
  c.effective_time_paths = {"ZCN-2", "MSH-7"};
  Message w = adt("A08", kPid + "ZCN|W|20231231\r");
  std::vector<ConsentEvent> ev = events(w, c);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].action, ConsentAction::kWithdraw);
  EXPECT_EQ(ev[0].origin, "ZCN-1");
  EXPECT_EQ(ev[0].effective_time, "20231231");
  EXPECT_EQ(events(adt("A08", kPid + "ZCN|opt-in\r"), c)[0].action, ConsentAction::kGrant);
}

TEST(ConsentAdt, BadConfig) {
  ConsentConfig c;
  c.flag_path = "PD1.12";
  Result<void> r = check_config(c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kConfig);
  EXPECT_FALSE(extract_consent(adt("A04", kPid), c).ok());
  c = ConsentConfig{};
  c.effective_time_paths = {"EVN-2", "bad"};
  EXPECT_FALSE(check_config(c).ok());
  EXPECT_TRUE(check_config(ConsentConfig{}).ok());
}

TEST(ConsentAdt, MissingPatient) {
  Result<std::vector<ConsentEvent>> no_pid =
      extract_consent(adt("A04", "PD1||||||||||||Y\r"), ConsentConfig{});
  ASSERT_FALSE(no_pid.ok());
  EXPECT_EQ(no_pid.error().code, ErrorCode::kProtocol);
  Result<std::vector<ConsentEvent>> no_ids =
      extract_consent(adt("A04", "PID|1||^^^LGH-MRN~\"\"\rPD1||||||||||||Y\r"), ConsentConfig{});
  ASSERT_FALSE(no_ids.ok());
  EXPECT_EQ(no_ids.error().code, ErrorCode::kProtocol);
  EXPECT_EQ(no_ids.error().detail.find("LGH"), std::string::npos);
}

TEST(ConsentCon, StatusMapping) {
  const std::pair<const char*, ConsentAction> cases[] = {
      {"A", ConsentAction::kGrant},    {"R", ConsentAction::kWithdraw},
      {"X", ConsentAction::kWithdraw}, {"L", ConsentAction::kUnknown},
      {"P", ConsentAction::kUnknown},  {"B", ConsentAction::kUnknown},
      {"", ConsentAction::kUnknown}};
  for (const auto& [status, action] : cases) {
    Message m =
        adt("A08", kPid + "CON|1|DIR^Diagnostic imaging repository^L|||||||||" + status + "\r");
    std::vector<ConsentEvent> ev = events(m);
    ASSERT_EQ(ev.size(), 1u) << status;
    EXPECT_EQ(ev[0].action, action) << status;
    EXPECT_EQ(ev[0].origin, "CON(1)-11");
    EXPECT_EQ(ev[0].consent_type, "DIR");
  }
}

TEST(ConsentCon, ConWinsOverTheAdtFlagAndWorksInAnyMessage) {
  Message m = adt("A04", kPid + "PD1||||||||||||N\rCON|1|DIR|||||||||R\r");
  std::vector<ConsentEvent> ev = events(m);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].action, ConsentAction::kWithdraw);
  Message other =
      Message::parse(kHeader + "MFN^M01|M1|P|2.6\r" + kPid + "CON|1|DIR|||||||||A\r").value();
  ASSERT_EQ(events(other).size(), 1u);
  EXPECT_EQ(events(other)[0].action, ConsentAction::kGrant);
}

TEST(ConsentCon, SeveralSegmentsTypesAndTimes) {
  ConsentConfig c;
  c.con_types = {"DIR"};
  // CON-13 decision, CON-14 effective.
  Message m = adt("A08", kPid +
                             "CON|1|RESEARCH|||||||||R\r"
                             "CON|2|DIR|||||||||A||20240102|20240103\r"
                             "CON|3|DIR|||||||||X||20240104\r");
  std::vector<ConsentEvent> ev = events(m, c);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].action, ConsentAction::kGrant);
  EXPECT_EQ(ev[0].origin, "CON(2)-11");
  EXPECT_EQ(ev[0].effective_time, "20240103");
  EXPECT_EQ(ev[1].action, ConsentAction::kWithdraw);
  EXPECT_EQ(ev[1].effective_time, "20240104");
  EXPECT_EQ(events(m).size(), 3u);  // no type filter
  // Only irrelevant CON segments and an ADT trigger: the flag decides.
  c.con_types = {"OTHER"};
  std::vector<ConsentEvent> flag = events(adt("A08", kPid + "PD1||||||||||||Y\rCON|1|DIR\r"), c);
  ASSERT_EQ(flag.size(), 1u);
  EXPECT_EQ(flag[0].origin, "PD1-12");
}

TEST(ConsentCon, CanBeSwitchedOff) {
  ConsentConfig c;
  c.use_con_segments = false;
  std::vector<ConsentEvent> ev = events(adt("A08", kPid + "CON|1|DIR|||||||||R\r"), c);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].action, ConsentAction::kUnknown);
}

TEST(Links, MrnToHealthNumber) {
  LinkConfig c;
  c.mrn_authority = "LGH-MRN";
  std::vector<HealthNumberLink> links = extract_health_number_links(adt("A08", kPid), c);
  ASSERT_EQ(links.size(), 1u);
  EXPECT_EQ(links[0].mrn.reveal(), "MRN000123");
  EXPECT_EQ(links[0].mrn_authority, "LGH-MRN");
  EXPECT_EQ(links[0].health_number.reveal(), "1234567897");
  EXPECT_EQ(links[0].health_number_authority, "ON");
}

TEST(Links, ByTypeWhenNoAuthorityIsConfigured) {
  Message m = adt("A04", "PID|1||M7^^^^MR~1234567897^^^^JHN\r");
  std::vector<HealthNumberLink> links = extract_health_number_links(m, LinkConfig{});
  ASSERT_EQ(links.size(), 1u);
  EXPECT_EQ(links[0].mrn.reveal(), "M7");
  EXPECT_EQ(links[0].health_number.reveal(), "1234567897");
}

TEST(Links, NoneWhenMissingAmbiguousOrNotAdt) {
  LinkConfig c;
  c.mrn_authority = "LGH-MRN";
  EXPECT_TRUE(extract_health_number_links(adt("A08", "PID|1||M1^^^LGH-MRN^MR\r"), c).empty());
  EXPECT_TRUE(extract_health_number_links(
                  adt("A08", "PID|1||M1^^^LGH-MRN^MR~1234567897^^^ON~9876543217^^^ON\r"), c)
                  .empty());
  EXPECT_EQ(extract_health_number_links(
                adt("A08", "PID|1||M1^^^LGH-MRN^MR~1234567897^^^ON~1234567897^^^ON\r"), c)
                .size(),
            1u);  // the same number twice is not ambiguous
  EXPECT_TRUE(
      extract_health_number_links(adt("A08", "PID|1||M1^^^OTHER^MR~1234567897^^^ON\r"), c).empty());
  Message orm = Message::parse(kHeader + "ORM^O01|1|P|2.5\r" + kPid).value();
  EXPECT_TRUE(extract_health_number_links(orm, c).empty());
}

TEST(Consent, ActionNames) {
  EXPECT_EQ(to_string(ConsentAction::kGrant), "grant");
  EXPECT_EQ(to_string(ConsentAction::kWithdraw), "withdraw");
  EXPECT_EQ(to_string(ConsentAction::kUnknown), "unknown");
}

}  // namespace
}  // namespace dirgw::hl7
