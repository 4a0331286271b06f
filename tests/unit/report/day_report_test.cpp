// The daily reconciliation report (docs/report.md): the outcome precedence, facility days across
// daylight-saving changes, and on a real catalog a day with every kind of outcome whose columns
// add up.
#include "report/day_report.h"

#include "report/from_audit.h"
#include "report/nightly.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "catalog/catalog.h"
#include "common/files.h"
#include "fakes/admit.h"
#include "fakes/fake_clock.h"
#include "fakes/temp_dir.h"

namespace dirgw::report {
namespace {

namespace fs = std::filesystem;
using catalog::DayOutcome;
using std::chrono::hours;
using std::chrono::seconds;

TEST(DayReportClassify, DeliveryStateComesFirstThenTheStudy) {
  using catalog::classify_delivery;
  EXPECT_EQ(classify_delivery("verified", "QUARANTINED"), DayOutcome::kIsVerified);
  EXPECT_EQ(classify_delivery("sent", "HELD"), DayOutcome::kIsSent);
  EXPECT_EQ(classify_delivery("failed", "FAILED"), DayOutcome::kIsFailed);
  EXPECT_EQ(classify_delivery("withdrawn", "SENT"), DayOutcome::kIsWithdrawn);
  EXPECT_EQ(classify_delivery("superseded", "READY"), DayOutcome::kIsSuperseded);
  for (const char* open : {"pending", "sending"}) {
    EXPECT_EQ(classify_delivery(open, "WITHDRAWN"), DayOutcome::kIsWithdrawn);
    EXPECT_EQ(classify_delivery(open, "QUARANTINED"), DayOutcome::kIsQuarantined);
    EXPECT_EQ(classify_delivery(open, "HELD"), DayOutcome::kIsHeld);
    for (const char* s : {"RECEIVING", "STABLE", "READY", "SENDING", "RETRY_WAIT", "SENT", ""})
      EXPECT_EQ(classify_delivery(open, s), DayOutcome::kIsPending) << s;
  }
}

TEST(DayReportDay, DaylightSavingDaysAre23And25HoursLong) {
  auto spring = make_day("2026-03-08", "America/Toronto");
  ASSERT_TRUE(spring.ok());
  EXPECT_EQ(spring->to_ms - spring->from_ms, 23 * 3'600'000LL);
  EXPECT_EQ(format_utc_ms(spring->from_ms), "2026-03-08T05:00:00Z");
  auto autumn = make_day("2026-11-01", "America/Toronto");
  ASSERT_TRUE(autumn.ok());
  EXPECT_EQ(autumn->to_ms - autumn->from_ms, 25 * 3'600'000LL);
  auto utc = make_day("2026-12-02", "UTC");
  ASSERT_TRUE(utc.ok());
  EXPECT_EQ(format_utc_ms(utc->from_ms), "2026-12-02T00:00:00Z");
  EXPECT_EQ(format_utc_ms(utc->to_ms), "2026-12-03T00:00:00Z");
}

TEST(DayReportDay, RefusesWhatIsNotADate) {
  for (const char* bad : {"2026-02-30", "2026-2-01", "20261201", "2026-12-0x", "", "2026-13-01"}) {
    auto d = make_day(bad, "UTC");
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_NE(d.error().detail.find("YYYY-MM-DD"), std::string::npos);
  }
  auto z = make_day("2026-12-01", "Mars/Olympus");
  ASSERT_FALSE(z.ok());
  EXPECT_NE(z.error().detail.find("unknown time zone"), std::string::npos);
}

TEST(DayReportDay, DayBeforeIsYesterdayInTheFacilityZone) {
  // 2026-12-03T03:00Z is still 2026-12-02 (22:00) in Toronto.
  const auto now = from_epoch_ms(make_day("2026-12-03", "UTC")->from_ms) + hours(3);
  EXPECT_EQ(day_before(now, "UTC")->day, "2026-12-02");
  EXPECT_EQ(day_before(now, "America/Toronto")->day, "2026-12-01");
}

using testing::TempDir;

catalog::NewInstance instance(const std::string& study, int n, const std::string& source) {
  catalog::NewInstance in;
  in.study_uid = study;
  in.series_uid = study + ".1";
  in.sop_instance_uid = study + ".1." + std::to_string(n);
  in.sop_class_uid = "1.2.840.10008.5.1.4.1.1.2";
  in.transfer_syntax = "1.2.840.10008.1.2.1";
  in.modality = "CT";
  in.sha256 = std::string(60, 'a') + std::to_string(1000 + n) + study.substr(study.size() - 1);
  in.size = 1000;
  in.calling_ae = "PACS1";
  in.source = source;
  return in;
}

class DayReportCatalog : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = catalog::Catalog::open(dir_.path() / "catalog.db", {"hdirs"}, clock_);
    ASSERT_TRUE(c.ok()) << c.error().to_string();
    catalog_ = std::move(c).value();
  }
  void receive(const std::string& study, int count, const std::string& source = "dicom:PACS1") {
    for (int i = 1; i <= count; ++i)
      ASSERT_TRUE(catalog_->ingest.record_instance(instance(study, i, source)).ok());
  }
  void decide(const std::string& study, catalog::StudyState state, const std::string& code) {
    auto work = catalog_->policy.policy_work(100);
    for (const auto& w : *work) {
      if (w.study_uid != study) continue;
      ASSERT_TRUE(
          catalog_->policy.record_policy(w.study_id, {}, {}, {{"hdirs", state, code, code}}, {})
              .ok());
    }
  }
  void answer(catalog::DeliveryResult result) {
    auto due = catalog_->delivery.due_deliveries("hdirs", to_epoch_ms(clock_.now()), 100, 1 << 30);
    auto begun = catalog_->delivery.begin_send("hdirs", *due);
    ASSERT_TRUE(begun.ok());
    begun->permit.release();
    std::vector<catalog::DeliveryUpdate> up;
    for (const auto& d : *due) up.push_back({d.instance_id, result, "refused", 0});
    ASSERT_TRUE(catalog_->delivery.record_deliveries("hdirs", up).ok());
  }

