// The consent service: one way to record a change whatever its source (CLI, CSV, HL7), audited
// with the patient as a keyed tag only, and the forwarders woken when it matters.
#include "policy/consent/consent_service.h"

#include <gtest/gtest.h>

#include "catalog/catalog.h"
#include "fakes/fake_clock.h"
#include "policy/consent/hl7_consent.h"
#include "unit/policy/dataset_builder.h"

namespace dirgw::policy {
namespace {

class ConsentServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config::Destination d;
    d.name = "repo";
    d.withdrawal_notify_url = "http://127.0.0.1:1/withdrawals";
    config_.destinations.push_back(d);
    config_.policy.health_number_issuer = "ON";
    catalog_ = std::move(catalog::Catalog::open(dir_ / "c.db", {"repo"}, clock_)).value();
    service_ = std::make_unique<ConsentService>(
        config_, catalog_->consent, [this](audit::Event e) { audited_.push_back(std::move(e)); },
        [this] { ++woken_; });
  }

  test::TempDir dir_;
  testing::FakeClock clock_;
  config::Config config_;
  std::unique_ptr<catalog::Catalog> catalog_;
  std::unique_ptr<ConsentService> service_;
  std::vector<audit::Event> audited_;
  int woken_ = 0;
};

TEST(ParsePatient, AcceptsTheThreeFormsAndChecksTheHealthNumber) {
  auto a = parse_patient("hn:1234567897", "ON");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, (catalog::PatientKey{"hn", "ON", "1234567897"}));
  auto b = parse_patient("mrn:LGH-MRN:MRN0001234", "ON");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->issuer, "LGH-MRN");
  EXPECT_FALSE(parse_patient("hn:1234567890", "ON").ok());  // bad check digit
  EXPECT_FALSE(parse_patient("mrn:X", "ON").ok());
  EXPECT_FALSE(parse_patient("mrn:LGH:A^B", "ON").ok());  // DICOM delimiter
  EXPECT_TRUE(parse_patient("hn:BC:9999", "ON").ok());    // other issuers: no Ontario rule
}

TEST_F(ConsentServiceTest, AWithdrawalIsRecordedAuditedWithATagAndNotificationsQueued) {
  ConsentService::Change c;
  c.identifiers = {{"hn", "ON", "1234567897"}};
  c.grant = false;
  c.source = "cli";
  c.operator_name = "alice(1000)";
  c.actor = "user:alice";
  auto r = service_->record(c);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->notifications, 1);
  EXPECT_EQ(woken_, 1) << "the forwarder posts the notification: it must be woken";
  ASSERT_EQ(audited_.size(), 1u);
  EXPECT_EQ(audited_[0].type, audit::EventType::kConsentChanged);
  EXPECT_EQ(audited_[0].detail["decision"], "withdraw");
  EXPECT_FALSE(audited_[0].patient_ref.empty());
  EXPECT_EQ(audited_[0].detail.dump().find("1234567897"), std::string::npos);
  EXPECT_EQ(audited_[0].patient_ref.find("1234567897"), std::string::npos);
  auto shown = catalog_->consent.patient_consent({"hn", "ON", "1234567897"});
  ASSERT_TRUE(shown.ok() && shown->has_value());
  EXPECT_EQ((*shown)->history.back().operator_name, "alice(1000)");
}

TEST_F(ConsentServiceTest, Hl7AdtWithdrawalGoesThroughTheSameService) {
  config_.ingest.hl7.consent_field = "PD1-12";
  config_.ingest.hl7.consent_grant_value = "N";
  config_.ingest.hl7.consent_withdraw_value = "Y";
  ConsentHl7Sink sink(config_, *service_, catalog_->consent);
  auto msg = hl7::Message::parse(
      "MSH|^~\\&|ADMIT|LGH|DIRGW|LGH|20261128101500||ADT^A08|MSG1|P|2.5\r"
      "EVN|A08|20261128101500\r"
      "PID|1||1234567897^^^ON^JHN~MRN1^^^LGH-MRN^MR||Synth^Test\r"
      "PD1||||||||||||Y\r");
  ASSERT_TRUE(msg.ok());
  auto v = sink.on_message(*msg, "127.0.0.1:5000");
  EXPECT_EQ(v.code, hl7::AckCode::kAA) << v.text;
  ASSERT_EQ(audited_.size(), 1u);
  EXPECT_EQ(audited_[0].detail["source"], "hl7");
  EXPECT_EQ(*catalog_->consent.consent_for({{"mrn", "LGH-MRN", "MRN1"}}, "repo"),
            catalog::ConsentState::kWithdrawn);
  // An invalid health number is refused (AE) and records nothing.
  auto bad = hl7::Message::parse(
      "MSH|^~\\&|ADMIT|LGH|DIRGW|LGH|20261128101500||ADT^A08|MSG2|P|2.5\r"
      "PID|1||1234567890^^^ON^JHN\rPD1||||||||||||Y\r");
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(sink.on_message(*bad, "127.0.0.1:5000").code, hl7::AckCode::kAE);
  EXPECT_EQ(audited_.size(), 1u);
}

}  // namespace
}  // namespace dirgw::policy
