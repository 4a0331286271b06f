// report.pacs (docs/report.md, "PACS count"): the PACS's own count of a day beside dirgw's, with
// a fake PACS session: its reported counts, the SERIES/IMAGE fallback, the studies dirgw never
// received, "unavailable" (never a number) when the PACS cannot be asked, and the report's JSON
// and CSV forms; on a real catalog, what dirgw holds of the PACS's studies.
#include "report/pacs_count.h"

#include <gtest/gtest.h>

#include <sstream>

#include "catalog/catalog.h"
#include "fakes/fake_clock.h"
#include "fakes/temp_dir.h"
#include "report/day_report.h"

namespace dirgw::report {
namespace {

using ingest::pull::FoundStudy;
using ingest::pull::QrSession;
using ingest::pull::StudyContents;

struct FakePacs {
  std::map<std::string, std::int64_t> studies;  // Study Instance UID -> instances
  bool report_counts = true, refuse = false, fail_find = false;
  std::string asked_date;
  int contents = 0;
};

class FakeSession final : public QrSession {
 public:
  explicit FakeSession(FakePacs& p) : p_(p) {}
  Result<std::vector<FoundStudy>> find_studies(const std::string&) override {
    return std::vector<FoundStudy>{};
  }
  Result<std::vector<FoundStudy>> find_studies_on(const std::string& date) override {
    p_.asked_date = date;
    if (p_.fail_find) return make_error(ErrorCode::kNetwork, "C-FIND refused by the PACS");
    std::vector<FoundStudy> out;
    for (const auto& [uid, n] : p_.studies) out.push_back({uid, p_.report_counts ? n : -1, {}});
    return out;
  }
  Result<StudyContents> study_contents(const std::string& uid) override {
    ++p_.contents;
    return StudyContents{p_.studies[uid], {"CT"}};
  }
  Result<ingest::pull::MoveResult> move_study(const std::string&, const std::string&) override {
    return make_error(ErrorCode::kNetwork, "not here");
  }

