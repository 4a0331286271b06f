// Priors (issue 18): the pure parts (QIDO-RS URL and answer, rules, multipart parser), the config
// keys, and the worker with a fake repository and a fake PACS on a real catalog.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "catalog/catalog.h"
#include "catalog/prior_ledger.h"
#include "config/config.h"
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dctk.h"
#include "fakes/fake_clock.h"
#include "ingest/hl7_mllp/hl7.h"
#include "priors/hl7_trigger.h"
#include "priors/multipart.h"
#include "priors/relevance.h"
#include "priors/search.h"
#include "priors/service.h"
#include "unit/policy/dataset_builder.h"

namespace dirgw::priors {
namespace {

namespace fs = std::filesystem;

TEST(PriorsSearch, UrlEncodesTheHealthNumberAndAsksForTheRulesFields) {
  EXPECT_EQ(study_search_url("http://h/dicom-web/", "12 34&", "20220101", 100),
            "http://h/dicom-web/studies?PatientID=12%2034%26&StudyDate=20220101-"
            "&includefield=00080061&includefield=00080080&includefield=00100021"
            "&includefield=00080020&limit=100");
}

TEST(PriorsSearch, ReadsStudiesAndRefusesWhatIsNotAnAnswer) {
  const std::string body = R"([
    {"0020000D":{"vr":"UI","Value":["1.2.3"]},"00080020":{"vr":"DA","Value":["20250101"]},
     "00080061":{"vr":"CS","Value":["CT","SR"]},"00080080":{"vr":"LO","Value":["Elsewhere"]}},
    {"0020000D":{"vr":"UI","Value":["not a uid"]}}])";
  auto r = parse_study_search(200, body);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].study_uid, "1.2.3");
  EXPECT_EQ((*r)[0].modalities, (std::vector<std::string>{"CT", "SR"}));
  EXPECT_EQ((*r)[0].institution, "Elsewhere");
  EXPECT_TRUE(parse_study_search(204, "").ok());
  EXPECT_FALSE(parse_study_search(200, "{}").ok());
  EXPECT_TRUE(parse_study_search(503, "").error().retryable());
  EXPECT_FALSE(parse_study_search(400, "").error().retryable());
}

FoundStudy found(std::string uid, std::string date, std::string modality,
                 std::string institution = "Elsewhere", std::string issuer = "") {
  return {std::move(uid),
          std::move(date),
          {std::move(modality)},
          std::move(institution),
          std::move(issuer)};
}

TEST(PriorsRules, YearsModalityFacilityIssuerAndAtMostMostRecentFirst) {
  Rules rules{{"CT", "MR"}, "20200101", 2, {"  lakeside GENERAL "}, "ON"};
  auto chosen = select_priors(
      {found("1.1", "20210101", "CT"), found("1.2", "20190101", "CT"),
       found("1.3", "20240101", "US"), found("1.4", "20250101", "CT", "Lakeside General"),
       found("1.5", "20230101", "MR"), found("1.6", "20220101", "CT"),
       found("1.7", "20240601", "CT", "Elsewhere", "OTHER"), found("1.5", "20230101", "MR")},
      rules);
  ASSERT_EQ(chosen.size(), 2u);
  EXPECT_EQ(chosen[0].study_uid, "1.5");  // most recent eligible first
  EXPECT_EQ(chosen[1].study_uid, "1.6");
}

TEST(PriorsRules, EachLeftOutStudyNamesItsRule) {
  Rules rules{{"CT"}, "20200101", 1, {"Home"}, "ON"};
  auto sel = select_priors_explained(
      {found("1.1", "20190101", "CT"), found("1.2", "20240101", "US"),
       found("1.3", "20240101", "CT", "Home"), found("1.4", "20240101", "CT", "X", "OTHER"),
       found("1.5", "20230101", "CT"), found("1.6", "20220101", "CT")},
      rules);
  ASSERT_EQ(sel.selected.size(), 1u);
  EXPECT_EQ(sel.selected[0].study_uid, "1.5");
  std::map<std::string, std::string> why;
  for (const auto& k : sel.skipped) why[k.study_uid] = k.rule;
  EXPECT_EQ(why, (std::map<std::string, std::string>{{"1.1", "date"},
                                                     {"1.2", "modality"},
                                                     {"1.3", "this-facility"},
                                                     {"1.4", "issuer"},
                                                     {"1.6", "max-studies"}}));
}

