// The control commands against a real catalog in a temporary directory; the daemon's live facts,
// the audit sink and the forwarders' wake-up are fakes the test reads back.
#include "control/commands/commands.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "catalog/catalog.h"
#include "catalog/sqlite/sqlite.h"
#include "common/files.h"
#include "fakes/admit.h"
#include "fakes/fake_clock.h"
#include "verify/retention.h"

namespace dirgw::control::commands {
namespace {

namespace fs = std::filesystem;
using std::chrono::hours;

constexpr const char* kStudy = "1.2.826.0.1.3680043.10.99.1";
constexpr const char* kOther = "1.2.826.0.1.3680043.10.99.2";
constexpr const char* kHealthNumber = "1234567897";  // synthetic; passes the check digit

class CommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dirgw-commands-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    config_.state_dir = dir_;
    config_.facility_name = "Test General";
    config::Destination d;
    d.name = "repo";
    d.url = "https://repo.example.org/dicom-web";
    config_.destinations.push_back(d);
    config_.retention.spool_floor = 0;  // no spool warnings unless a test wants them
    auto c = catalog::Catalog::open(dir_ / "c.db", {"repo"}, clock_);
    ASSERT_TRUE(c.ok()) << c.error().to_string();
    catalog_ = std::move(c).value();
    auto s = ingest::Spool::open(dir_ / "spool");
    ASSERT_TRUE(s.ok());
    spool_ = std::make_unique<ingest::Spool>(std::move(s).value());
    auto audit = [this](audit::Event e) {
      audited_.push_back(e);
      ASSERT_TRUE(catalog_->audit.audit(std::move(e)).ok());
    };
    consent_service_ = std::make_unique<policy::ConsentService>(config_, catalog_->consent, audit,
                                                                [this] { ++wakes_; });
    live_.forwarders.resize(1);
    live_.started_at_ms = to_epoch_ms(clock_.now());
    ctx_ = std::make_unique<Context>(Context{.config = config_,
                                             .queries = catalog_->queries,
                                             .operators = catalog_->operators,
                                             .policy = catalog_->policy,
                                             .consent = catalog_->consent,
                                             .audit_log = catalog_->audit,
                                             .consent_service = *consent_service_,
                                             .spool = *spool_,
                                             .export_context = {},
                                             .work_available = [this] { ++wakes_; },
                                             .audit = audit,
                                             .audit_verified = [this] { ++anchors_; },
                                             .live = [this] { return live_; }});
  }

  void TearDown() override {
    ctx_.reset();
    consent_service_.reset();
    catalog_.reset();
    fs::remove_all(dir_);
  }

  json run(const json& request) { return handle(*ctx_, request, peer_); }

  // An instance of `study` whose object is really in the spool.
  std::string seed(const std::string& study, int n) {
    const auto temp = spool_->new_temp_path();
    EXPECT_TRUE(write_file_durably(temp, study + " object " + std::to_string(n), 0640).ok());
    auto stored = spool_->commit(temp, 1 << 20);
    EXPECT_TRUE(stored.ok());
    catalog::NewInstance in;
    in.study_uid = study;
    in.series_uid = study + ".1";
    in.sop_instance_uid = study + ".1." + std::to_string(n);
    in.sop_class_uid = "1.2.840.10008.5.1.4.1.1.2";
    in.transfer_syntax = "1.2.840.10008.1.2.1";
    in.modality = "CT";
    in.sha256 = stored->sha256;
    in.size = stored->size;
    in.calling_ae = "PACS1";
    EXPECT_TRUE(catalog_->ingest.record_instance(in).ok());
    return stored->sha256;
  }
  void make_ready() {
    clock_.advance(hours(1));
    dirgw::testing::promote_ready(*catalog_, to_epoch_ms(clock_.now()));
  }
  // `derived`: a copy recorded for the study's first instance and each destination.
  void quarantine(const std::string& code,
                  const std::optional<ingest::StoredObject>& derived = {}) {
    clock_.advance(hours(1));
    ASSERT_TRUE(catalog_->ingest.promote_stable(to_epoch_ms(clock_.now())).ok());
    auto work = catalog_->policy.policy_work(100);
    ASSERT_TRUE(work.ok());
    for (const auto& w : *work) {
      std::vector<catalog::PolicyDecision> decisions;
      std::vector<catalog::DerivedObject> copies;
      for (const auto& d : w.destinations) {
        decisions.push_back({d, catalog::StudyState::kQuarantined, code});
        if (derived)
          copies.push_back(
              {w.instances.front().id, d, derived->sha256, derived->size, "coerced", ""});
      }
      ASSERT_TRUE(catalog_->policy
                      .record_policy(w.study_id, {},
                                     {{w.instances.front().sop_instance_uid, code, "(0010,0020)",
                                       "required attribute missing"}},
                                     decisions, copies)
                      .ok());
    }
  }
  std::string state(const std::string& study) {
    auto r = run({{"cmd", "study"}, {"study_uid", study}});
    return r["destinations"][0]["state"];
  }