 private:
  FakePacs& p_;
};

class PacsCountTest : public ::testing::Test {
 protected:
  PacsCountTest() {
    pacs_.name = "main-pacs";
    pacs_.ae_title = "PACS";
    pacs_.host = "127.0.0.1";
    pacs_.calling_ae = "DIRGW";
    fake_.studies = {{"1.2.3.1", 3}, {"1.2.3.2", 2}, {"1.2.3.9", 4}};
  }
  ingest::pull::QrConnect connect() {
    return [this](const config::PullSource& s,
                  const std::string& ae) -> Result<std::unique_ptr<QrSession>> {
      EXPECT_EQ(s.ae_title, "PACS");
      EXPECT_EQ(ae, "DIRGW");
      if (fake_.refuse)
        return make_error(ErrorCode::kNetwork, "association with the PACS failed: refused");
      return std::unique_ptr<QrSession>(std::make_unique<FakeSession>(fake_));
    };
  }
  // dirgw holds all of study 1, one instance of study 2, nothing of study 9.
  HeldInstances held() {
    return [](const std::vector<std::string>& uids) -> Result<std::map<std::string, std::int64_t>> {
      std::map<std::string, std::int64_t> out;
      for (const auto& u : uids) {
        if (u == "1.2.3.1") out[u] = 3;
        if (u == "1.2.3.2") out[u] = 1;
      }
      return out;
    };
  }
  config::PullSource pacs_;
  FakePacs fake_;
};

TEST_F(PacsCountTest, CountsTheDayAndListsTheStudiesNeverReceived) {
  const PacsDay d = count_pacs(pacs_, "20261202", connect(), held());
  EXPECT_EQ(fake_.asked_date, "20261202");
  ASSERT_TRUE(d.available()) << d.unavailable;
  EXPECT_EQ(d.pacs, "main-pacs");
  EXPECT_EQ(d.studies, 3);
  EXPECT_EQ(d.instances, 9);
  EXPECT_EQ(d.received_studies, 2);
  EXPECT_EQ(d.received_instances, 4);
  EXPECT_EQ(d.never_received, std::vector<std::string>{"1.2.3.9"});
  EXPECT_EQ(fake_.contents, 0);
}

TEST_F(PacsCountTest, APacsWithoutStudyCountsIsCountedBySeriesAndImages) {
  fake_.report_counts = false;
  const PacsDay d = count_pacs(pacs_, "20261202", connect(), held());
  ASSERT_TRUE(d.available()) << d.unavailable;
  EXPECT_EQ(d.instances, 9);
  EXPECT_EQ(fake_.contents, 3);
}

TEST_F(PacsCountTest, APacsThatCannotBeAskedIsUnavailableNeverANumber) {
  fake_.refuse = true;
  PacsDay d = count_pacs(pacs_, "20261202", connect(), held());
  EXPECT_FALSE(d.available());
  EXPECT_EQ(d.unavailable, "association with the PACS failed: refused");
  fake_.refuse = false;
  fake_.fail_find = true;
  d = count_pacs(pacs_, "20261202", connect(), held());
  EXPECT_EQ(d.unavailable, "C-FIND refused by the PACS");
  EXPECT_EQ(d.studies, 0);

  Report r{*make_day("2026-12-02", "UTC"), 0, {}};
  r.pacs = std::vector<PacsDay>{d};
  const auto j = to_json(r);
  EXPECT_EQ(j["pacs_count"], "main-pacs: unavailable: C-FIND refused by the PACS");
  EXPECT_EQ(j["pacs"][0]["available"], false);
  EXPECT_TRUE(j["pacs"][0]["studies"].is_null());
  EXPECT_NE(to_csv(r).find("2026-12-02,UTC,pacs,main-pacs,,,,,,,,,,,,,,unavailable: C-FIND "
                           "refused by the PACS,\r\n"),
            std::string::npos)
      << to_csv(r);
}

TEST_F(PacsCountTest, TheReportShowsItInJsonAndCsvWithEveryRowOfNineteenFields) {
  const auto counts = make_pacs_counts({pacs_}, connect(), held());
  ASSERT_TRUE(counts);
  EXPECT_FALSE(make_pacs_counts({}, connect(), held()));
  Report r{*make_day("2026-12-02", "UTC"), 0, {}};
  r.counts.by_source["dicom:PACS1"] = {4, 2};
  r.counts.destinations.push_back({"hdirs", 0, 0, {}, {}, {}, 0});
  for (auto o : catalog::kAllDayOutcomes) r.counts.destinations[0].outcomes[o] = 0;
  r.pacs = counts("2026-12-02");
  EXPECT_EQ(fake_.asked_date, "20261202");
  const auto j = to_json(r);
  EXPECT_EQ(j["pacs_count"], "main-pacs: 3 studies, 9 instances, 1 studies never received");
  EXPECT_EQ(j["pacs"][0]["instances_difference"], 5);
  EXPECT_EQ(j["pacs"][0]["studies_difference"], 1);
  EXPECT_EQ(j["pacs"][0]["never_received"], nlohmann::json::array({"1.2.3.9"}));
  const std::string csv = to_csv(r);
  EXPECT_NE(csv.find("2026-12-02,UTC,pacs,main-pacs,9,3,,,,,,,,,,,,study_date=20261202;"
                     "received_studies=2;received_instances=4;never_received=1.2.3.9,\r\n"),
            std::string::npos)
      << csv;
  std::istringstream lines(csv);
  for (std::string line; std::getline(lines, line);) {
    int commas = 0;
    bool quoted = false;
    for (char c : line) {
      if (c == '"') quoted = !quoted;
      if (c == ',' && !quoted) ++commas;
    }
    EXPECT_EQ(commas, 18) << line;
  }
}

TEST(PacsCountCatalog, WhatDirgwHoldsOfTheStudiesCountsEachInstanceOnce) {
  testing::TempDir dir;
  testing::FakeClock clock;
  auto c = catalog::Catalog::open(dir.path() / "catalog.db", {"hdirs"}, clock);
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  for (int i = 1; i <= 3; ++i) {
    catalog::NewInstance in;
    in.study_uid = "1.2.3.1";
    in.series_uid = "1.2.3.1.1";
    // Instance 3 is a second version of instance 2 (other bytes): one SOP instance.
    in.sop_instance_uid = "1.2.3.1.1." + std::to_string(i == 3 ? 2 : i);
    in.sop_class_uid = "1.2.840.10008.5.1.4.1.1.2";
    in.transfer_syntax = "1.2.840.10008.1.2.1";
    in.modality = "CT";
    in.sha256 = std::string(63, 'a') + std::to_string(i);
    in.size = 100;
    in.calling_ae = "PACS1";
    ASSERT_TRUE((*c)->ingest.record_instance(in).ok());
  }
  auto held = (*c)->day_report.instances_of_studies({"1.2.3.1", "1.2.3.9"});
  ASSERT_TRUE(held.ok()) << held.error().to_string();
  EXPECT_EQ(*held, (std::map<std::string, std::int64_t>{{"1.2.3.1", 2}}));
}

}  // namespace
}  // namespace dirgw::report