TEST(PriorsSearch, AsksForWhatTheRelevanceRuleReadsOnlyWhenATableIsSet) {
  EXPECT_EQ(study_search_url("http://h/dw", "1", "", 5, true),
            "http://h/dw/studies?PatientID=1&includefield=00080061&includefield=00080080"
            "&includefield=00100021&includefield=00080020&includefield=00081030"
            "&includefield=00081032&includefield=00180015&limit=5");
  EXPECT_EQ(series_body_part_url("http://h/dw/", "1.2.3"),
            "http://h/dw/studies/1.2.3/series?includefield=00180015");
}

TEST(PriorsSearch, ReadsDescriptionBodyPartAndProcedureCodes) {
  const std::string body = R"([
    {"0020000D":{"vr":"UI","Value":["1.2.3"]},"00081030":{"vr":"LO","Value":["CT CHEST W"]},
     "00180015":{"vr":"CS","Value":["CHEST "]},
     "00081032":{"vr":"SQ","Value":[
       {"00080100":{"vr":"SH","Value":["71250"]},"00080102":{"vr":"SH","Value":["CPT4"]}},
       {"00080100":{"vr":"SH","Value":["X1"]}}, {}]}}])";
  auto r = parse_study_search(200, body);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].description, "CT CHEST W");
  EXPECT_EQ((*r)[0].body_parts, (std::vector<std::string>{"CHEST"}));
  EXPECT_EQ((*r)[0].procedures, (std::vector<std::string>{"CPT4:71250", "X1"}));
  auto parts = parse_series_body_parts(200, R"([{"00180015":{"vr":"CS","Value":["CHEST"]}},
    {"00180015":{"vr":"CS","Value":["ABDOMEN"]}},{"00180015":{"vr":"CS","Value":["CHEST"]}},{}])");
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(*parts, (std::vector<std::string>{"CHEST", "ABDOMEN"}));
  EXPECT_TRUE(parse_series_body_parts(204, "").ok());
  EXPECT_FALSE(parse_series_body_parts(200, "{").ok());
  EXPECT_TRUE(parse_series_body_parts(503, "").error().retryable());
}

config::PriorsConfig relevance_table(bool unmapped_all = true) {
  config::PriorsConfig c;
  c.relevance = {{"chest", {"CPT4:71250", "CTCHEST"}, {"CHEST", "LUNG"}, {"thorax"}},
                 {"knee", {"73721"}, {"KNEE"}, {}}};
  c.relevance_unmapped_all = unmapped_all;
  return c;
}

TEST(PriorsRelevance, ProcedureCodesMatchWithOrWithoutTheirScheme) {
  EXPECT_TRUE(procedure_matches("CPT4:71250", "cpt4:71250"));
  EXPECT_TRUE(procedure_matches("CPT4:71250", "71250"));
  EXPECT_TRUE(procedure_matches("71250", "LOCAL:71250"));
  EXPECT_FALSE(procedure_matches("CPT4:71250", "LOCAL:71250"));
  EXPECT_FALSE(procedure_matches("CPT4:71250", "CPT4:71260"));
}

