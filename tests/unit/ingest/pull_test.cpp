// The pull poller (issue 12) on a fake clock with a fake PACS session, over a real catalog: what
// is asked for, what is recorded, and what is never asked for twice.
#include <date/date.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>

#include "ingest/catalog_sink.h"
#include "ingest/pull/poller.h"
#include "temp_catalog.h"

namespace dirgw::ingest::test {
namespace {

using pull::StudyAction;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

TEST(PullDecide, EveryCase) {
  catalog::PullStudyRow complete;
  complete.state = "complete";
  catalog::PullStudyRow waiting;
  waiting.state = "incomplete";
  waiting.next_try_at = 2000;
  const std::int64_t now = 1000;
  EXPECT_EQ(pull::decide(std::nullopt, 3, 0, now), StudyAction::kPull);
  EXPECT_EQ(pull::decide(std::nullopt, 3, 3, now), StudyAction::kSkip);  // pushed to us already
  EXPECT_EQ(pull::decide(std::nullopt, -1, 5, now), StudyAction::kPull);
  EXPECT_EQ(pull::decide(complete, 3, 3, now), StudyAction::kSkip);
  EXPECT_EQ(pull::decide(complete, 4, 3, now), StudyAction::kPull);  // grew on the PACS
  EXPECT_EQ(pull::decide(complete, -1, 3, now), StudyAction::kSkip);
  EXPECT_EQ(pull::decide(waiting, 3, 1, now), StudyAction::kWait);
  EXPECT_EQ(pull::decide(waiting, 3, 1, 2000), StudyAction::kPull);
  EXPECT_EQ(pull::decide(waiting, 3, 3, now), StudyAction::kSkip);  // arrived meanwhile
}

// Orthanc files one Study Instance UID under each Patient ID it arrived with and answers the
// C-FIND once for each: the answers are one study, its counts added (found by a pull review:
// the study grew by two on the PACS and was never asked for again).
TEST(PullAnswers, OneStudyAnsweredTwiceIsOneStudy) {
  const auto merged = pull::merge_answers({{"1.2.3", 4, {"CT"}},
                                           {"1.2.4", 2, {"MR"}},
                                           {"1.2.3", 4, {"SR"}},
                                           {"1.2.5", 1, {}},
                                           {"1.2.5", -1, {}}});
  ASSERT_EQ(merged.size(), 3u);
  EXPECT_EQ(merged[0].study_uid, "1.2.3");
  EXPECT_EQ(merged[0].reported, 8);
  EXPECT_EQ(merged[0].modalities, (std::set<std::string>{"CT", "SR"}));
  EXPECT_EQ(merged[1].reported, 2);
  EXPECT_EQ(merged[2].reported, -1);  // one answer without a count: unknown
}

// A refused C-MOVE says why, not only "0 sub-operations failed".
TEST(PullAnswers, AFailureStatusIsNamed) {
  EXPECT_EQ(pull::retrieve_status_text(0x0000), "");
  EXPECT_NE(pull::retrieve_status_text(0xA801).find("move destination unknown"), std::string::npos);
  EXPECT_NE(pull::retrieve_status_text(0xC000).find("0xC000"), std::string::npos);
}

TEST(PullBackoff, DoublesUpToTheMaximum) {
  EXPECT_EQ(pull::backoff(seconds(30), hours(1), 1), seconds(30));
  EXPECT_EQ(pull::backoff(seconds(30), hours(1), 3), seconds(120));
  EXPECT_EQ(pull::backoff(seconds(30), hours(1), 40), hours(1));
}

TEST(PullWindow, FirstDayInTheFacilityZone) {
  // 2027-01-15 03:00 UTC is still the 14th in Toronto.
  const TimePoint t = date::sys_days(date::year(2027) / 1 / 15) + hours(3);
  EXPECT_EQ(pull::window_start_date(t, hours(24), "UTC"), "20270114");
  EXPECT_EQ(pull::window_start_date(t, hours(24), "America/Toronto"), "20270113");
}

// A PACS holding studies (UID -> SOP Instance UIDs); a C-MOVE hands each object to the sink as
// our receiver would, calling as the PACS.
struct FakePacs {
  std::map<std::string, std::vector<std::string>> studies;
  bool report_counts = true;
  bool answer_per_patient = false;  // each study answered twice, its instances split (Orthanc)
  int finds = 0, moves = 0, contents = 0, finds_by_uid = 0;
  bool fail_moves = false, refuse_connect = false;
  std::set<std::string> out_of_window;  // not answered to the window's query (still by UID)
  std::set<std::string> not_sent;       // instances a retrieve does not bring
  std::function<void()> during_move;    // e.g. our own stop arriving in the middle of a C-MOVE
  std::function<void(const std::string& study, const std::string& sop)> deliver;
};

class FakeSession final : public pull::QrSession {
 public:
  explicit FakeSession(FakePacs& p) : p_(p) {}
  Result<std::vector<pull::FoundStudy>> find_studies(const std::string&) override {
    ++p_.finds;
    std::vector<pull::FoundStudy> out;
    for (const auto& [uid, sops] : p_.studies) {
      if (p_.out_of_window.contains(uid)) continue;
      const auto n = static_cast<std::int64_t>(sops.size());
      if (p_.answer_per_patient) {
        out.push_back({uid, n / 2, {}});
        out.push_back({uid, n - n / 2, {}});
      } else {
        out.push_back({uid, p_.report_counts ? n : -1, {}});
      }
    }
    return out;
  }
  Result<std::vector<pull::FoundStudy>> find_study(const std::string& uid) override {
    ++p_.finds_by_uid;
    auto it = p_.studies.find(uid);
    if (it == p_.studies.end()) return std::vector<pull::FoundStudy>();
    return std::vector<pull::FoundStudy>{
        {uid, static_cast<std::int64_t>(it->second.size()), {"CT"}}};
  }
  Result<pull::StudyContents> study_contents(const std::string& uid) override {
    ++p_.contents;
    return pull::StudyContents{static_cast<std::int64_t>(p_.studies[uid].size()), {"OT"}};
  }
  Result<pull::MoveResult> move_study(const std::string& uid, const std::string&) override {
    ++p_.moves;
    if (p_.during_move) p_.during_move();
    if (p_.fail_moves) return make_error(ErrorCode::kNetwork, "C-MOVE failed: reset");
    for (const auto& sop : p_.studies[uid])
      if (!p_.not_sent.contains(sop)) p_.deliver(uid, sop);
    return pull::MoveResult{0, static_cast<int>(p_.studies[uid].size()), 0, 0};
  }

