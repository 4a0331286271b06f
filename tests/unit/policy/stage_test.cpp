// The policy stage: per study and destination READY, HELD, QUARANTINED or WITHDRAWN, with
// coerced copies as derived objects; and what happens when the catalog refuses its decisions.
#include "policy/stage/stage.h"

#include <gtest/gtest.h>

#include <functional>
#include <set>

#include "catalog/catalog.h"
#include "common/files.h"
#include "fakes/fake_clock.h"
#include "fakes/spooled_study.h"
#include "scheduler/scheduler.h"

namespace dirgw::policy {
namespace {

using std::chrono::seconds;
constexpr const char* kStudy = "1.2.826.0.1.3680043.10.543.90";

class StageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.policy.validation_profile = "ontario-dir";
    config_.policy.health_number_issuer = "ON";
    config::Destination d;
    d.name = "repo";
    config_.destinations.push_back(d);
    catalog_ = std::move(catalog::Catalog::open(dir_ / "c.db", {"repo"}, clock_)).value();
    spool_ =
        std::make_unique<ingest::Spool>(std::move(ingest::Spool::open(dir_ / "spool")).value());
  }
  Stage& stage() {
    if (!stage_) stage_ = std::make_unique<Stage>(config_, *catalog_, *spool_, clock_);
    return *stage_;
  }
  void receive(int n, const std::string& health_number = test::kHealthNumber,
               const std::function<void(DcmDataset&)>& edit = {}) {
    for (int i = 1; i <= n; ++i) {
      auto ds = test::valid_ct();
      test::set_health_number(*ds, health_number);
      if (edit) edit(*ds);
      testing::spool_instance(*spool_, catalog_->ingest, *ds, kStudy,
                              std::string(kStudy) + ".1." + std::to_string(i));
    }
    clock_.advance(seconds(120));
    ASSERT_TRUE(catalog_->ingest.promote_stable(to_epoch_ms(clock_.now())).ok());
  }
  catalog::DestinationStateDetail row() {
    auto d = catalog_->queries.study(kStudy);
    return (*d)->destinations.at(0);
  }

  test::TempDir dir_;
  ::dirgw::testing::FakeClock clock_;
  config::Config config_;
  std::unique_ptr<catalog::Catalog> catalog_;
  std::unique_ptr<ingest::Spool> spool_;
  std::unique_ptr<Stage> stage_;
};

TEST_F(StageTest, AValidStudyWithoutObjectionIsReady) {
  receive(2);
  auto r = stage().step();
  EXPECT_EQ(r.studies, 1);
  EXPECT_EQ(r.ready, 1);
  EXPECT_EQ(row().state, "READY");
}

TEST_F(StageTest, OptInHoldsUntilAGrant) {
  config_.destinations[0].consent_mode = "opt-in";
  receive(1);
  EXPECT_EQ(stage().step().held, 1);
  EXPECT_EQ(row().state, "HELD");
  EXPECT_EQ(row().reason, "no consent recorded");
  catalog::ConsentChange c;
  c.identifiers = {{"hn", "ON", test::kHealthNumber}};
  c.source = "cli";
  auto effect = catalog_->consent.record_consent(c);
  ASSERT_TRUE(effect.ok());
  EXPECT_EQ(effect->studies_released, 1);
  EXPECT_EQ(row().state, "READY");
}

TEST_F(StageTest, AnInvalidHealthNumberIsQuarantinedWithEveryFinding) {
  receive(2, "1234567890");
  EXPECT_EQ(stage().step().quarantined, 1);
  EXPECT_EQ(row().state, "QUARANTINED");
  auto findings = catalog_->policy.findings(kStudy);
  ASSERT_TRUE(findings.ok());
  EXPECT_GE(findings->size(), 2u);  // one per instance at least
  for (const auto& f : *findings)
    EXPECT_EQ(f.message.find("1234567890"), std::string::npos) << "a finding repeats the value";
}

// The site's health number issuer (policy.health_number_issuer) is the one validation looks for:
// a site that writes it as an OID is not quarantined for "no health number".
TEST_F(StageTest, TheSitesHealthNumberIssuerIsTheOneValidated) {
  const std::string oid = "2.16.840.1.113883.4.59";
  config_.policy.health_number_issuer = oid;
  receive(1, test::kHealthNumber, [&](DcmDataset& ds) {
    ds.findAndDeleteElement(DCM_OtherPatientIDsSequence);
    test::set_health_number(ds, test::kHealthNumber, oid);
  });
  EXPECT_EQ(stage().step().ready, 1);
  EXPECT_EQ(row().state, "READY");
}