  Day day_ = *make_day("2026-12-02", "UTC");
  TempDir dir_;
  testing::FakeClock clock_{from_epoch_ms(day_.from_ms) - hours(2)};
  std::unique_ptr<catalog::Catalog> catalog_;
};

TEST_F(DayReportCatalog, EveryInstanceOfTheDayIsInExactlyOneColumn) {
  // The day before: not in the report.
  receive("1.2.9", 2);
  clock_.advance(hours(3));
  receive("1.2.1", 3);                 // sent
  receive("1.2.2", 2, "folder:ward");  // failed
  ASSERT_EQ(catalog_->ingest.promote_stable(to_epoch_ms(clock_.now())).value(), 3);
  decide("1.2.9", catalog::StudyState::kReady, "");
  decide("1.2.1", catalog::StudyState::kReady, "");
  answer(catalog::DeliveryResult::kDelivered);  // 1.2.9 and 1.2.1
  decide("1.2.2", catalog::StudyState::kReady, "");
  answer(catalog::DeliveryResult::kRefused);
  receive("1.2.3", 2, "pull:pacs");  // held (no consent)
  receive("1.2.4", 1);               // quarantined
  receive("1.2.5", 1, "hl7:RIS");    // withdrawn
  receive("1.2.6", 4);               // still pending
  ASSERT_EQ(catalog_->ingest.promote_stable(to_epoch_ms(clock_.now())).value(), 4);
  decide("1.2.3", catalog::StudyState::kHeld, catalog::reason::kNoConsent);
  decide("1.2.4", catalog::StudyState::kQuarantined, catalog::reason::kValidation);
  decide("1.2.5", catalog::StudyState::kWithdrawn, catalog::reason::kConsentWithdrawn);
  decide("1.2.6", catalog::StudyState::kReady, "");
  clock_.advance(hours(28));

  auto counts = catalog_->day_report.counts(day_.from_ms, day_.to_ms);
  ASSERT_TRUE(counts.ok()) << counts.error().to_string();
  Report r{day_, to_epoch_ms(clock_.now()), *counts};
  EXPECT_EQ(r.counts.instances, 13);
  EXPECT_EQ(r.counts.studies, 6);
  EXPECT_EQ(r.counts.by_source.at("dicom:PACS1").instances, 8);
  EXPECT_EQ(r.counts.by_source.at("folder:ward").studies, 1);
  ASSERT_EQ(r.counts.destinations.size(), 1u);
  const auto& d = r.counts.destinations[0];
  EXPECT_EQ(d.instances, 13);
  EXPECT_EQ(d.outcomes.at(DayOutcome::kIsSent), 3);
  EXPECT_EQ(d.outcomes.at(DayOutcome::kIsFailed), 2);
  EXPECT_EQ(d.outcomes.at(DayOutcome::kIsHeld), 2);
  EXPECT_EQ(d.outcomes.at(DayOutcome::kIsQuarantined), 1);
  EXPECT_EQ(d.outcomes.at(DayOutcome::kIsWithdrawn), 1);
  EXPECT_EQ(d.outcomes.at(DayOutcome::kIsPending), 4);
  EXPECT_EQ(d.held_by_reason.at("no-consent"), 2);
  EXPECT_EQ(d.quarantined_by_reason.at("validation"), 1);
  EXPECT_EQ(d.oldest_pending_received_ms, day_.from_ms + 3'600'000);
  EXPECT_TRUE(adds_up(r));
  EXPECT_NE(check_lines(r).find("13 received = 0 verified + 3 sent + 2 failed + 1 withdrawn + "
                                "1 quarantined + 2 held + 0 superseded + 4 pending: ok"),
            std::string::npos)
      << check_lines(r);

  const auto j = to_json(r);
  EXPECT_EQ(j["day"], "2026-12-02");
  EXPECT_EQ(j["destinations"][0]["oldest_pending_age_s"], 28 * 3600);
  EXPECT_EQ(j["pacs_count"], "n/a");
  const std::string csv = to_csv(r);
  EXPECT_EQ(csv.substr(0, csv.find("\r\n")),
            "day,time_zone,row,name,instances,studies,verified,sent,failed,withdrawn,quarantined,"
            "held,superseded,pending,oldest_pending_age_s,quarantined_by_reason,held_by_reason,"
            "pacs_count,adds_up");
  EXPECT_NE(csv.find("2026-12-02,UTC,destination,hdirs,13,6,0,3,2,1,1,2,0,4,100800,validation=1,"
                     "no-consent=2,,yes\r\n"),
            std::string::npos)
      << csv;
}