 private:
  FakePacs& p_;
};

class PullPollerTest : public TempCatalog {
 protected:
  void SetUp() override {
    TempCatalog::SetUp();
    catalog_sink_ =
        std::make_unique<CatalogSink>(catalog_->ingest, nullptr, catalog::NewVersionPolicy::kSend);
    sink_ = std::make_unique<pull::PullSink>(*catalog_sink_);
    ledger_ = std::make_unique<catalog::PullLedger>(catalog_->db());
    pacs_.deliver = [this](const std::string& study, const std::string& sop) {
      ReceivedObject o;
      const std::string bytes = dicom(sop);
      o.stored = store(bytes);
      o.scan = *prescan_bytes(bytes, PrescanLimits{});
      o.scan.study_uid = study;
      o.calling_ae = "OLDPACS";
      o.peer = "127.0.0.1:5000";
      ASSERT_TRUE(sink_->object_received(o).ok());
    };
    make_poller();
  }
  // A poller over the same catalog: a restart.
  void make_poller() {
    config::PullSource s;
    s.name = "old";
    s.ae_title = "OLDPACS";
    s.host = "127.0.0.1";
    s.every = minutes(15);
    s.retry_initial = seconds(30);
    s.retry_max = minutes(5);
    s.modalities = modalities_;
    poller_ = std::make_unique<pull::Poller>(
        std::vector<config::PullSource>{s}, "DIRGW", "UTC", *ledger_, *sink_, clock_,
        [this](const config::PullSource&,
               const std::string& calling) -> Result<std::unique_ptr<pull::QrSession>> {
          EXPECT_EQ(calling, "DIRGW");
          if (pacs_.refuse_connect) return make_error(ErrorCode::kNetwork, "connection refused");
          return std::unique_ptr<pull::QrSession>(std::make_unique<FakeSession>(pacs_));
        });
  }
  void TearDown() override {
    poller_.reset();
    TempCatalog::TearDown();
  }
  std::int64_t held(const std::string& study) { return *ledger_->held_instances(study); }
  std::string source_of(const std::string& study) {
    auto s = catalog_->queries.study(study);
    return s.ok() && s->has_value() && !(*s)->instances.empty() ? (*s)->instances.front().source
                                                                : "";
  }