TEST(PriorsRelevance, AChestOrderWantsChestPriorsOfAnyModalityAndNotAKnee) {
  const auto table = relevance_table();
  const auto chest = relevance_for(table, {"CPT4:71250"}, "");
  ASSERT_EQ(chest.mode, Relevance::Mode::kGroups);
  EXPECT_EQ(chest.rule, "chest");
  EXPECT_TRUE(chest.wants_series_body_parts());
  FoundStudy cr = found("1.1", "20250101", "CR");
  cr.body_parts = {"chest"};
  EXPECT_EQ(relevant_because(chest, cr), "chest: body part CHEST");
  FoundStudy mr_knee = found("1.2", "20250101", "MR");
  mr_knee.body_parts = {"KNEE"};
  EXPECT_EQ(relevant_because(chest, mr_knee), "");
  FoundStudy ct = found("1.3", "20250101", "CT");  // the study level lists no body part
  EXPECT_EQ(relevant_because(chest, ct), "");
  EXPECT_EQ(relevant_because(chest, ct, {"ABDOMEN", "LUNG"}), "chest: body part LUNG");
  ct.procedures = {"CTCHEST"};
  EXPECT_EQ(relevant_because(chest, ct), "chest: procedure CTCHEST");
  FoundStudy described = found("1.4", "20250101", "CT");
  described.description = "CT Thorax w contrast";
  EXPECT_EQ(relevant_because(chest, described), "chest: description 'thorax'");
  // A body part named by an operator selects the group too.
  EXPECT_EQ(relevance_for(table, {}, "knee").rule, "knee");
  EXPECT_EQ(relevant_because(relevance_for(table, {}, "KNEE"), mr_knee), "knee: body part KNEE");
}

TEST(PriorsRelevance, UnmappedAndUnnamedExams) {
  FoundStudy any = found("1.1", "20250101", "CT");
  const auto all = relevance_for(relevance_table(true), {"LOCAL:XR99"}, "");
  EXPECT_EQ(all.mode, Relevance::Mode::kAny);
  EXPECT_EQ(relevant_because(all, any), "any: unmapped: all");
  const auto none = relevance_for(relevance_table(false), {"LOCAL:XR99"}, "");
  EXPECT_EQ(none.mode, Relevance::Mode::kNone);
  EXPECT_EQ(relevant_because(none, any), "");
  EXPECT_FALSE(none.wants_series_body_parts());
  // No exam named (an arrival, an operator without --procedure): the rule does not apply.
  EXPECT_EQ(relevance_for(relevance_table(false), {}, "").mode, Relevance::Mode::kAny);
  // No table: every prior.
  EXPECT_EQ(relevance_for(config::PriorsConfig{}, {"CPT4:71250"}, "").mode, Relevance::Mode::kAny);
}

TEST(PriorsHl7, TheOrderedProcedureIsReadFromObr4OrAis3) {
  auto orm = hl7::Message::parse(
      "MSH|^~\\&|RIS|F|DIRGW|F|20260101||ORM^O01|M1|P|2.3.1\r"
      "PID|1||MRN1^^^F^MR\rORC|NW\rOBR|1|P1||71250^CT CHEST^CPT4^CTCH^Chest^LOCAL\r"
      "ORC|NW\rOBR|2|P2||XR1^Knee\r");
  ASSERT_TRUE(orm.ok());
  EXPECT_EQ(ordered_procedures(*orm),
            (std::vector<std::string>{"CPT4:71250", "LOCAL:CTCH", "XR1"}));
  auto siu = hl7::Message::parse(
      "MSH|^~\\&|RIS|F|DIRGW|F|20260101||SIU^S12|M2|P|2.5\r"
      "SCH|1\rPID|1||MRN1^^^F^MR\rRGS|1\rAIS|1||73721^MR KNEE^CPT4\r");
  ASSERT_TRUE(siu.ok());
  EXPECT_EQ(ordered_procedures(*siu), (std::vector<std::string>{"CPT4:73721"}));
}

struct Collected {
  std::vector<std::string> headers, bodies;
  std::string current;
};

MultipartParser::Handler collector(Collected& c) {
  MultipartParser::Handler h;
  h.begin_part = [&c](std::string_view headers) -> Result<void> {
    c.headers.emplace_back(headers);
    c.current.clear();
    return {};
  };
  h.data = [&c](std::string_view bytes) -> Result<void> {
    c.current.append(bytes);
    return {};
  };
  h.end_part = [&c]() -> Result<void> {
    c.bodies.push_back(c.current);
    return {};
  };
  return h;
}