// retention.report_days (catalog/row_pruner.h): a finished study's rows go once it is older than
// the report period, never an unfinished one's; the day's report says the same afterwards.
TEST_F(DayReportCatalog, PrunedStudiesLeaveTheirDayReportAsItWas) {
  clock_.advance(hours(3));
  receive("1.2.1", 3);                 // verified, files purged: pruned
  receive("1.2.2", 2, "folder:ward");  // sent, verification pending: kept
  receive("1.2.3", 1);                 // failed, its file still in the spool: kept
  receive("1.2.4", 1);                 // held: kept
  ASSERT_EQ(catalog_->ingest.promote_stable(to_epoch_ms(clock_.now())).value(), 4);
  decide("1.2.3", catalog::StudyState::kReady, "");
  answer(catalog::DeliveryResult::kRefused);
  decide("1.2.1", catalog::StudyState::kReady, "");
  decide("1.2.2", catalog::StudyState::kReady, "");
  answer(catalog::DeliveryResult::kDelivered);
  decide("1.2.4", catalog::StudyState::kHeld, catalog::reason::kNoConsent);
  clock_.advance(hours(1));
  auto due = catalog_->verify.due_studies("hdirs", to_epoch_ms(clock_.now()),
                                          to_epoch_ms(clock_.now()), 10);
  ASSERT_TRUE(due.ok());
  for (const auto& study : *due) {
    if (study.study_uid != "1.2.1") continue;
    std::vector<catalog::VerifyFinding> findings;
    for (const auto& i : *catalog_->verify.sent_instances(study.study_id, "hdirs"))
      findings.push_back({i.instance_id, catalog::VerifyVerdict::kListed});
    ASSERT_TRUE(catalog_->verify.record_verification("hdirs", study.study_id, findings, 3).ok());
  }
  auto purgeable = catalog_->verify.purgeable(to_epoch_ms(clock_.now()), 100);
  ASSERT_TRUE(purgeable.ok());
  ASSERT_EQ(purgeable->size(), 3u);
  ASSERT_TRUE(catalog_->verify.record_purged(*purgeable, "age").ok());
  const auto before = catalog_->day_report.counts(day_.from_ms, day_.to_ms);
  ASSERT_TRUE(before.ok());
  const auto audit_before = catalog_->audit.audit_since(0, 100000)->size();

  // Not older than the report period yet: nothing goes.
  const std::int64_t period = 400LL * 86'400'000;
  EXPECT_TRUE(catalog_->pruner.prunable(to_epoch_ms(clock_.now()) - period, 10)->empty());
  clock_.advance(hours(24 * 401));
  const std::int64_t cutoff = to_epoch_ms(clock_.now()) - period;
  auto prunable = catalog_->pruner.prunable(cutoff, 10);
  ASSERT_TRUE(prunable.ok());
  ASSERT_EQ(prunable->size(), 1u);
  EXPECT_EQ((*prunable)[0].study_uid, "1.2.1");
  EXPECT_EQ((*prunable)[0].instances, 3);
  auto pruned = catalog_->pruner.prune(cutoff, 1);
  ASSERT_TRUE(pruned.ok()) << pruned.error().to_string();
  EXPECT_EQ(pruned->studies, 1);
  EXPECT_EQ(pruned->instances, 3);
  EXPECT_EQ(catalog_->pruner.prune(cutoff)->studies, 0);  // once
  auto left = catalog_->queries.studies("", 100, "");
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(left->size(), 3u);
  for (const auto& st : *left) EXPECT_NE(st.study_uid, "1.2.1");
  EXPECT_EQ(catalog_->audit.audit_since(0, 100000)->size(), audit_before);  // never pruned

  const auto after = catalog_->day_report.counts(day_.from_ms, day_.to_ms);
  ASSERT_TRUE(after.ok()) << after.error().to_string();
  const Report rb{day_, 0, *before}, ra{day_, 0, *after};
  EXPECT_EQ(to_json(ra), to_json(rb));
  EXPECT_EQ(to_csv(ra), to_csv(rb));
  EXPECT_EQ(after->destinations[0].outcomes.at(DayOutcome::kIsVerified), 3);
  EXPECT_EQ(after->studies, 4);
  EXPECT_EQ(after->by_source.at("dicom:PACS1").instances, 5);
  EXPECT_TRUE(adds_up(ra));
}