  FakePacs pacs_;
  std::vector<std::string> modalities_;  // the source's modality filter
  std::unique_ptr<CatalogSink> catalog_sink_;
  std::unique_ptr<pull::PullSink> sink_;
  std::unique_ptr<catalog::PullLedger> ledger_;
  std::unique_ptr<pull::Poller> poller_;
};

TEST_F(PullPollerTest, PullsEachStudyOnceAndANewStudyOnTheNextPoll) {
  pacs_.studies["1.2.3.1"] = {"1.2.3.1.1", "1.2.3.1.2"};
  pacs_.studies["1.2.3.2"] = {"1.2.3.2.1"};
  const TimePoint next = poller_->step();
  EXPECT_EQ(next, clock_.now() + minutes(15));
  EXPECT_EQ(pacs_.moves, 2);
  EXPECT_EQ(held("1.2.3.1"), 2);
  EXPECT_EQ(source_of("1.2.3.1"), "pull:old");
  clock_.advance(minutes(15));
  poller_->step();
  EXPECT_EQ(pacs_.finds, 2);
  EXPECT_EQ(pacs_.moves, 2);  // nothing asked for twice
  pacs_.studies["1.2.3.3"] = {"1.2.3.3.1"};
  clock_.advance(minutes(15));
  poller_->step();
  EXPECT_EQ(pacs_.moves, 3);
  const auto st = poller_->status();
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].studies_complete, 3);
  EXPECT_EQ(st[0].studies_incomplete, 0);
  EXPECT_EQ(st[0].objects_stored, 4u);
  EXPECT_NE(st[0].last_ok_at, 0);
}

// Orthanc answers once per Patient ID a study arrived with: a study that grows is still seen to
// grow (each answer's count alone was held against the whole study).
TEST_F(PullPollerTest, AStudyAnsweredOncePerPatientIsOneStudy) {
  pacs_.answer_per_patient = true;
  pacs_.studies["1.2.3.1"] = {"1.2.3.1.1", "1.2.3.1.2", "1.2.3.1.3"};
  poller_->step();
  EXPECT_EQ(pacs_.moves, 1);
  EXPECT_EQ(held("1.2.3.1"), 3);
  pacs_.studies["1.2.3.1"].push_back("1.2.3.1.4");
  pacs_.studies["1.2.3.1"].push_back("1.2.3.1.5");
  clock_.advance(minutes(15));
  poller_->step();
  EXPECT_EQ(pacs_.moves, 2);
  EXPECT_EQ(held("1.2.3.1"), 5);
}

TEST_F(PullPollerTest, AStudyThatGrewOnThePacsIsPulledAgain) {
  pacs_.studies["1.2.3.1"] = {"1.2.3.1.1"};
  poller_->step();
  pacs_.studies["1.2.3.1"].push_back("1.2.3.1.2");
  clock_.advance(minutes(15));
  poller_->step();
  EXPECT_EQ(pacs_.moves, 2);
  EXPECT_EQ(held("1.2.3.1"), 2);
  EXPECT_EQ(poller_->status()[0].objects_duplicate, 1u);  // the first instance came again
}