  fs::path dir_;
  dirgw::testing::FakeClock clock_;
  config::Config config_;
  std::unique_ptr<catalog::Catalog> catalog_;
  std::unique_ptr<ingest::Spool> spool_;
  std::unique_ptr<policy::ConsentService> consent_service_;
  std::unique_ptr<Context> ctx_;
  LiveFacts live_;
  std::vector<audit::Event> audited_;
  int wakes_ = 0, anchors_ = 0;
  Peer peer_{1, static_cast<unsigned>(::getuid()), static_cast<unsigned>(::getgid())};
};

// --- dispatch ---------------------------------------------------------------------------------

TEST_F(CommandsTest, PingAnswersOk) { EXPECT_EQ(run({{"cmd", "ping"}}), json({{"ok", true}})); }

TEST_F(CommandsTest, UnknownCommandIsNamedAndCut) {
  EXPECT_EQ(run({{"cmd", "nope"}}), json({{"ok", false}, {"error", "unknown command 'nope'"}}));
  const auto r = run({{"cmd", std::string(100, 'x')}});
  EXPECT_EQ(r["error"], "unknown command '" + std::string(32, 'x') + "'");
}

TEST_F(CommandsTest, CallersTheAccountsRefuseAreDenied) {
  Accounts nobody;
  nobody.daemon_uid = 12345;
  const Peer stranger{7, 4242, 4242};
  EXPECT_EQ(handle(*ctx_, {{"cmd", "ping"}}, stranger, nobody),
            json({{"ok", false},
                  {"error", "permission denied: run as root or as a member of the dirgw group"}}));
  Accounts daemon_user = nobody;
  daemon_user.daemon_uid = 4242;
  EXPECT_EQ(handle(*ctx_, {{"cmd", "ping"}}, stranger, daemon_user), json({{"ok", true}}));
}

// --- sources ----------------------------------------------------------------------------------

