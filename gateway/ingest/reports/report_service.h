// Reports over HL7 v2 into their study (issue 12). An ORU^R01 / MDM^T02 that arrives on the
// MLLP listener is validated (hl7::extract_report), committed to the catalog (ReportLedger) and
// only then acknowledged AA. When its study is here (found by Accession Number, the patient
// checked against the study's images) it becomes a DICOM object of that study (report_object.h)
// and enters through the same door as any received instance: spool temporary, pre-scan, durable
// commit, ObjectSink (the catalog), so consent, validation, de-identification and the life cycle
// treat it like any other instance. A report whose images have not arrived waits in the catalog
// and goes when they do (wake() on each instance received; a slow timer as a safety net).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "catalog/report_ledger.h"
#include "config/config.h"
#include "ingest/dimse_scp/scp.h"
#include "ingest/hl7_mllp/listener.h"
#include "ingest/hl7_mllp/report.h"
#include "ingest/prescan/prescan.h"
#include "ingest/spool/spool.h"
#include "metrics/metrics.h"

namespace dirgw::reports {

// The key that chains the versions of one report: its accession and one PID-3 ID that stays when
// others come and go (the facility's record number before a health number, which registration
// may add between a final and its correction).
std::string report_key(const hl7::Report& report);

// What happened to one report in a round.
enum class Outcome {
  kDone,        // the object is in the spool and the catalog
  kWaiting,     // no study with its accession yet (or our side failed: tried again later)
  kRefused,     // a study with its accession belongs to another patient, or several match
  kSuperseded,  // a preliminary arriving after a final version was sent
};

class ReportService {
 public:
  ReportService(const config::Hl7Reports& cfg, catalog::ReportLedger& ledger,
                const ingest::Spool& spool, ingest::ObjectSink& sink, ingest::PrescanLimits limits);
  ~ReportService();
  ReportService(const ReportService&) = delete;
  ReportService& operator=(const ReportService&) = delete;

  // ORU^R01 / MDM^T02 from the listener: how to acknowledge it (our words only).
  ingest::Hl7Verdict on_report(const hl7::Message& message, const std::string& peer);
  // Reports answered AE or AR since start (never stored, or refused at once): status, metrics.
  struct Refused {
    std::uint64_t ae = 0, ar = 0;
  };
  Refused refused() const { return {refused_ae_.load(), refused_ar_.load()}; }
  // dirgw_hl7_reports_refused_total{answer="AE|AR"}, read at scrape time.
  void register_metrics(metrics::Registry& registry) const;

  void start();  // the thread that sends waiting reports when their images arrive
  void stop();
  void wake();  // an instance was received
  // Called once a report is an object of its study (a study held for it may go now); set
  // before start().
  void set_on_done(std::function<void()> on_done) { on_done_ = std::move(on_done); }

  struct Round {
    int indexed = 0, done = 0, waiting = 0, refused = 0, superseded = 0;
    int expired = 0;  // waited too long, or too many waiting (max_waiting, max_waiting_age)
  };
  // One round: index the studies received since the last round, try every waiting report.
  Round step();

 private:
  struct Tried {
    Outcome outcome = Outcome::kWaiting;
    std::string reason;  // our words
  };
  ingest::Hl7Verdict answer(const hl7::Message& message, const std::string& peer);
  ingest::Hl7Verdict known_answer(std::int64_t id);
  Result<std::optional<catalog::StoredReport>> latest_version(const catalog::StoredReport& row,
                                                              const hl7::Report& report);
  ingest::Hl7Verdict store_and_try(const hl7::Report& report, const std::string& er7,
                                   const std::string& digest, const std::string& peer);
  int expire_waiting();
  int index_studies();
  Tried try_report(const catalog::StoredReport& row);
  Tried settle(const catalog::StoredReport& row, Outcome outcome, std::string reason);
  Tried make_object(const catalog::StoredReport& row, const hl7::Report& report,
                    const catalog::StudyMatch& study, const std::string& source);
  void run();

  const config::Hl7Reports& cfg_;
  hl7::ReportConfig mapping_;
  catalog::ReportLedger& ledger_;
  const ingest::Spool& spool_;
  ingest::ObjectSink& sink_;
  ingest::PrescanLimits limits_;
  std::mutex round_mutex_;  // one round at a time: the listener's worker and our thread
  std::mutex wake_mutex_;
  std::condition_variable wake_cv_;
  bool woken_ = false, stopping_ = false;
  std::thread thread_;
  std::function<void()> on_done_;
  std::atomic<std::uint64_t> refused_ae_{0}, refused_ar_{0};
};

// The listener's sink: reports go to the ReportService, every other message to `next` (consent,
// health-number links).
class ReportRouter final : public ingest::Hl7Sink {
 public:
  ReportRouter(ReportService& reports, ingest::Hl7Sink& next) : reports_(reports), next_(next) {}
  ingest::Hl7Verdict on_message(const hl7::Message& message, const std::string& peer) override;

 private:
  ReportService& reports_;
  ingest::Hl7Sink& next_;
};

}  // namespace dirgw::reports