TEST_F(PullPollerTest, WithoutCountsTheStudyIsCountedBySeriesAndImageQueries) {
  pacs_.report_counts = false;
  pacs_.studies["1.2.3.1"] = {"1.2.3.1.1", "1.2.3.1.2"};
  poller_->step();
  clock_.advance(minutes(15));
  poller_->step();
  EXPECT_EQ(pacs_.moves, 1);
  EXPECT_EQ(pacs_.contents, 2);
}

TEST_F(PullPollerTest, FailedMovesAreRetriedWithBackoffAndShown) {
  pacs_.studies["1.2.3.1"] = {"1.2.3.1.1"};
  pacs_.fail_moves = true;
  poller_->step();
  auto st = poller_->status()[0];
  EXPECT_EQ(st.studies_incomplete, 1);
  ASSERT_EQ(st.incomplete.size(), 1u);
  EXPECT_EQ(st.incomplete[0].held, 0);
  EXPECT_EQ(st.incomplete[0].reported, 1);
  EXPECT_NE(st.last_error.find("association"), std::string::npos);
  // The poll failed too: polled again after the poll backoff, the study after its own.
  pacs_.fail_moves = false;
  clock_.advance(seconds(10));
  poller_->step();
  EXPECT_EQ(pacs_.moves, 1);
  clock_.advance(seconds(30));
  poller_->step();
  EXPECT_EQ(pacs_.moves, 2);
  EXPECT_EQ(held("1.2.3.1"), 1);
  EXPECT_EQ(poller_->status()[0].studies_incomplete, 0);
}

// A study left incomplete whose date has left the window and that the PACS then deleted was
// asked for at retry.max for ever. Now it is asked for by UID; three answers of no match in a
// row and it is given up ('gone'), shown, and not asked for again.
TEST_F(PullPollerTest, AStudyDeletedOnThePacsIsGivenUpAfterThreeQueriesByUid) {
  pacs_.studies["1.2.3.1"] = {"1.2.3.1.1", "1.2.3.1.2"};
  pacs_.not_sent = {"1.2.3.1.2"};
  poller_->step();
  EXPECT_EQ(pacs_.moves, 1);
  EXPECT_EQ(poller_->status()[0].studies_incomplete, 1);
  pacs_.out_of_window.insert("1.2.3.1");
  pacs_.studies.erase("1.2.3.1");
  for (int i = 1; i <= pull::kNotFoundToGone; ++i) {
    clock_.advance(minutes(16));  // past every: a poll; past retry.max: the study is due
    poller_->step();
    EXPECT_EQ(pacs_.finds_by_uid, i);
    auto row = ledger_->study("old", "1.2.3.1");
    ASSERT_TRUE(row.ok() && row->has_value());
    EXPECT_EQ((*row)->not_found, i);
    if (i < pull::kNotFoundToGone) {
      EXPECT_EQ((*row)->state, "incomplete");
      EXPECT_NE((*row)->last_error.find("no match to a query by this study's UID (" +
                                        std::to_string(i) + " of 3"),
                std::string::npos)
          << (*row)->last_error;
    } else {
      EXPECT_EQ((*row)->state, "gone");
      EXPECT_NE((*row)->last_error.find("no longer holds this study"), std::string::npos);
    }
  }
  EXPECT_EQ(pacs_.moves, 1);  // never asked to move a study it does not answer for
  auto st = poller_->status()[0];
  EXPECT_EQ(st.studies_incomplete, 0);
  EXPECT_EQ(st.studies_gone, 1);
  EXPECT_TRUE(st.incomplete.empty());
  clock_.advance(hours(2));
  poller_->step();
  EXPECT_EQ(pacs_.finds_by_uid, pull::kNotFoundToGone);
  EXPECT_EQ(pacs_.moves, 1);
  EXPECT_EQ(held("1.2.3.1"), 1);  // what arrived is kept
}

