#include "ingest/reports/report_service.h"

#include <algorithm>
#include <chrono>
#include <ctime>

// clang-format off
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
// clang-format on

#include "common/crypto.h"
#include "common/dcmtk_guard.h"
#include "common/text.h"
#include "common/uid.h"
#include "ingest/reports/report_object.h"
#include "log/log.h"

namespace dirgw::reports {

namespace {

using hl7::AckCode;
using hl7::AckError;

constexpr int kIndexBatch = 200;
constexpr int kWaitingBatch = 100;

// How an identifier's type (CX-5) ranks for the report's key: the facility's own record number
// first, national and insurance numbers last, since registration adds or drops those between a
// final and its correction (a health number added to PID-3 must not start a new report).
int id_rank(std::string_view type) {
  if (type == "MR" || type == "MRN" || type == "PI" || type == "PT") return 0;
  for (const char* national : {"JHN", "HC", "NH", "NI", "SS", "SB", "DL", "PPN", "AN", "VN"})
    if (type == national) return 2;
  return 1;
}

// The accession and one PID-3 ID: the best-ranked type (when `ranked`), the smallest ID among
// those (so that the order of the repetitions does not matter).
std::string key_of(const hl7::Report& r, bool ranked) {
  std::string patient;
  int rank = 3;
  for (const auto& id : r.patient_ids) {
    const int k = ranked ? id_rank(id.identifier_type) : 0;
    if (k < rank || (k == rank && id.id.reveal() < patient)) {
      rank = k;
      patient = id.id.reveal();
    }
  }
  return r.accession.reveal() + '\x1f' + patient;
}

}  // namespace

// The versions of one report: its accession and its patient, named by one PID-3 ID that stays
// when others come and go (id_rank).
std::string report_key(const hl7::Report& r) { return key_of(r, true); }

namespace {

// "hl7:<sending application>": printable ASCII only (it reaches status and the audit trail).
std::string source_of(const hl7::Message& m) {
  std::string app;
  for (char c : m.sending_application().substr(0, 32)) app.push_back(c > ' ' && c < 0x7f ? c : '_');
  return "hl7:" + (app.empty() ? std::string("report") : app);
}

std::string dicom_datetime(std::int64_t epoch_ms) {
  const std::time_t t = static_cast<std::time_t>(epoch_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d%H%M%S", &tm);
  return buf;
}

// The Accession Number and Patient ID of a received image (patient data: never logged).
std::pair<std::string, std::string> image_keys(const std::filesystem::path& file) {
  DcmFileFormat ff;
  if (dcmtk_guard([&] { return ff.loadFile(file.c_str(), EXS_Unknown, EGL_noChange, 4096); }).bad())
    return {};
  const char* acc = nullptr;
  const char* pid = nullptr;
  ff.getDataset()->findAndGetString(DCM_AccessionNumber, acc);
  ff.getDataset()->findAndGetString(DCM_PatientID, pid);
  return {std::string(trim_dicom(acc != nullptr ? acc : "")),
          std::string(trim_dicom(pid != nullptr ? pid : ""))};
}

ingest::Hl7Verdict refuse(const Error& e) {
  const bool missing = e.detail.rfind("no ", 0) == 0;
  return {AckCode::kAE, e.detail, missing ? AckError::kRequiredFieldMissing : AckError::kDataType};
}

}  // namespace

ReportService::ReportService(const config::Hl7Reports& cfg, catalog::ReportLedger& ledger,
                             const ingest::Spool& spool, ingest::ObjectSink& sink,
                             ingest::PrescanLimits limits)
    : cfg_(cfg), ledger_(ledger), spool_(spool), sink_(sink), limits_(limits) {
  mapping_.accession_field = cfg.accession_field;
  mapping_.default_charset = cfg.default_charset;
}

ReportService::~ReportService() { stop(); }

void ReportService::start() {
  thread_ = std::thread([this] { run(); });
}

void ReportService::stop() {
  {
    std::lock_guard lock(wake_mutex_);
    stopping_ = true;
  }
  wake_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ReportService::wake() {
  {
    std::lock_guard lock(wake_mutex_);
    woken_ = true;
  }
  wake_cv_.notify_one();
}

void ReportService::run() {
  std::unique_lock lock(wake_mutex_);
  while (!stopping_) {
    // The timer only catches what a lost wake-up (or a failure on our side) left waiting.
    wake_cv_.wait_for(lock, std::chrono::seconds(30), [this] { return woken_ || stopping_; });
    if (stopping_) break;
    woken_ = false;
    lock.unlock();
    step();
    lock.lock();
  }
}

ingest::Hl7Verdict ReportService::on_report(const hl7::Message& msg, const std::string& peer) {
  ingest::Hl7Verdict v = answer(msg, peer);
  if (v.code == AckCode::kAE) ++refused_ae_;
  if (v.code == AckCode::kAR) ++refused_ar_;
  return v;
}

void ReportService::register_metrics(metrics::Registry& registry) const {
  registry.counter_callback(
      "dirgw_hl7_reports_refused_total",
      "HL7 reports answered AE or AR (not stored, or refused at once)", {"answer"}, [this] {
        const Refused r = refused();
        return std::vector<metrics::Sample>{{{"AE"}, static_cast<double>(r.ae)},
                                            {{"AR"}, static_cast<double>(r.ar)}};
      });
}

ingest::Hl7Verdict ReportService::answer(const hl7::Message& msg, const std::string& peer) {
  if (auto h = hl7::check_header(msg); !h)
    return {AckCode::kAR, "message header not acceptable", AckError::kRequiredFieldMissing};
  if (msg.message_type() == "MDM") {
    if (std::string why = hl7::mdm_refusal(msg.trigger_event()); !why.empty()) {
      log::warn("HL7 report refused", {{"peer", peer}, {"reason", why}});
      return {AckCode::kAR, why, AckError::kUnsupportedEventCode};
    }
  }
  // Every order of the message (one, unless exams were dictated together): all are read
  // before any is stored, so that a message refused is refused whole.
  std::vector<hl7::Report> reports;
  for (std::size_t order = 0; order < hl7::report_orders(msg); ++order) {
    auto report = hl7::extract_report(msg, mapping_, order);
    if (!report && report.error().code == ErrorCode::kNotFound) {
      log::info("HL7 report ignored", {{"peer", peer}, {"reason", report.error().detail}});
      continue;
    }
    if (!report) {
      log::warn("HL7 report refused", {{"peer", peer}, {"reason", report.error().detail}});
      return refuse(report.error());
    }
    reports.push_back(std::move(*report));
  }
  std::string er7, body;
  for (const auto& s : msg.segments()) {
    // Stored as received, separators and all (the parser kept every field's raw text).
    std::string line;
    for (std::size_t i = 0; i < s.fields.size(); ++i) {
      if (s.id == "MSH" && (i == 1 || i == 2)) {
        line += s.fields[i];
        continue;
      }
      if (i > 0) line += msg.separators().field;
      line += s.fields[i];
    }
    er7 += line + '\r';
    if (s.id != "MSH") body += line + '\r';
  }
  const std::string digest = sha256_hex(body);
  std::lock_guard round(round_mutex_);
  ingest::Hl7Verdict verdict{AckCode::kAA, "", AckError::kApplicationInternalError};
  for (const auto& report : reports) {
    ingest::Hl7Verdict v = store_and_try(report, er7, digest, peer);
    if (verdict.code == AckCode::kAA) verdict = std::move(v);
  }
  return verdict;
}

// One report of a message: stored (committed before the ACK), then tried at once unless held.
ingest::Hl7Verdict ReportService::store_and_try(const hl7::Report& report, const std::string& er7,
                                                const std::string& digest,
                                                const std::string& peer) {
  const bool hold = report.status == hl7::ReportStatus::kPreliminary && cfg_.preliminary == "hold";
  auto added = ledger_.add(report.message_key, report_key(report), report.accession.reveal(),
                           std::string(hl7::to_string(report.status)), hold ? "held" : "waiting",
                           er7, digest);
  if (!added) {
    log::error("HL7 report could not be stored", {{"error", added.error().to_string()}});
    return {AckCode::kAE, "report could not be stored; send it again",
            AckError::kApplicationInternalError};
  }
  if (added->control_id_reused)
    log::warn("HL7 report: control ID received before with another report; stored as a new one",
              {{"peer", peer}, {"report", std::to_string(added->id)}});
  if (added->known) return known_answer(added->id);
  log::info("HL7 report stored", {{"report", std::to_string(added->id)},
                                  {"status", std::string(hl7::to_string(report.status))},
                                  {"state", hold ? "held" : "waiting"}});
  if (hold) return {AckCode::kAA, "", AckError::kApplicationInternalError};
  expire_waiting();  // the limits hold as reports arrive, not only at the next round
  index_studies();
  auto row = ledger_.get(added->id);
  if (!row || !*row) return {AckCode::kAA, "", AckError::kApplicationInternalError};
  const Tried t = try_report(**row);
  if (t.outcome == Outcome::kRefused)
    return {AckCode::kAE, t.reason, AckError::kUnknownKeyIdentifier};
  return {AckCode::kAA, "", AckError::kApplicationInternalError};
}

// The newest version made of this report: under its key, else (a report whose versions began
// before the key preferred the record number) under the key it had then.
Result<std::optional<catalog::StoredReport>> ReportService::latest_version(
    const catalog::StoredReport& row, const hl7::Report& report) {
  auto latest = ledger_.latest_version(row.report_key);
  if (!latest || *latest) return latest;
  // The key before it preferred the record number: the smallest PID-3 ID of all.
  const std::string legacy = key_of(report, false);
  if (legacy == row.report_key) return latest;
  return ledger_.latest_version(legacy);
}

// A message received before: a report that was refused or expired is tried again (what refused
// it may have changed: a study merged, its images arrived), and answered by that try, so that an
// engine that sends it again after an AE is never told AA for a report that was not taken.
// Otherwise AA, as the first time.
ingest::Hl7Verdict ReportService::known_answer(std::int64_t id) {
  auto row = ledger_.get(id);
  if (!row || !*row || ((*row)->state != "refused" && (*row)->state != "expired"))
    return {AckCode::kAA, "", AckError::kApplicationInternalError};
  if (auto m = ledger_.wait_again(id); !m) {
    log::error("reports: catalog error", {{"error", m.error().to_string()}});
    return {AckCode::kAE, (*row)->reason, AckError::kUnknownKeyIdentifier};
  }
  log::info("HL7 report sent again: tried again",
            {{"report", std::to_string(id)}, {"was", (*row)->state}});
  (*row)->state = "waiting";
  index_studies();
  const Tried t = try_report(**row);
  if (t.outcome == Outcome::kRefused)
    return {AckCode::kAE, t.reason, AckError::kUnknownKeyIdentifier};
  return {AckCode::kAA, "", AckError::kApplicationInternalError};
}

ReportService::Round ReportService::step() {
  std::lock_guard round(round_mutex_);
  Round out;
  out.expired = expire_waiting();
  out.indexed = index_studies();
  auto waiting = ledger_.in_state("waiting", kWaitingBatch);
  if (!waiting) {
    log::error("reports: catalog error", {{"error", waiting.error().to_string()}});
    return out;
  }
  for (const auto& row : *waiting) {
    switch (try_report(row).outcome) {
      case Outcome::kDone:
        ++out.done;
        break;
      case Outcome::kRefused:
        ++out.refused;
        break;
      case Outcome::kSuperseded:
        ++out.superseded;
        break;
      default:
        ++out.waiting;
    }
  }
  return out;
}

// Reports whose images never came are not kept waiting for ever (ingest.hl7.reports.max_waiting,
// max_waiting_age): the oldest become "expired", kept with their reason, shown by dirgw sources.
int ReportService::expire_waiting() {
  auto expired = ledger_.expire_waiting(cfg_.max_waiting_age.count(), cfg_.max_waiting);
  if (!expired) {
    log::error("reports: catalog error", {{"error", expired.error().to_string()}});
    return 0;
  }
  if (*expired > 0)
    log::warn("HL7 reports expired while waiting for their images",
              {{"count", std::to_string(*expired)},
               {"see", "dirgw sources: expired; the reason is in the catalog"}});
  return *expired;
}

int ReportService::index_studies() {
  auto studies = ledger_.unindexed_studies(kIndexBatch);
  if (!studies) return 0;
  // And a study indexed without an accession that has a newer image: read that one (the
  // first image of a study may carry none, the next ones the worklist's).
  if (auto blank = ledger_.blank_accession_studies(kIndexBatch); blank)
    studies->insert(studies->end(), blank->begin(), blank->end());
  for (const auto& s : *studies) {
    std::pair<std::string, std::string> keys;
    if (!s.image_sha256.empty()) keys = image_keys(spool_.object_path(s.image_sha256));
    if (!ledger_.put_accession(s.study_id, keys.first, keys.second, s.image_sha256)) break;
  }
  return static_cast<int>(studies->size());
}

// A report that will not be sent as it is: its state and reason recorded for status.
ReportService::Tried ReportService::settle(const catalog::StoredReport& row, Outcome o,
                                           std::string reason) {
  const char* state = o == Outcome::kSuperseded ? "superseded" : "refused";
  if (auto m = ledger_.mark(row.id, state, reason); !m)
    log::error("reports: catalog error", {{"error", m.error().to_string()}});
  log::warn("HL7 report not sent",
            {{"report", std::to_string(row.id)}, {"state", state}, {"reason", reason}});
  return Tried{o, std::move(reason)};
}

ReportService::Tried ReportService::try_report(const catalog::StoredReport& row) {
  hl7::ParseLimits parse_limits;  // as the listener accepted it
  parse_limits.max_message_bytes =
      std::max<std::size_t>(parse_limits.max_message_bytes, row.message.size());
  auto msg = hl7::Message::parse(row.message, parse_limits);
  auto report = msg ? hl7::extract_report(*msg, mapping_, hl7::report_order_of(row.message_key))
                    : Result<hl7::Report>(msg.error());
  if (!report) return settle(row, Outcome::kRefused, report.error().detail);
  auto latest = latest_version(row, *report);
  if (!latest) return {Outcome::kWaiting, latest.error().to_string()};
  if (report->status == hl7::ReportStatus::kPreliminary && *latest &&
      (*latest)->status != "preliminary")
    return settle(row, Outcome::kSuperseded, "a final version was sent already");
  auto studies = ledger_.studies_with_accession(row.accession);
  if (!studies) return {Outcome::kWaiting, studies.error().to_string()};
  if (studies->empty()) return {Outcome::kWaiting, "no study with this accession number yet"};
  std::vector<catalog::StudyMatch> same_patient;
  for (const auto& s : *studies)
    for (const auto& id : report->patient_ids)
      if (!s.patient_id.empty() && id.id.reveal() == s.patient_id) {
        same_patient.push_back(s);
        break;
      }
  if (same_patient.empty())
    return settle(row, Outcome::kRefused,
                  "the study with this accession number belongs to another patient, or no "
                  "identifier of PID-3 is the images' Patient ID (a health number alone, say)");
  if (same_patient.size() > 1 && !report->study_uid.empty()) {
    // The RIS named the study (ZDS-1): that one, when it is among them.
    for (const auto& s : same_patient)
      if (s.study_uid == report->study_uid) return make_object(row, *report, s, source_of(*msg));
  }
  if (same_patient.size() > 1)
    return settle(row, Outcome::kRefused,
                  "several studies of the patient carry this accession number");
  return make_object(row, *report, same_patient.front(), source_of(*msg));
}

// The report as an object of the study, through the same door as a received instance.
ReportService::Tried ReportService::make_object(const catalog::StoredReport& row,
                                                const hl7::Report& report,
                                                const catalog::StudyMatch& study,
                                                const std::string& source) {
  auto latest = latest_version(row, report);
  if (!latest) return {Outcome::kWaiting, latest.error().to_string()};
  const char* sop_class = report_sop_class(report);
  ObjectIdentity id;
  id.sop_instance_uid =
      uid_under_root(cfg_.uid_root, "report/" + row.message_key + "/" + std::to_string(row.id));
  id.series_uid =
      uid_under_root(cfg_.uid_root, "report-series/" + study.study_uid + "/" + sop_class);
  id.instance_number = *latest ? (*latest)->version + 1 : 1;
  id.created = dicom_datetime(row.received_at);
  if (*latest && (*latest)->study_uid == study.study_uid) {
    id.predecessor_sop_instance = (*latest)->sop_instance_uid;
    id.predecessor_sop_class = (*latest)->sop_class_uid;
    id.predecessor_series_uid = (*latest)->series_uid;
  }
  const auto temp = spool_.new_temp_path();
  auto written = write_report_object(report, spool_.object_path(study.image_sha256), id, temp);
  if (!written) {
    spool_.discard_temp(temp);
    // An image we cannot read (or a report DCMTK will not encode) does not get better.
    if (written.error().code == ErrorCode::kBadDicom)
      return settle(row, Outcome::kRefused, "object not made: " + written.error().detail);
    log::error("HL7 report: object not made",
               {{"report", std::to_string(row.id)}, {"error", written.error().to_string()}});
    return {Outcome::kWaiting, written.error().to_string()};
  }
  auto scan = ingest::prescan_file(temp, limits_);
  if (!scan) {
    spool_.discard_temp(temp);
    return {Outcome::kWaiting, scan.error().to_string()};
  }
  auto stored = spool_.commit(temp, limits_.max_object_size);
  if (!stored) return {Outcome::kWaiting, stored.error().to_string()};
  ingest::ReceivedObject received{std::move(*stored), std::move(*scan), "", source};
  if (auto sunk = sink_.object_received(received); !sunk)
    return {Outcome::kWaiting, sunk.error().to_string()};
  catalog::StoredReport done = row;
  done.study_uid = study.study_uid;
  done.sop_instance_uid = id.sop_instance_uid;
  done.sop_class_uid = sop_class;
  done.series_uid = id.series_uid;
  done.version = id.instance_number;
  if (auto m = ledger_.mark_done(done); !m) return {Outcome::kWaiting, m.error().to_string()};
  if (on_done_) on_done_();
  log::info("HL7 report made into an object of its study",
            {{"report", std::to_string(row.id)},
             {"study_uid", study.study_uid},
             {"sop_instance_uid", id.sop_instance_uid},
             {"sop_class_uid", sop_class},
             {"version", std::to_string(id.instance_number)}});
  return {Outcome::kDone, ""};
}

ingest::Hl7Verdict ReportRouter::on_message(const hl7::Message& message, const std::string& peer) {
  const std::string type = message.message_type();
  if (type == "ORU" || type == "MDM") return reports_.on_report(message, peer);
  return next_.on_message(message, peer);
}

}  // namespace dirgw::reports