TEST_F(CommandsTest, SourcesListsPullSourcesWithTheirIncompleteStudies) {
  ingest::pull::PullStatus p;
  p.name = "old-pacs";
  p.pacs = "OLDPACS@10.0.0.9:104";
  p.last_poll_at = p.last_ok_at = to_epoch_ms(clock_.now());
  p.studies_complete = 3;
  p.studies_incomplete = 1;
  p.objects_stored = 7;
  p.incomplete.push_back({"1.2.3", 12, 40, 2, 0, "holding 12 of 40 instances after C-MOVE"});
  live_.pulls.push_back(p);
  const json r = run({{"cmd", "sources"}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  ASSERT_EQ(r["pulls"].size(), 1u);
  const json& j = r["pulls"][0];
  EXPECT_EQ(j["kind"], "pull");
  EXPECT_EQ(j["pacs"], "OLDPACS@10.0.0.9:104");
  EXPECT_EQ(j["last_ok_at"], format_utc_ms(p.last_ok_at));
  EXPECT_TRUE(j["next_poll_at"].is_null());
  EXPECT_EQ(j["studies_complete"], 3);
  EXPECT_EQ(j["objects_stored"], 7);
  EXPECT_EQ(j["incomplete"][0]["held"], 12);
  EXPECT_EQ(j["incomplete"][0]["reported"], 40);
  EXPECT_TRUE(r["folders"].empty());
}

// --- status -----------------------------------------------------------------------------------

TEST_F(CommandsTest, StatusShowsCatalogAndLiveFacts) {
  seed(kStudy, 1);
  seed(kStudy, 2);
  ASSERT_TRUE(
      catalog_->ingest.record_refusal({0, "dicom", "STRANGER", "10.0.0.9", "not allowed"}).ok());
  live_.reconciliation.adopted = 2;
  live_.reconciliation.temporaries = 1;
  live_.dicom = DicomFacts{11112, 1, 5, 1, 9, 2, 1};
  const json r = status(*ctx_);
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_FALSE(r["version"].get<std::string>().empty());
  EXPECT_EQ(r["pid"], ::getpid());
  EXPECT_EQ(r["started_at"], format_utc_ms(live_.started_at_ms));
  EXPECT_EQ(r["facility"], "Test General");
  EXPECT_EQ(r["catalog"]["studies"], 1);
  EXPECT_EQ(r["catalog"]["instances"], 2);
  EXPECT_EQ(r["startup"],
            json({{"temporaries_removed", 1}, {"adopted", 2}, {"quarantined", 0}, {"missing", 0}}));
  EXPECT_EQ(r["ingest"]["dicom"]["port"], 11112);
  EXPECT_EQ(r["ingest"]["dicom"]["associations"], 5);
  EXPECT_EQ(r["ingest"]["dicom"]["stored"], 9);
  EXPECT_EQ(r["spool"]["below_floor"], false);
  ASSERT_EQ(r["destinations"].size(), 1u);
  const auto& d = r["destinations"][0];
  EXPECT_EQ(d["name"], "repo");
  EXPECT_EQ(d["url"], "https://repo.example.org/dicom-web");
  EXPECT_EQ(d["pending_instances"], 2);
  EXPECT_EQ(d["circuit"], "closed");
  EXPECT_TRUE(d["circuit_probe_at"].is_null());
  EXPECT_TRUE(d["last_success_at"].is_null());
  EXPECT_EQ(r["warnings"], json::array());
  EXPECT_EQ(r["refusals"]["count"], 1);
  EXPECT_EQ(r["refusals"]["last"]["calling_ae"], "STRANGER");
  EXPECT_EQ(r["refusals"]["last"]["reason"], "not allowed");
}

TEST_F(CommandsTest, ForecastBacklogLeavesHeldStudiesOutAndShowsThemApart) {
  seed(kStudy, 1);
  seed(kStudy, 2);
  seed(kOther, 1);
  make_ready();
  ASSERT_EQ(run({{"cmd", "hold"}, {"study_uid", kStudy}, {"reason", "consent"}})["changed"], 1);
  ctx_->day_report = &catalog_->day_report;
  const json r = status(*ctx_);
  ASSERT_TRUE(r["ok"]) << r.dump();
  const auto& d = r["destinations"][0];
  EXPECT_EQ(d["pending_instances"], 3);
  EXPECT_EQ(d["held_instances"], 2);
  ASSERT_TRUE(d.contains("forecast")) << d.dump();
  EXPECT_EQ(d["forecast"]["backlog_instances"], 1);
  EXPECT_EQ(d["forecast"]["held_instances"], 2);
}

// retention.report_days through the CLI's commands: purge --dry-run lists the finished study
// whose rows would go, purge removes its files and rows, and its day's report is unchanged.
TEST_F(CommandsTest, PurgePrunesFinishedRowsAndTheDaysReportStaysTheSame) {
  const std::string day = format_utc(clock_.now()).substr(0, 10);
  seed(kStudy, 1);
  seed(kStudy, 2);
  seed(kOther, 1);  // stays SENT (not verified): its rows stay
  make_ready();
  auto due = catalog_->delivery.due_deliveries("repo", to_epoch_ms(clock_.now()), 100, 1 << 30);
  ASSERT_TRUE(due.ok());
  auto begun = catalog_->delivery.begin_send("repo", *due);
  ASSERT_TRUE(begun.ok());
  begun->permit.release();
  std::vector<catalog::DeliveryUpdate> up;
  for (const auto& d : *due) up.push_back({d.instance_id, catalog::DeliveryResult::kDelivered});
  ASSERT_TRUE(catalog_->delivery.record_deliveries("repo", up).ok());
  auto sent = catalog_->verify.due_studies("repo", to_epoch_ms(clock_.now()),
                                           to_epoch_ms(clock_.now()), 10);
  ASSERT_TRUE(sent.ok());
  for (const auto& st : *sent) {
    if (st.study_uid != kStudy) continue;
    std::vector<catalog::VerifyFinding> findings;
    for (const auto& i : *catalog_->verify.sent_instances(st.study_id, "repo"))
      findings.push_back({i.instance_id, catalog::VerifyVerdict::kListed});
    ASSERT_TRUE(catalog_->verify.record_verification("repo", st.study_id, findings, 3).ok());
  }
  verify::Retention retention(config_.retention, catalog_->verify, *spool_, clock_);
  ctx_->retention = &retention;
  ctx_->day_report = &catalog_->day_report;
  ctx_->pruner = &catalog_->pruner;
  json before = run({{"cmd", "report"}, {"day", day}});
  ASSERT_TRUE(before["ok"]) << before.dump();

  // Past keep_after_verified: the files go; the rows stay for the report period.
  clock_.advance(hours(24 * 8));
  json purged = run({{"cmd", "purge"}});
  ASSERT_TRUE(purged["ok"]) << purged.dump();
  EXPECT_EQ(purged["objects"], 2);
  EXPECT_EQ(purged["rows"], json({{"studies", 0}, {"instances", 0}, {"refusals", 0}}));

  clock_.advance(hours(24 * 400));
  const json dry = run({{"cmd", "purge"}, {"dry_run", true}});
  ASSERT_TRUE(dry["ok"]) << dry.dump();
  EXPECT_EQ(dry["objects"], 0);
  EXPECT_EQ(dry["rows"]["report_days"], 400);
  EXPECT_EQ(dry["rows"]["studies"], 1);
  EXPECT_EQ(dry["rows"]["instances"], 2);
  ASSERT_EQ(dry["rows"]["list"].size(), 1u);
  EXPECT_EQ(dry["rows"]["list"][0]["study_uid"], kStudy);
  EXPECT_TRUE(run({{"cmd", "study"}, {"study_uid", kStudy}})["ok"]);  // dry: nothing went
  purged = run({{"cmd", "purge"}});
  ASSERT_TRUE(purged["ok"]) << purged.dump();
  EXPECT_EQ(purged["rows"], json({{"studies", 1}, {"instances", 2}, {"refusals", 0}}));
  EXPECT_EQ(audited_.back().detail["rows"]["studies"], 1);
  EXPECT_FALSE(run({{"cmd", "study"}, {"study_uid", kStudy}})["ok"]);
  EXPECT_TRUE(run({{"cmd", "study"}, {"study_uid", kOther}})["ok"]);

  json after = run({{"cmd", "report"}, {"day", day}});
  ASSERT_TRUE(after["ok"]) << after.dump();
  before["report"].erase("generated_at");
  after["report"].erase("generated_at");
  EXPECT_EQ(after["report"], before["report"]);
  EXPECT_EQ(after["csv"], before["csv"]);
  EXPECT_EQ(after["report"]["destinations"][0]["verified"], 2);
  EXPECT_EQ(after["report"]["destinations"][0]["sent"], 1);
}

TEST_F(CommandsTest, PurgeDryRunListsTheRowsThatWouldGo) {
  ctx_->day_report = &catalog_->day_report;
  ctx_->pruner = &catalog_->pruner;
  verify::Retention retention(config_.retention, catalog_->verify, *spool_, clock_);
  ctx_->retention = &retention;
  const json dry = run({{"cmd", "purge"}, {"dry_run", true}});
  ASSERT_TRUE(dry["ok"]) << dry.dump();
  EXPECT_EQ(dry["rows"]["studies"], 0);
  EXPECT_EQ(dry["rows"]["list"], json::array());
  config_.retention.report_days = 0;  // kept for ever: nothing to list
  EXPECT_TRUE(run({{"cmd", "purge"}, {"dry_run", true}})["rows"].is_null());
}

TEST_F(CommandsTest, StatusWithoutDicomReceiverHasNoIngestSection) {
  EXPECT_FALSE(status(*ctx_).contains("ingest"));
}

// A spool directory whose fsync failed keeps its objects' slots until a restart: status says so.
TEST_F(CommandsTest, StatusWarnsOfSlotsKeptAfterAFailedDirectoryFlush) {
  auto slot = spool_->acquire_slot();
  ASSERT_TRUE(slot.ok());
  ASSERT_TRUE(write_file_durably(*slot, "kept object", 0640).ok());
  auto stored = spool_->commit(*slot, 1 << 20);
  ASSERT_TRUE(stored.ok());
  const fs::path shard = stored->path.parent_path(), away = shard.string() + ".away";
  fs::rename(shard, away);  // its fsync cannot even open it
  EXPECT_FALSE(spool_->settle().ok());
  fs::rename(away, shard);
  const std::string warnings = status(*ctx_)["warnings"].dump();
  EXPECT_NE(warnings.find("spool: a directory flush failed ("), std::string::npos) << warnings;
  EXPECT_NE(warnings.find("1 received object(s) kept in spool/tmp until dirgwd restarts"),
            std::string::npos)
      << warnings;
}

TEST_F(CommandsTest, StatusWarningsComeInTheirOrder) {
  config_.retention.spool_floor = std::uint64_t{1} << 62;  // no disk has that much free
  live_.host_warnings = {"system clock is not synchronised (NTP): audit times may be wrong"};
  live_.audit_forwarder_error = "connection refused";
  live_.audit_broken = "entry 3 altered";
  live_.forwarders[0].circuit = scheduler::Circuit::kOpen;
  live_.forwarders[0].consecutive_failures = 5;
  live_.forwarders[0].open_until = clock_.now() + hours(1);
  const json r = status(*ctx_);
  EXPECT_EQ(r["spool"]["below_floor"], true);
  EXPECT_EQ(r["warnings"],
            json({"spool below its free-space floor: new objects are refused (A700)",
                  "system clock is not synchronised (NTP): audit times may be wrong",
                  "audit repository: connection refused (entries wait in the trail)",
                  "audit trail does not verify (entry 3 altered): run dirgw audit verify",
                  "destination repo: circuit open after 5 failed requests in a row"}));
  EXPECT_EQ(r["destinations"][0]["circuit"], "open");
  EXPECT_EQ(r["destinations"][0]["circuit_failures"], 5);
  EXPECT_EQ(r["destinations"][0]["circuit_probe_at"], format_utc(clock_.now() + hours(1)));
}

TEST_F(CommandsTest, StatusSaysWhenAuthenticationFailsAndWhenPolicyCannotRecord) {
  live_.forwarders[0].circuit = scheduler::Circuit::kOpen;
  live_.forwarders[0].consecutive_failures = 5;
  live_.forwarders[0].auth_failed = true;
  live_.policy_failures = 3;
  live_.policy_error = "cannot record a policy decision: catalog error";
  const json r = status(*ctx_);
  EXPECT_EQ(r["destinations"][0]["authentication_failed"], true);
  const std::string warnings = r["warnings"].dump();
  EXPECT_NE(warnings.find("destination repo: authentication failed: sending paused"),
            std::string::npos)
      << warnings;
  EXPECT_EQ(warnings.find("circuit open after"), std::string::npos) << "said once, not twice";
  EXPECT_NE(warnings.find("policy decisions cannot be recorded (3 rounds in a row)"),
            std::string::npos)
      << warnings;
}

// --- studies / study --------------------------------------------------------------------------

TEST_F(CommandsTest, StudiesListsWithFilters) {
  seed(kStudy, 1);
  seed(kOther, 1);
  auto all = run({{"cmd", "studies"}});
  ASSERT_TRUE(all["ok"]);
  EXPECT_EQ(all["studies"].size(), 2u);
  EXPECT_EQ(all["studies"][0]["destinations"]["repo"], "RECEIVING");
  EXPECT_EQ(run({{"cmd", "studies"}, {"limit", 1}})["studies"].size(), 1u);
  EXPECT_EQ(run({{"cmd", "studies"}, {"limit", -5}})["studies"].size(), 1u);  // clamped to 1
  EXPECT_EQ(run({{"cmd", "studies"}, {"state", "FAILED"}})["studies"].size(), 0u);
}

TEST_F(CommandsTest, StudyShowsInstancesDeliveriesAndRounds) {
  const std::string sha = seed(kStudy, 1);
  auto r = run({{"cmd", "study"}, {"study_uid", kStudy}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["study_uid"], kStudy);
  EXPECT_EQ(r["instances"], 1);
  ASSERT_EQ(r["instance_list"].size(), 1u);
  EXPECT_EQ(r["instance_list"][0]["object"], sha);
  EXPECT_EQ(r["instance_list"][0]["calling_ae"], "PACS1");
  EXPECT_EQ(r["instance_list"][0]["deliveries"][0]["destination"], "repo");
  EXPECT_EQ(r["destinations"][0]["destination"], "repo");
  EXPECT_TRUE(r.contains("rounds"));
  EXPECT_EQ(run({{"cmd", "study"}, {"study_uid", "9.9.9"}}),
            json({{"ok", false}, {"error", "no study with that UID"}}));
}

// --- retry / hold / release -------------------------------------------------------------------

TEST_F(CommandsTest, HoldAndReleaseChangeStateWakeAndAudit) {
  seed(kStudy, 1);
  make_ready();
  auto held = run({{"cmd", "hold"}, {"study_uid", kStudy}, {"reason", "check"}});
  EXPECT_EQ(held, json({{"ok", true}, {"changed", 1}, {"refused", json::array()}, {"error", ""}}));
  EXPECT_EQ(state(kStudy), "HELD");
  EXPECT_EQ(wakes_, 1);
  ASSERT_EQ(audited_.size(), 1u);
  EXPECT_EQ(audited_[0].type, audit::EventType::kOperatorAction);
  EXPECT_EQ(audited_[0].outcome, "success");
  EXPECT_EQ(audited_[0].study_uid, kStudy);
  EXPECT_EQ(audited_[0].detail["action"], "hold");
  EXPECT_EQ(audited_[0].actor, actor_of(peer_));
  auto released = run({{"cmd", "release"}, {"study_uid", kStudy}, {"destination", "repo"}});
  EXPECT_EQ(released["changed"], 1);
  EXPECT_EQ(state(kStudy), "READY");
}

TEST_F(CommandsTest, ActionRefusedByTheLifeCycleSaysWhy) {
  seed(kStudy, 1);
  make_ready();
  auto r = run({{"cmd", "release"}, {"study_uid", kStudy}});
  EXPECT_EQ(r["ok"], false);
  EXPECT_EQ(r["changed"], 0);
  ASSERT_EQ(r["refused"].size(), 1u);
  EXPECT_EQ(r["error"], r["refused"][0]);
  EXPECT_EQ(wakes_, 0);
  ASSERT_EQ(audited_.size(), 1u);
  EXPECT_EQ(audited_[0].outcome, audit::failure("refused by the life cycle"));
}

TEST_F(CommandsTest, ActionArgumentsAreChecked) {
  EXPECT_EQ(run({{"cmd", "retry"}}),
            json({{"ok", false}, {"error", "give a study UID or --failed"}}));
  EXPECT_EQ(run({{"cmd", "hold"}}), json({{"ok", false}, {"error", "give a study UID"}}));
  EXPECT_EQ(run({{"cmd", "retry"}, {"study_uid", kStudy}, {"destination", "elsewhere"}}),
            json({{"ok", false}, {"error", "no destination named 'elsewhere'"}}));
  auto none_failed = run({{"cmd", "retry"}, {"all_failed", true}});
  EXPECT_EQ(none_failed["ok"], true);
  EXPECT_EQ(none_failed["changed"], 0);
}

// --- consent / mrn_import ---------------------------------------------------------------------

TEST_F(CommandsTest, ConsentGrantShowWithdraw) {
  const std::string patient = std::string("hn:") + kHealthNumber;
  auto g = run({{"cmd", "consent"}, {"action", "grant"}, {"patient", patient}});
  EXPECT_EQ(g, json({{"ok", true}, {"studies_withdrawn", 0}, {"studies_released", 0}}));
  auto shown = run({{"cmd", "consent"}, {"action", "show"}, {"patient", patient}});
  ASSERT_TRUE(shown["ok"]) << shown.dump();
  EXPECT_EQ(shown["known"], true);
  EXPECT_EQ(shown["state"]["repo"], "granted");
  ASSERT_EQ(shown["history"].size(), 1u);
  EXPECT_EQ(shown["history"][0]["source"], "cli");
  EXPECT_EQ(shown["history"][0]["operator"], who(peer_));
  // Showing is audited, with the patient as a tag, never the value.
  const auto& viewed = audited_.back();
  EXPECT_EQ(viewed.type, audit::EventType::kPatientDataViewed);
  EXPECT_EQ(viewed.detail["command"], "consent show");
  EXPECT_FALSE(viewed.patient_ref.empty());
  EXPECT_EQ(viewed.patient_ref.find(kHealthNumber), std::string::npos);
  run({{"cmd", "consent"}, {"action", "withdraw"}, {"patient", patient}, {"scope", "repo"}});
  EXPECT_EQ(run({{"cmd", "consent"}, {"action", "show"}, {"patient", patient}})["state"]["repo"],
            "withdrawn");
}

TEST_F(CommandsTest, ConsentOfAnUnknownPatientAndBadRequests) {
  EXPECT_EQ(run({{"cmd", "consent"}, {"action", "show"}, {"patient", "hn:9876543225"}}),
            json({{"ok", true}, {"known", false}}));
  EXPECT_EQ(run({{"cmd", "consent"}, {"action", "grant"}, {"patient", "hn:1"}, {"scope", "x"}}),
            json({{"ok", false}, {"error", "no destination with that name"}}));
  EXPECT_EQ(run({{"cmd", "consent"}, {"action", "forget"}}),
            json({{"ok", false}, {"error", "consent actions: grant, withdraw, show, import"}}));
  auto bad = run({{"cmd", "consent"}, {"action", "grant"}, {"patient", "hn:1234567890"}});
  EXPECT_EQ(bad["ok"], false);
  EXPECT_FALSE(bad["error"].get<std::string>().empty());
}

TEST_F(CommandsTest, ConsentImportRejectsRowsByLineAndAudits) {
  const json rows = json::array({
      {{"line", 2}, {"health_number", kHealthNumber}, {"decision", "grant"}},
      {{"line", 3}, {"health_number", kHealthNumber}, {"decision", "maybe"}},
      {{"line", 4}, {"decision", "grant"}},
      {{"line", 5}, {"mrn", "MRN1"}, {"decision", "withdraw"}},
      {{"line", 6}, {"mrn_issuer", "LGH-MRN"}, {"mrn", "MRN1"}, {"decision", "withdraw"}},
  });
  auto r = run({{"cmd", "consent"}, {"action", "import"}, {"file", "c.csv"}, {"rows", rows}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["accepted"], 2);
  EXPECT_EQ(r["rejected"],
            json::array({{{"line", 3}, {"reason", "decision must be grant or withdraw"}},
                         {{"line", 4}, {"reason", "neither health_number nor mrn given"}},
                         {{"line", 5}, {"reason", "mrn given without mrn_issuer"}}}));
  const auto& e = audited_.back();
  EXPECT_EQ(e.type, audit::EventType::kConsentChanged);
  EXPECT_EQ(e.detail,
            json({{"source", "csv"}, {"file", "c.csv"}, {"accepted", 2}, {"rejected", 3}}));
  auto shown = run(
      {{"cmd", "consent"}, {"action", "show"}, {"patient", std::string("hn:") + kHealthNumber}});
  EXPECT_EQ(shown["history"][0]["reference"], "c.csv:2");
}

TEST_F(CommandsTest, MrnImportFillsTheTable) {
  const json rows = json::array({
      {{"line", 1}, {"mrn_issuer", "LGH-MRN"}, {"mrn", "MRN7"}, {"health_number", kHealthNumber}},
      {{"line", 2}, {"mrn_issuer", ""}, {"mrn", "MRN8"}, {"health_number", kHealthNumber}},
      {{"line", 3}, {"mrn_issuer", "LGH-MRN"}, {"mrn", "MRN9"}, {"health_number", "12"}},
  });
  auto r = run({{"cmd", "mrn_import"}, {"rows", rows}});
  ASSERT_TRUE(r["ok"]);
  EXPECT_EQ(r["accepted"], 1);
  ASSERT_EQ(r["rejected"].size(), 2u);
  EXPECT_EQ(r["rejected"][0], json({{"line", 2}, {"reason", "mrn_issuer is empty"}}));
  EXPECT_EQ(r["rejected"][1]["line"], 3);
  EXPECT_EQ(r["rejected"][1]["reason"].get<std::string>().rfind("health_number: ", 0), 0u);
  auto hn = catalog_->consent.health_number_for("LGH-MRN", "MRN7");
  ASSERT_TRUE(hn.ok() && hn->has_value());
  EXPECT_EQ(**hn, kHealthNumber);
  EXPECT_EQ(audited_.back().detail,
            json({{"action", "mrn import"}, {"accepted", 1}, {"rejected", 2}}));
}

// --- audit ------------------------------------------------------------------------------------

TEST_F(CommandsTest, AuditVerifyAndExport) {
  seed(kStudy, 1);
  make_ready();
  run({{"cmd", "hold"}, {"study_uid", kStudy}});  // one entry in the trail
  auto v = run({{"cmd", "audit"}, {"action", "verify"}});
  ASSERT_TRUE(v["ok"]) << v.dump();
  EXPECT_EQ(v["intact"], true);
  EXPECT_GE(v["checked"], 1);
  EXPECT_TRUE(v["anchor"].is_null());
  EXPECT_EQ(anchors_, 1);  // an intact trail lets the anchor move on
  auto x = run({{"cmd", "audit"}, {"action", "export"}, {"since_ms", 0}});
  ASSERT_TRUE(x["ok"]) << x.dump();
  EXPECT_GE(x["entries"], 1);
  EXPECT_NE(x["xml"].get<std::string>().find("AuditMessage"), std::string::npos);
  EXPECT_EQ(audited_.back().type, audit::EventType::kAuditExported);
  EXPECT_EQ(run({{"cmd", "audit"}, {"action", "rewrite"}}),
            json({{"ok", false}, {"error", "audit actions: verify, export"}}));
}

// --- quarantine -------------------------------------------------------------------------------

TEST_F(CommandsTest, QuarantineListShowAndRelease) {
  seed(kStudy, 1);
  quarantine("MISSING_PATIENT_ID");
  auto list = run({{"cmd", "quarantine"}, {"action", "list"}});
  ASSERT_TRUE(list["ok"]) << list.dump();
  ASSERT_EQ(list["studies"].size(), 1u);
  EXPECT_EQ(list["studies"][0]["study_uid"], kStudy);
  EXPECT_EQ(list["studies"][0]["findings"], 1);
  EXPECT_EQ(list["studies"][0]["first_reason"], "MISSING_PATIENT_ID");
  auto shown = run({{"cmd", "quarantine"}, {"action", "show"}, {"study_uid", kStudy}});
  EXPECT_EQ(shown["findings"][0]["code"], "MISSING_PATIENT_ID");
  EXPECT_EQ(shown["findings"][0]["tag"], "(0010,0020)");
  ASSERT_EQ(shown["destinations"].size(), 1u) << shown.dump();  // each one it is quarantined for
  EXPECT_EQ(shown["destinations"][0]["destination"], "repo");
  // A release after a burned-in review is for a destination that refused it on that ground only.
  auto reviewed = run({{"cmd", "quarantine"},
                       {"action", "release"},
                       {"study_uid", kStudy},
                       {"reviewed_burned_in", "repo"}});
  EXPECT_EQ(reviewed["ok"], false) << reviewed.dump();
  EXPECT_NE(reviewed["error"].get<std::string>().find("not quarantined as not de-identifiable"),
            std::string::npos)
      << reviewed.dump();
  EXPECT_EQ(audited_.back().detail, json({{"action", "release"}, {"reviewed_burned_in", "repo"}}));
  auto released = run({{"cmd", "quarantine"}, {"action", "release"}, {"study_uid", kStudy}});
  EXPECT_EQ(released["ok"], true);
  EXPECT_EQ(released["changed"], 1);
  EXPECT_EQ(wakes_, 1);
  EXPECT_EQ(audited_.back().type, audit::EventType::kQuarantineAction);
  EXPECT_EQ(audited_.back().detail, json({{"action", "release"}}));
  EXPECT_EQ(run({{"cmd", "quarantine"}, {"action", "show"}}),
            json({{"ok", false}, {"error", "give a study UID"}}));
  EXPECT_EQ(run({{"cmd", "quarantine"}, {"action", "burn"}, {"study_uid", kStudy}}),
            json({{"ok", false}, {"error", "quarantine actions: list, show, release, delete"}}));
}

TEST_F(CommandsTest, QuarantineDeleteNeedsConfirmationAndRemovesTheObjects) {
  const std::string sha = seed(kStudy, 1);
  // A coerced copy holds the patient's values as much as the original does: it goes too.
  const auto temp = spool_->new_temp_path();
  ASSERT_TRUE(write_file_durably(temp, "coerced copy", 0640).ok());
  auto copy = spool_->commit_derived(temp);
  ASSERT_TRUE(copy.ok());
  quarantine("MISSING_PATIENT_ID", *copy);
  EXPECT_EQ(
      run({{"cmd", "quarantine"}, {"action", "delete"}, {"study_uid", kStudy}}),
      json({{"ok", false}, {"error", "deleting a quarantined study needs confirmation (--yes)"}}));
  ASSERT_TRUE(fs::exists(spool_->object_path(sha)));
  ASSERT_TRUE(fs::exists(copy->path));
  auto r = run(
      {{"cmd", "quarantine"}, {"action", "delete"}, {"study_uid", kStudy}, {"confirmed", true}});
  EXPECT_EQ(r,
            json({{"ok", true}, {"changed", 1}, {"objects_removed", 1}, {"derived_removed", 1}}));
  EXPECT_FALSE(fs::exists(spool_->object_path(sha)));
  EXPECT_FALSE(fs::exists(copy->path));
  EXPECT_EQ(audited_.back().detail, json({{"action", "delete"}, {"objects", 1}, {"derived", 1}}));
  // Neither object's row is left in the catalog (the spool's held bytes would count it).
  catalog::sqlite::Connection db((dir_ / "c.db").string());
  auto rows = db.prepare("SELECT count(*) FROM objects");
  ASSERT_TRUE(rows.step());
  EXPECT_EQ(rows.int64(0), 0);
  EXPECT_EQ(run({{"cmd", "study"}, {"study_uid", kStudy}})["error"], "no study with that UID");
}

TEST_F(CommandsTest, QuarantineDeleteOfAStudyNotQuarantinedIsRefused) {
  const std::string sha = seed(kStudy, 1);
  make_ready();
  auto r = run(
      {{"cmd", "quarantine"}, {"action", "delete"}, {"study_uid", kStudy}, {"confirmed", true}});
  EXPECT_EQ(r["ok"], false);
  EXPECT_FALSE(r["error"].get<std::string>().empty());
  EXPECT_TRUE(fs::exists(spool_->object_path(sha)));
}

}  // namespace
}  // namespace dirgw::control::commands