TEST(PriorsMultipart, PartsComeOutWholeWhateverTheChunking) {
  const std::string body =
      "preamble\r\n--XyZ\r\nContent-Type: application/dicom\r\n\r\nfirst\r\n--X\r\n"
      "\r\n--XyZ\r\nContent-Type: application/dicom\r\n\r\nsecond part\r\n--XyZ--\r\n";
  EXPECT_EQ(multipart_boundary("multipart/related; type=\"application/dicom\"; boundary=XyZ"),
            "XyZ");
  EXPECT_EQ(multipart_boundary("multipart/related; boundary=\"XyZ\"; type=x"), "XyZ");
  for (std::size_t chunk : {std::size_t{1}, std::size_t{3}, body.size()}) {
    Collected c;
    MultipartParser p("XyZ", collector(c));
    for (std::size_t i = 0; i < body.size(); i += chunk)
      ASSERT_TRUE(p.feed(std::string_view(body).substr(i, chunk)).ok());
    ASSERT_TRUE(p.finish().ok());
    ASSERT_EQ(c.bodies.size(), 2u) << chunk;
    EXPECT_EQ(c.bodies[0], "first\r\n--X\r\n");
    EXPECT_EQ(c.bodies[1], "second part");
    EXPECT_EQ(c.headers[0], "Content-Type: application/dicom");
  }
  Collected c;
  MultipartParser cut("XyZ", collector(c));
  ASSERT_TRUE(cut.feed("--XyZ\r\n\r\nabc").ok());
  EXPECT_FALSE(cut.finish().ok());  // no closing delimiter
}

// The line of each key a configuration's errors name.
template <typename Loaded>
std::map<std::string, int> error_lines(const Loaded& loaded) {
  std::map<std::string, int> lines;
  for (const auto& e : loaded.errors) lines[e.key] = e.line;
  return lines;
}

// The facility and the repository destination every priors configuration below starts with.
const std::string kWithRepository = R"(facility: { name: "F", id: F }
destinations:
  - name: repo
    type: stow-rs
    url: http://127.0.0.1:1/dicom-web
)";

TEST(PriorsConfig, KeysAreReadAndErrorsNameKeyAndLine) {
  const std::string& base = kWithRepository;
  auto ok = config::load_string(base + R"(priors:
  enabled: true
  repository: repo
  local_pacs: { ae_title: PACS, host: 127.0.0.1, port: 4242 }
  rules: { modalities: [CT], years: 3, max_studies: 4, skip_institutions: [F] }
  triggers: { orders: false, arrivals: true }
  series_description_prefix: "PRIOR "
)");
  ASSERT_TRUE(ok.ok()) << (ok.errors.empty() ? "" : ok.errors[0].to_string("x"));
  const auto& p = ok.config->priors;
  EXPECT_TRUE(p.enabled);
  EXPECT_EQ(p.pacs_port, 4242);
  EXPECT_EQ(p.years, 3);
  EXPECT_FALSE(p.on_orders);
  EXPECT_TRUE(p.on_arrivals);
  auto bad = config::load_string(base + R"(priors:
  enabled: true
  repository: nowhere
  local_pacs: { ae_title: PACS, host: h }
  rules: { years: 0, colour: red }
)");
  ASSERT_FALSE(bad.ok());
  const auto lines = error_lines(bad);
  EXPECT_EQ(lines.at("priors.repository"), 8);
  EXPECT_EQ(lines.at("priors.rules.years"), 10);
  EXPECT_EQ(lines.at("priors.rules.colour"), 10);
}