// One no-match answer then the study again (a PACS busy re-indexing): the count starts over.
TEST_F(PullPollerTest, AStudyFoundAgainByUidIsRetrievedAndItsCountStartsOver) {
  pacs_.studies["1.2.3.1"] = {"1.2.3.1.1", "1.2.3.1.2"};
  pacs_.not_sent = {"1.2.3.1.2"};
  poller_->step();
  pacs_.out_of_window.insert("1.2.3.1");
  const auto kept = pacs_.studies["1.2.3.1"];
  pacs_.studies.erase("1.2.3.1");
  clock_.advance(minutes(16));
  poller_->step();
  EXPECT_EQ((*ledger_->study("old", "1.2.3.1"))->not_found, 1);
  pacs_.studies["1.2.3.1"] = kept;
  pacs_.not_sent.clear();
  clock_.advance(minutes(16));
  poller_->step();
  EXPECT_EQ(pacs_.moves, 2);
  auto row = *ledger_->study("old", "1.2.3.1");
  EXPECT_EQ(row->state, "complete");
  EXPECT_EQ(row->not_found, 0);
  EXPECT_EQ(held("1.2.3.1"), 2);
}

// A study out of the window that lost an instance on the PACS (deleted there) is complete with
// what it holds now: judged by the PACS's answer by UID, not by its count of before.
TEST_F(PullPollerTest, AStudyOutOfTheWindowIsJudgedByWhatThePacsHoldsNow) {
  pacs_.studies["1.2.3.1"] = {"1.2.3.1.1", "1.2.3.1.2"};
  pacs_.not_sent = {"1.2.3.1.2"};
  poller_->step();
  EXPECT_EQ(poller_->status()[0].studies_incomplete, 1);
  pacs_.out_of_window.insert("1.2.3.1");
  pacs_.studies["1.2.3.1"] = {"1.2.3.1.1"};
  clock_.advance(minutes(16));
  poller_->step();
  EXPECT_EQ(pacs_.moves, 1);
  EXPECT_EQ((*ledger_->study("old", "1.2.3.1"))->state, "complete");
  EXPECT_EQ(poller_->status()[0].studies_incomplete, 0);
}

TEST_F(PullPollerTest, AMoveCutByOurOwnStopIsNoFailureAndIsAskedForAgainAtOnce) {
  pacs_.studies["1.2.3.1"] = {"1.2.3.1.1"};
  pacs_.fail_moves = true;  // the receiver's bounded stop cut the PACS's sub-association
  pacs_.during_move = [this] { poller_->request_stop(); };
  poller_->step();
  auto row = ledger_->study("old", "1.2.3.1");
  ASSERT_TRUE(row.ok() && row->has_value());
  EXPECT_EQ((*row)->state, "incomplete");
  EXPECT_EQ((*row)->failures, 0);
  EXPECT_EQ((*row)->next_try_at, 0);
  auto src = ledger_->source("old");
  ASSERT_TRUE(src.ok());
  EXPECT_EQ(src->failures, 0);
  EXPECT_EQ(src->next_poll_at, to_epoch_ms(clock_.now()));
  // The next start polls at once and asks for the study again.
  pacs_.fail_moves = false;
  pacs_.during_move = nullptr;
  poller_->stop();
  make_poller();
  poller_->step();
  EXPECT_EQ(pacs_.moves, 2);
  EXPECT_EQ(held("1.2.3.1"), 1);
}

TEST_F(PullPollerTest, AnUnreachablePacsIsRetriedWithBackoff) {
  pacs_.refuse_connect = true;
  const TimePoint next = poller_->step();
  EXPECT_EQ(next, clock_.now() + seconds(30));
  EXPECT_NE(poller_->status()[0].last_error.find("connection refused"), std::string::npos);
  clock_.advance(seconds(30));
  EXPECT_EQ(poller_->step(), clock_.now() + seconds(60));
}