// A modality outside the profile's list is quarantined, unless the site allows it; and a
// finding the site accepts no longer quarantines (policy.validation).
TEST_F(StageTest, TheSitesValidationAdjustments) {
  const auto ophthalmic = [](DcmDataset& ds) { ds.putAndInsertString(DCM_Modality, "OP"); };
  receive(1, test::kHealthNumber, ophthalmic);
  EXPECT_EQ(stage().step().quarantined, 1);
  auto findings = catalog_->policy.findings(kStudy);
  ASSERT_TRUE(findings.ok());
  ASSERT_EQ(findings->size(), 1u);
  EXPECT_EQ(findings->at(0).code, "modality.not_allowed");

  // A second gateway state: OP allowed, a wrong check digit accepted.
  stage_.reset();
  catalog_.reset();
  std::filesystem::remove_all(dir_ / "c.db");
  std::filesystem::remove(dir_ / "c.db-wal");
  std::filesystem::remove(dir_ / "c.db-shm");
  catalog_ = std::move(catalog::Catalog::open(dir_ / "c.db", {"repo"}, clock_)).value();
  config_.policy.validation.allow_modalities = {"OP"};
  config_.policy.validation.accept_findings = {"health_number.check_digit"};
  receive(1, "1234567890", ophthalmic);
  EXPECT_EQ(stage().step().ready, 1);
  EXPECT_EQ(row().state, "READY");
}

TEST_F(StageTest, CoercionWritesDeterministicDerivedObjects) {
  config_.policy.coercion.institution_name = "Lakeside General";
  receive(1);
  ASSERT_EQ(stage().step().ready, 1);
  auto instance = (*catalog_->queries.study(kStudy))->instances.at(0);
  auto due = catalog_->delivery.due_deliveries("repo", to_epoch_ms(clock_.now()), 10, 1 << 30);
  ASSERT_EQ(due->size(), 1u);
  EXPECT_TRUE((*due)[0].derived);
  EXPECT_NE((*due)[0].sha256, instance.sha256);
  EXPECT_TRUE(std::filesystem::exists(spool_->derived_path((*due)[0].sha256)));
  // The same coercion again (a released quarantine, a restart) writes the same bytes.
  const std::string first = (*due)[0].sha256;
  CoercionRules rules;
  rules.facility = config_.facility_name;
  rules.institution_name = "Lakeside General";
  HealthNumberLookup none = [](const std::string&, const std::string&) {
    return std::optional<std::string>();
  };
  auto again = coerce_file(spool_->object_path(instance.sha256), dir_ / "again.dcm", rules, none,
                           from_epoch_ms(instance.received_at));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(test::read_all(dir_ / "again.dcm"), test::read_all(spool_->derived_path(first)));
}

// A de-identifying destination gets its own copy, with a pseudonymous SOP Instance UID; the
// identified destination keeps the original.
class DeidStageTest : public StageTest {
 protected:
  void SetUp() override {
    StageTest::SetUp();
    config::Destination research;
    research.name = "research";
    research.deidentify.enabled = true;
    config_.destinations.push_back(research);
    config_.deid_key_file = dir_ / "deid.key";
    catalog_.reset();
    catalog_ =
        std::move(catalog::Catalog::open(dir_ / "c.db", {"repo", "research"}, clock_)).value();
    auto made = DeidTargets::make(config_);
    ASSERT_TRUE(made.ok()) << made.error().to_string();
    deid_ = std::make_unique<DeidTargets>(std::move(made).value());
    stage_ = std::make_unique<Stage>(config_, *catalog_, *spool_, clock_, nullptr, deid_.get());
  }
  std::map<std::string, std::string> states() {
    std::map<std::string, std::string> out;
    auto study = catalog_->queries.study(kStudy);
    for (const auto& d : (*study)->destinations)
      out[d.destination] = d.state + (d.reason.empty() ? "" : ": " + d.reason);
    return out;
  }
  std::unique_ptr<DeidTargets> deid_;
};