TEST(PriorsConfig, TheRelevanceTableIsReadAndItsErrorsNameKeyAndLine) {
  const std::string base = kWithRepository + R"(priors:
  enabled: true
  repository: repo
  local_pacs: { ae_title: PACS, host: 127.0.0.1, port: 4242 }
  rules:
    relevance:
)";
  auto ok = config::load_string(base + R"(      unmapped: none
      groups:
        - name: chest
          procedures: ["CPT4:71250", CTCHEST]
          body_parts: [CHEST, LUNG]
          descriptions: [thorax]
        - { name: knee, body_parts: [KNEE] }
)");
  ASSERT_TRUE(ok.ok()) << (ok.errors.empty() ? "" : ok.errors[0].to_string("x"));
  const auto& p = ok.config->priors;
  EXPECT_FALSE(p.relevance_unmapped_all);
  ASSERT_EQ(p.relevance.size(), 2u);
  EXPECT_EQ(p.relevance[0].name, "chest");
  EXPECT_EQ(p.relevance[0].procedures, (std::vector<std::string>{"CPT4:71250", "CTCHEST"}));
  EXPECT_EQ(p.relevance[0].body_parts, (std::vector<std::string>{"CHEST", "LUNG"}));
  EXPECT_EQ(p.relevance[0].descriptions, (std::vector<std::string>{"thorax"}));
  EXPECT_EQ(p.relevance[1].body_parts, (std::vector<std::string>{"KNEE"}));
  auto bad = config::load_string(base + R"(      unmapped: some
      groups:
        - name: chest
          body_parts: [chest]
        - name: chest
          procedures: [":x"]
        - { name: empty, descriptions: [x] }
        - { name: k, body_parts: [KNEE], colour: red }
)");
  ASSERT_FALSE(bad.ok());
  const auto lines = error_lines(bad);
  EXPECT_EQ(lines.at("priors.rules.relevance.unmapped"), 12);
  EXPECT_EQ(lines.at("priors.rules.relevance.groups[0].body_parts[0]"), 15);
  EXPECT_EQ(lines.at("priors.rules.relevance.groups[1].name"), 16);
  EXPECT_EQ(lines.at("priors.rules.relevance.groups[1].procedures[0]"), 17);
  EXPECT_EQ(lines.at("priors.rules.relevance.groups[2]"), 18);
  EXPECT_EQ(lines.at("priors.rules.relevance.groups[3].colour"), 19);
}

// --- The worker, with fakes for the repository and the PACS.

class FakeRepository final : public Repository {
 public:
  std::vector<FoundStudy> studies;
  std::map<std::string, std::vector<std::string>> files;         // study -> Part-10 bytes
  std::map<std::string, std::vector<std::string>> series_parts;  // study -> Body Part Examined
  int searches = 0, retrievals = 0, fail_next = 0, series_searches = 0;
  Result<std::vector<FoundStudy>> search(const std::string&, const std::string&) override {
    ++searches;
    if (fail_next > 0) {
      --fail_next;
      return make_error(ErrorCode::kNetwork, "repository down");
    }
    return studies;
  }
  Result<std::vector<std::string>> series_body_parts(const std::string& uid) override {
    ++series_searches;
    return series_parts[uid];
  }
  Result<void> retrieve_study(const std::string& uid, MultipartParser::Handler h) override {
    ++retrievals;
    std::string body;
    for (const auto& f : files[uid])
      body += "\r\n--B\r\nContent-Type: application/dicom\r\n\r\n" + f;
    body += "\r\n--B--";
    MultipartParser p("B", std::move(h));
    if (auto r = p.feed(body); !r) return r;
    return p.finish();
  }
};

class FakePacs final : public senders::Sender {
 public:
  std::vector<std::string> patient_ids, series_descriptions;
  int stored = 0;
  senders::Outcome send(const std::vector<senders::Item>& batch,
                        const senders::SendContext&) override {
    senders::Outcome o{senders::OutcomeKind::kOk, {}, 0, {}, "", 0, false};
    for (const auto& i : batch) {
      DcmFileFormat f;
      EXPECT_TRUE(f.loadFile(OFFilename(i.path.c_str())).good());
      OFString v;
      f.getDataset()->findAndGetOFString(DCM_PatientID, v);
      patient_ids.emplace_back(v.c_str());
      f.getDataset()->findAndGetOFString(DCM_SeriesDescription, v);
      series_descriptions.emplace_back(v.c_str());
      o.instances.push_back({i.sop_instance_uid, senders::InstanceStatus::kAccepted, "", false});
      ++stored;
    }
    return o;
  }
};

class PriorsServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dirgw-priors-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    catalog_ = std::move(catalog::Catalog::open(dir_ / "c.db", {"repo"}, clock_)).value();
    spool_ =
        std::make_unique<ingest::Spool>(std::move(ingest::Spool::open(dir_ / "spool")).value());
    ledger_ = std::make_unique<catalog::PriorLedger>(catalog_->db());
    ServiceOptions o;
    o.config.years = 5;
    o.config.max_studies = 5;
    o.config.skip_institutions = {"Home Hospital"};
    o.config.series_description_prefix = "PRIOR ";
    o.config.max_attempts = 3;
    o.config.relevance = relevance_table().relevance;
    o.facility = "Home";
    o.pacs_label = "local-pacs:PACS";
    service_ = std::make_unique<Service>(
        o, *ledger_, repo_, pacs_, *spool_, clock_,
        [this](const catalog::PriorRequest&) -> Result<bool> { return withdrawn_; },
        [this](audit::Event e) { events_.push_back(std::move(e)); });
  }
  void TearDown() override { fs::remove_all(dir_); }

  void add_study(const std::string& uid, const std::string& institution, int instances = 2) {
    repo_.studies.push_back(found(uid, "20260101", "CT", ""));
    for (int i = 1; i <= instances; ++i) {
      auto ds = policy::test::valid_ct();
      ds->putAndInsertString(DCM_StudyInstanceUID, uid.c_str());
      ds->putAndInsertString(DCM_SOPInstanceUID, (uid + "." + std::to_string(i)).c_str());
      ds->putAndInsertString(DCM_PatientID, "1234567897");
      ds->putAndInsertString(DCM_InstitutionName, institution.c_str());
      ds->putAndInsertString(DCM_SeriesDescription, "CT HEAD");
      const auto path = dir_ / "in.dcm";
      policy::test::save(*ds, path);
      repo_.files[uid].push_back(policy::test::read_all(path));
    }
  }
  catalog::PriorRequest request(const std::string& trigger,
                                std::vector<std::string> procedures = {}) {
    catalog::PriorRequest r;
    r.procedures = std::move(procedures);
    r.patient_ref = "tag";
    r.mrn = "MRN1";
    r.mrn_issuer = "HOME-MRN";
    r.health_number = "1234567897";
    r.health_number_issuer = "ON";
    r.trigger_kind = "hl7";
    r.trigger_ref = trigger;
    r.actor = "hl7:RIS@127.0.0.1:1";
    r.id = service_->request(r).value();
    return ledger_->request(r.id).value().value();
  }

  fs::path dir_;
  testing::FakeClock clock_;
  std::unique_ptr<catalog::Catalog> catalog_;
  std::unique_ptr<ingest::Spool> spool_;
  std::unique_ptr<catalog::PriorLedger> ledger_;
  FakeRepository repo_;
  FakePacs pacs_;
  bool withdrawn_ = false;
  std::vector<audit::Event> events_;
  std::unique_ptr<Service> service_;
};

TEST_F(PriorsServiceTest, FetchesCoercesStoresOnceAndSkipsThisFacility) {
  add_study("1.2.3.1", "Elsewhere");
  add_study("1.2.3.2", "Home Hospital");
  auto out = service_->run(request("ORM^O01 M1"));
  EXPECT_EQ(out.state, "done");
  EXPECT_EQ(out.fetched, 1);
  EXPECT_EQ(out.skipped, 1);
  EXPECT_EQ(pacs_.stored, 2);
  EXPECT_EQ(pacs_.patient_ids, (std::vector<std::string>{"MRN1", "MRN1"}));
  EXPECT_EQ(pacs_.series_descriptions[0], "PRIOR CT HEAD");
  auto second = service_->run(request("ORM^O01 M2"));
  EXPECT_EQ(second.fetched, 0);
  EXPECT_EQ(second.already, 1);  // this facility's study is not counted
  EXPECT_EQ(pacs_.stored, 2);
  EXPECT_EQ(repo_.retrievals, 2);
  auto rows = ledger_->studies("MRN1", 10).value();
  ASSERT_EQ(rows.size(), 2u);
  int fetched_events = 0;
  for (const auto& e : events_)
    if (e.type == audit::EventType::kPriorFetched && audit::is_success(e)) {
      ++fetched_events;
      EXPECT_EQ(e.detail["trigger"], "ORM^O01 M1");
      EXPECT_EQ(e.actor, "hl7:RIS@127.0.0.1:1");
    }
  EXPECT_EQ(fetched_events, 1);
  EXPECT_TRUE(fs::is_empty(dir_ / "spool" / "tmp"));
}