// Refusals older than the report period go with the rows; status counts what is left without
// walking the table (queries.cpp: the ids stay contiguous).
TEST_F(DayReportCatalog, RefusalsOlderThanThePeriodArePruned) {
  const auto refuse = [&] {
    ASSERT_TRUE(catalog_->ingest
                    .record_refusal({to_epoch_ms(clock_.now()), "dicom", "SCANNER", "10.0.0.9",
                                     "calling AE title not allowed", "ae-not-allowed"})
                    .ok());
  };
  for (int i = 0; i < 30; ++i) refuse();
  clock_.advance(hours(24 * 10));
  for (int i = 0; i < 4; ++i) refuse();
  EXPECT_EQ(catalog_->queries.status()->refusals, 34);
  const std::int64_t cutoff = to_epoch_ms(clock_.now()) - 5LL * 86'400'000;
  auto pruned = catalog_->pruner.prune(cutoff, 1);  // the refusals 25 at a time
  ASSERT_TRUE(pruned.ok()) << pruned.error().to_string();
  EXPECT_EQ(pruned->refusals, 30);
  auto st = catalog_->queries.status();
  EXPECT_EQ(st->refusals, 4);
  ASSERT_TRUE(st->last_refusal.has_value());
  EXPECT_EQ(st->last_refusal->code, "ae-not-allowed");
  EXPECT_EQ(catalog_->pruner.prune(cutoff)->refusals, 0);
  refuse();
  EXPECT_EQ(catalog_->queries.status()->refusals, 5);
}

// Issue 15: the audit trail alone rebuilds the day's report, column for column.
TEST_F(DayReportCatalog, TheAuditTrailAloneRebuildsTheSameReport) {
  receive("1.2.9", 2);  // the day before
  clock_.advance(hours(3));
  receive("1.2.1", 3);
  receive("1.2.2", 2, "folder:ward");
  receive("1.2.3", 2, "pull:pacs");
  receive("1.2.4", 1);
  receive("1.2.5", 1, "hl7:RIS");
  receive("1.2.6", 4);
  receive("1.2.7", 2);
  ASSERT_EQ(catalog_->ingest.promote_stable(to_epoch_ms(clock_.now())).value(), 8);
  decide("1.2.9", catalog::StudyState::kReady, "");
  decide("1.2.1", catalog::StudyState::kReady, "");
  answer(catalog::DeliveryResult::kDelivered);
  decide("1.2.2", catalog::StudyState::kReady, "");
  answer(catalog::DeliveryResult::kRefused);
  decide("1.2.3", catalog::StudyState::kHeld, catalog::reason::kNoConsent);
  decide("1.2.4", catalog::StudyState::kQuarantined, catalog::reason::kValidation);
  decide("1.2.5", catalog::StudyState::kWithdrawn, catalog::reason::kConsentWithdrawn);
  decide("1.2.7", catalog::StudyState::kHeld, catalog::reason::kOperator);
  ASSERT_TRUE(catalog_->operators.release("1.2.7", "").ok());  // held, then released: pending
  decide("1.2.6", catalog::StudyState::kReady, "");
  clock_.advance(hours(28));

  auto from_catalog = catalog_->day_report.counts(day_.from_ms, day_.to_ms);
  ASSERT_TRUE(from_catalog.ok());
  auto events = catalog_->audit.audit_since(0, 100000);
  ASSERT_TRUE(events.ok());
  const auto from_trail = counts_from_audit(*events, day_.from_ms, day_.to_ms, {"hdirs"});
  EXPECT_EQ(from_trail.instances, from_catalog->instances);
  EXPECT_EQ(from_trail.studies, from_catalog->studies);
  for (const auto& [source, c] : from_catalog->by_source) {
    EXPECT_EQ(from_trail.by_source.at(source).instances, c.instances) << source;
    EXPECT_EQ(from_trail.by_source.at(source).studies, c.studies) << source;
  }
  const auto& a = from_trail.destinations.at(0);
  const auto& b = from_catalog->destinations.at(0);
  for (auto o : catalog::kAllDayOutcomes)
    EXPECT_EQ(a.outcomes.at(o), b.outcomes.at(o)) << catalog::to_string(o);
  EXPECT_EQ(b.outcomes.at(DayOutcome::kIsPending), 6);
  EXPECT_EQ(a.held_by_reason, b.held_by_reason);
  EXPECT_EQ(a.quarantined_by_reason, b.quarantined_by_reason);
  EXPECT_EQ(a.oldest_pending_received_ms, b.oldest_pending_received_ms);
}