TEST_F(DeidStageTest, ResearchGetsAPseudonymousCopyAndTheRepositoryTheOriginal) {
  receive(2);
  ASSERT_EQ(stage().step().ready, 2);
  const auto now = to_epoch_ms(clock_.now());
  auto repo = *catalog_->delivery.due_deliveries("repo", now, 10, 1 << 30);
  auto research = *catalog_->delivery.due_deliveries("research", now, 10, 1 << 30);
  ASSERT_EQ(repo.size(), 2u);
  ASSERT_EQ(research.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_FALSE(repo[i].derived);
    EXPECT_EQ(repo[i].sop_instance_uid.rfind(kStudy, 0), 0u);
    EXPECT_TRUE(research[i].derived);
    EXPECT_EQ(research[i].sop_instance_uid.rfind("2.25.", 0), 0u) << research[i].sop_instance_uid;
    EXPECT_NE(research[i].sha256, repo[i].sha256);
    EXPECT_TRUE(std::filesystem::exists(spool_->derived_path(research[i].sha256)));
  }
  EXPECT_TRUE(std::filesystem::exists(dir_ / "deid.key"));
}

TEST_F(DeidStageTest, AnObjectProneToBurnedInTextIsQuarantinedForResearchOnly) {
  for (int i = 1; i <= 2; ++i) {
    auto ds = test::valid_ct();
    test::set_health_number(*ds, test::kHealthNumber);
    ds->putAndInsertString(DCM_Modality, "US");  // no Burned In Annotation: may carry text
    ds->findAndDeleteElement(DCM_BurnedInAnnotation);
    testing::spool_instance(*spool_, catalog_->ingest, *ds, kStudy,
                            std::string(kStudy) + ".1." + std::to_string(i));
  }
  clock_.advance(seconds(120));
  ASSERT_TRUE(catalog_->ingest.promote_stable(to_epoch_ms(clock_.now())).ok());
  auto r = stage().step();
  EXPECT_EQ(r.ready, 1);
  EXPECT_EQ(r.quarantined, 1);
  auto s = states();
  EXPECT_EQ(s["repo"], "READY");
  EXPECT_NE(s["research"].find("QUARANTINED: 2 instance(s) not de-identifiable"), std::string::npos)
      << s["research"];
  EXPECT_NE(s["research"].find("burned-in-annotation"), std::string::npos) << s["research"];
  // Nothing of it is due for research while it is quarantined.
  EXPECT_TRUE(catalog_->delivery.due_deliveries("research", to_epoch_ms(clock_.now()), 10, 1 << 30)
                  ->empty());

  // A plain release runs the screen again: quarantined again. A release after an operator's
  // review of the pixel data waives the burned-in screen for research and these two instances.
  ASSERT_TRUE(catalog_->operators.release_quarantine(kStudy).ok());
  EXPECT_EQ(stage().step().quarantined, 1);
  auto wrong = catalog_->operators.release_reviewed_burned_in(kStudy, "repo", "tester");
  ASSERT_TRUE(wrong.ok());
  EXPECT_EQ(wrong->changed, 0);  // repo is READY, not quarantined as not de-identifiable
  ASSERT_FALSE(wrong->refused.empty());
  auto reviewed = catalog_->operators.release_reviewed_burned_in(kStudy, "research", "tester");
  ASSERT_TRUE(reviewed.ok());
  EXPECT_EQ(reviewed->changed, 1);
  EXPECT_EQ(stage().step().ready, 1);
  EXPECT_EQ(states()["research"], "READY");
  auto due = catalog_->delivery.due_deliveries("research", to_epoch_ms(clock_.now()), 10, 1 << 30);
  ASSERT_EQ(due->size(), 2u);
  for (const auto& d : *due) EXPECT_TRUE(d.derived);  // de-identified copies, never the original

  // A third instance arriving later was not reviewed: screened as usual.
  auto ds = test::valid_ct();
  test::set_health_number(*ds, test::kHealthNumber);
  ds->putAndInsertString(DCM_Modality, "US");
  ds->findAndDeleteElement(DCM_BurnedInAnnotation);
  testing::spool_instance(*spool_, catalog_->ingest, *ds, kStudy, std::string(kStudy) + ".1.3");
  clock_.advance(seconds(120));
  ASSERT_TRUE(catalog_->ingest.promote_stable(to_epoch_ms(clock_.now())).ok());
  stage().step();
  EXPECT_NE(states()["research"].find("QUARANTINED: 1 instance(s) not de-identifiable"),
            std::string::npos)
      << states()["research"];
}