TEST_F(PullPollerTest, ObjectsNotAskedForPassUnchanged) {
  sink_->expect("OLDPACS", "1.2.3.9", "old");
  ReceivedObject o;
  const std::string bytes = dicom();
  o.stored = store(bytes);
  o.scan = *prescan_bytes(bytes, PrescanLimits{});
  o.calling_ae = "OLDPACS";  // the right PACS, but another study: a push
  ASSERT_TRUE(sink_->object_received(o).ok());
  EXPECT_EQ(source_of(std::string(dirgw::test::kStudy)), "dicom:OLDPACS");
  EXPECT_EQ(sink_->done("OLDPACS", "1.2.3.9").stored, 0u);
}

// A study the modality filter leaves out is traced once (a row counted as skipped, one log
// line), never retrieved; the same study with a modality the filter takes is.
TEST_F(PullPollerTest, AStudyTheModalityFilterLeavesOutIsTracedOnce) {
  modalities_ = {"CT"};
  poller_->stop();
  make_poller();
  pacs_.studies["1.2.3.1"] = {"1.2.3.1.1"};  // the fake PACS answers modality OT
  poller_->step();
  clock_.advance(minutes(16));
  poller_->step();
  EXPECT_EQ(pacs_.moves, 0);
  auto row = ledger_->study("old", "1.2.3.1");
  ASSERT_TRUE(row.ok() && row->has_value());
  EXPECT_EQ((*row)->state, "skipped");
  EXPECT_EQ((*row)->last_error, "modalities OT not in the source's modalities");
  auto st = poller_->status()[0];
  EXPECT_EQ(st.studies_skipped, 1);
  EXPECT_EQ(st.studies_incomplete, 0);
  modalities_ = {"CT", "OT"};
  poller_->stop();
  make_poller();
  clock_.advance(minutes(16));
  poller_->step();
  EXPECT_EQ(pacs_.moves, 1);
  EXPECT_EQ((*ledger_->study("old", "1.2.3.1"))->state, "complete");
}

// A PACS may give its final C-MOVE answer before the last objects of its sub-association have
// arrived: such an object is still the pull's (not a push), for a while; then a push again.
TEST_F(PullPollerTest, AnObjectArrivingJustAfterTheFinalAnswerIsStillThePulls) {
  pull::PullSink sink(*catalog_sink_, std::chrono::milliseconds(300));
  const std::string study(dirgw::test::kStudy);
  auto object = [&](const std::string& sop) {
    ReceivedObject o;
    const std::string bytes = dicom(sop);
    o.stored = store(bytes);
    o.scan = *prescan_bytes(bytes, PrescanLimits{});
    o.calling_ae = "OLDPACS";
    return o;
  };
  sink.expect("OLDPACS", study, "old");
  ASSERT_TRUE(sink.object_received(object("1.2.3.4.1")).ok());
  EXPECT_EQ(sink.done("OLDPACS", study).stored, 1u);
  ASSERT_TRUE(sink.object_received(object("1.2.3.4.2")).ok());  // late
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  ASSERT_TRUE(sink.object_received(object("1.2.3.4.3")).ok());  // a push, later
  std::map<std::string, std::string> sources;
  auto detail = catalog_->queries.study(study);
  ASSERT_TRUE(detail.ok() && detail->has_value());
  for (const auto& i : (*detail)->instances) sources[i.sop_instance_uid] = i.source;
  EXPECT_EQ(sources["1.2.3.4.1"], "pull:old");
  EXPECT_EQ(sources["1.2.3.4.2"], "pull:old");
  EXPECT_EQ(sources["1.2.3.4.3"], "dicom:OLDPACS");
}

}  // namespace
}  // namespace dirgw::ingest::test