TEST_F(DayReportCatalog, AnEmptyDayAddsUp) {
  auto counts = catalog_->day_report.counts(day_.from_ms, day_.to_ms);
  ASSERT_TRUE(counts.ok());
  Report r{day_, to_epoch_ms(clock_.now()), *counts};
  EXPECT_EQ(r.counts.instances, 0);
  EXPECT_TRUE(adds_up(r));
  EXPECT_TRUE(to_json(r)["destinations"][0]["oldest_pending_age_s"].is_null());
}

class NightlyTest : public ::testing::Test {
 protected:
  // 2026-12-03 00:30 in Toronto (05:30Z): before report.at (01:00).
  testing::FakeClock clock_{from_epoch_ms(make_day("2026-12-03", "UTC")->from_ms) + hours(5) +
                            std::chrono::minutes(30)};
  TempDir dir_;
  std::vector<std::string> asked_;
  Nightly nightly_{{dir_.path() / "reports", 60, "America/Toronto"},
                   clock_,
                   [this](std::int64_t from, std::int64_t to) -> Result<catalog::DayCounts> {
                     asked_.push_back(format_utc_ms(from));
                     catalog::DayCounts c;
                     c.from_ms = from;
                     c.to_ms = to;
                     return c;
                   }};
  bool written(const std::string& day) {
    return fs::exists(report_path(dir_.path() / "reports", day, "json")) &&
           fs::exists(report_path(dir_.path() / "reports", day, "csv"));
  }
};

TEST_F(NightlyTest, YesterdaysFileOnceReportAtHasPassedAndOnlyOnce) {
  // A new folder before 01:00: the day before yesterday only (the latest day due).
  auto first = nightly_.step();
  ASSERT_TRUE(first.ok()) << first.error().to_string();
  EXPECT_EQ(*first, std::vector<std::string>{"2026-12-01"});
  EXPECT_EQ(asked_, std::vector<std::string>{"2026-12-01T05:00:00Z"});
  EXPECT_TRUE(written("2026-12-01"));
  EXPECT_TRUE(nightly_.step()->empty());
  clock_.advance(std::chrono::minutes(31));  // 01:01 local: yesterday is due
  EXPECT_EQ(*nightly_.step(), std::vector<std::string>{"2026-12-02"});
  EXPECT_TRUE(nightly_.step()->empty());
  auto json = read_small_file(report_path(dir_.path() / "reports", "2026-12-02", "json"));
  ASSERT_TRUE(json.ok());
  EXPECT_EQ(nlohmann::json::parse(*json)["day"], "2026-12-02");
}

TEST_F(NightlyTest, CatchesUpTheNightsItWasDownFor) {
  ASSERT_EQ(nightly_.step()->size(), 1u);  // 2026-12-01
  clock_.advance(hours(24 * 3));           // down for three nights: 12-02, 12-03, 12-04 due
  EXPECT_EQ(*nightly_.step(), (std::vector<std::string>{"2026-12-02", "2026-12-03", "2026-12-04"}));
}

}  // namespace
}  // namespace dirgw::report