// A copy a later stage replaced (here the coerced copy, de-identified for every destination) is
// named by no row: the policy stage's sweep removes it, and only it, once it is older than the
// grace; a copy no row names that was written a moment ago is left.
TEST_F(DeidStageTest, DerivedCopiesNoRowNamesAreSwept) {
  config_.policy.coercion.institution_name = "Lakeside General";
  config_.destinations[0].deidentify.enabled = true;
  auto made = DeidTargets::make(config_);
  ASSERT_TRUE(made.ok()) << made.error().to_string();
  deid_ = std::make_unique<DeidTargets>(std::move(made).value());
  stage_ = std::make_unique<Stage>(config_, *catalog_, *spool_, clock_, nullptr, deid_.get());
  receive(1);
  ASSERT_EQ(stage().step().ready, 2);
  auto derived_on_disk = [&] {
    std::set<std::string> out;
    for (int shard = 0; shard < 256; ++shard)
      for (const auto& sha : *spool_->list_derived(shard)) out.insert(sha);
    return out;
  };
  std::set<std::string> named;
  for (const char* dest : {"repo", "research"})
    for (const auto& d :
         *catalog_->delivery.due_deliveries(dest, to_epoch_ms(clock_.now()), 10, 1 << 30)) {
      EXPECT_TRUE(d.derived);
      named.insert(d.sha256);
    }
  std::set<std::string> left;
  for (const auto& sha : derived_on_disk())
    if (!named.contains(sha)) left.insert(sha);
  ASSERT_EQ(left.size(), 1u);  // the coerced copy both de-identified copies were made from

  auto sweep_all = [&] {  // every shard once: an hour of policy rounds
    for (int i = 0; i < 257; ++i) {
      clock_.advance(seconds(15));
      stage().step();
    }
  };
  sweep_all();
  EXPECT_TRUE(derived_on_disk().contains(*left.begin()));  // younger than the grace
  for (const auto& sha : derived_on_disk())
    std::filesystem::last_write_time(
        spool_->derived_path(sha),
        std::filesystem::file_time_type::clock::now() - std::chrono::minutes(11));
  const auto fresh_temp = spool_->new_temp_path();
  ASSERT_TRUE(write_file_durably(fresh_temp, "a copy being recorded", 0640).ok());
  auto fresh = spool_->commit_derived(fresh_temp);
  ASSERT_TRUE(fresh.ok());
  sweep_all();
  std::set<std::string> expected = named;
  expected.insert(fresh->sha256);
  EXPECT_EQ(derived_on_disk(), expected);
  // What the sweep left is what the destinations still get.
  EXPECT_EQ(states()["repo"], "READY");
  EXPECT_EQ(states()["research"], "READY");
}

// Suspected defect (issue 11): when recording a decision keeps failing, the stage reported
// progress and readiness looped on the catalog for ever. Now the round ends, the readiness
// step backs off, and the failure shows in the stage's health.
TEST_F(StageTest, AFailingCatalogWriteBacksOffAndShowsInHealth) {
  receive(1);
  ASSERT_TRUE(catalog_->db()
                  .locked([](catalog::Connection& db) {
                    db.exec(
                        "CREATE TRIGGER refuse BEFORE INSERT ON study_identifiers BEGIN "
                        "SELECT RAISE(ABORT, 'the disk refuses'); END");
                  })
                  .ok());
  int rounds = 0;
  scheduler::Readiness readiness(catalog_->ingest, clock_, seconds(60), [&] {
    ++rounds;
    const auto p = stage().step();
    return scheduler::PolicyRound{p.studies, p.ready, p.failed};
  });
  auto r = readiness.step();  // before the fix: never returned
  EXPECT_TRUE(r.policy_failing);
  EXPECT_EQ(rounds, 1);
  ASSERT_TRUE(r.next.has_value());
  EXPECT_LE(*r.next, clock_.now() + seconds(60));
  EXPECT_GT(*r.next, clock_.now());
  EXPECT_EQ(stage().health().consecutive_failures, 1);
  EXPECT_NE(stage().health().last_error.find("cannot record a policy decision"), std::string::npos);
  EXPECT_EQ(row().state, "STABLE") << "nothing decided, nothing lost";
  // The catalog recovers: the next round decides and the health clears.
  ASSERT_TRUE(
      catalog_->db().locked([](catalog::Connection& db) { db.exec("DROP TRIGGER refuse"); }).ok());
  clock_.advance(seconds(5));
  r = readiness.step();
  EXPECT_FALSE(r.policy_failing);
  EXPECT_EQ(r.ready, 1);
  EXPECT_EQ(stage().health().consecutive_failures, 0);
}

}  // namespace
}  // namespace dirgw::policy