TEST_F(PriorsServiceTest, WithdrawnConsentSearchesNothing) {
  add_study("1.2.3.1", "Elsewhere");
  withdrawn_ = true;
  auto out = service_->run(request("ORM^O01 M3"));
  EXPECT_EQ(out.state, "refused");
  EXPECT_EQ(repo_.searches, 0);
  EXPECT_EQ(pacs_.stored, 0);
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].type, audit::EventType::kPriorsSearched);
  EXPECT_EQ(events_[0].outcome, "failure:consent-withdrawn");
}

TEST_F(PriorsServiceTest, ATransientFailureIsRetriedLater) {
  add_study("1.2.3.1", "Elsewhere");
  repo_.fail_next = 1;
  request("ORM^O01 M4");
  EXPECT_EQ(service_->step(), 1);
  EXPECT_EQ(pacs_.stored, 0);
  EXPECT_EQ(service_->step(), 0);  // not due yet
  clock_.advance(std::chrono::minutes(2));
  EXPECT_EQ(service_->step(), 1);
  EXPECT_EQ(pacs_.stored, 2);
  auto q = ledger_->requests("", 5).value();
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].state, "done");
  EXPECT_EQ(q[0].attempts, 2);
}

TEST_F(PriorsServiceTest, AChestOrderFetchesOnlyTheChestPriorsAndTheAuditSaysWhy) {
  add_study("1.2.3.1", "Elsewhere");  // a chest CT: the series say so
  add_study("1.2.3.2", "Elsewhere");  // a knee MR
  add_study("1.2.3.3", "Elsewhere");  // a chest study said so at study level
  repo_.studies[2].body_parts = {"CHEST"};
  repo_.series_parts["1.2.3.1"] = {"CHEST"};
  repo_.series_parts["1.2.3.2"] = {"KNEE"};
  auto out = service_->run(request("ORM^O01 M5", {"CPT4:71250"}));
  EXPECT_EQ(out.state, "done");
  EXPECT_EQ(out.fetched, 2);
  EXPECT_EQ(repo_.retrievals, 2);
  EXPECT_EQ(repo_.series_searches, 2);  // not for the one the study level decided
  EXPECT_FALSE(ledger_->study("1.2.3.2").value().has_value());  // a knee order may want it later
  std::map<std::string, std::string> selected_by;
  nlohmann::json search;
  for (const auto& e : events_) {
    if (e.type == audit::EventType::kPriorFetched)
      selected_by[e.study_uid] = e.detail["selected_by"];
    if (e.type == audit::EventType::kPriorsSearched) search = e.detail;
  }
  EXPECT_EQ(selected_by,
            (std::map<std::string, std::string>{{"1.2.3.1", "chest: body part CHEST"},
                                                {"1.2.3.3", "chest: body part CHEST"}}));
  EXPECT_EQ(search["relevance"], "chest");
  EXPECT_EQ(search["eligible"], 2);
  ASSERT_EQ(search["skipped"].size(), 1u);
  EXPECT_EQ(search["skipped"][0]["study"], "1.2.3.2");
  EXPECT_EQ(search["skipped"][0]["rule"], "relevance (chest)");
  // The knee, ordered later, is fetched then.
  auto knee = service_->run(request("ORM^O01 M6", {"73721"}));
  EXPECT_EQ(knee.fetched, 1);
  EXPECT_EQ(repo_.retrievals, 3);
}

TEST_F(PriorsServiceTest, AnUnmappedOrderFetchesAllByDefault) {
  add_study("1.2.3.1", "Elsewhere");
  repo_.series_parts["1.2.3.1"] = {"HAND"};
  auto out = service_->run(request("ORM^O01 M7", {"LOCAL:XR99"}));
  EXPECT_EQ(out.fetched, 1);
  EXPECT_EQ(repo_.series_searches, 0);
}

}  // namespace
}  // namespace dirgw::priors
