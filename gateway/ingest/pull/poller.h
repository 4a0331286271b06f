// PACS that cannot push, polled on a schedule (issue 12, ingest.pull). Each poll: C-FIND at
// study level for the studies whose date lies in the look-back window (counted from the durable
// poll point, the start of the last poll that finished), then for each study we do not hold
// completely a C-MOVE to our own DICOM receiver, whose objects follow the usual path (PullSink
// records them as "pull:<name>"). What we hold is counted in the catalog (distinct SOP instances,
// whatever door they came through) and compared with what the PACS reports, so a study held
// completely is never asked for again and one that grew on the PACS is asked for again. Polls
// and studies that fail are retried with exponential backoff; a study left incomplete whose date
// has left the window is asked for by UID, and one the PACS no longer holds is given up.
//
// One thread for all sources (DIMSE calls block); step() is one pass a unit test drives on a
// FakeClock with a fake QrSession.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catalog/pull_ledger.h"
#include "common/clock.h"
#include "config/pull_config.h"
#include "ingest/pull/pull_sink.h"
#include "ingest/pull/pull_status.h"
#include "ingest/pull/qr_client.h"

namespace dirgw::ingest::pull {

// What to do with a study the PACS listed (pure, tested exhaustively).
enum class StudyAction { kSkip, kWait, kPull };
StudyAction decide(const std::optional<catalog::PullStudyRow>& row, std::int64_t reported,
                   std::int64_t held, std::int64_t now_ms);
// The delay before retry `failures` (>= 1): initial * 2^(failures-1), at most `max`.
std::chrono::milliseconds backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max,
                                  int failures);
// The first Study Date (YYYYMMDD) of the window ending at `now`, in the IANA zone `tz`.
std::string window_start_date(TimePoint poll_point, std::chrono::milliseconds look_back,
                              const std::string& tz);

// One answer per Study Instance UID: a PACS that files one study under two patients (Orthanc,
// after a modality sent it again with a corrected Patient ID) answers the C-FIND once for each;
// their instance counts are added (unknown when one is) and their modalities joined, in the
// order first answered.
std::vector<FoundStudy> merge_answers(const std::vector<FoundStudy>& answers);

// Queries by UID answered with no match, in a row, after which an incomplete study is taken as
// deleted on the PACS ('gone').
constexpr int kNotFoundToGone = 3;

// Why a C-MOVE or C-GET that ended with a failure status failed, for the log and dirgw sources:
// the status, with a hint for the usual ones ("" for success).
std::string retrieve_status_text(std::uint16_t status);

class Poller {
 public:
  // `our_ae`: ingest.dicom.ae_title (the default calling AE and move destination).
  Poller(
      std::vector<config::PullSource> sources, std::string our_ae, std::string time_zone,
      catalog::PullLedger& ledger, PullSink& sink, const Clock& clock,
      QrConnect connect = [](const config::PullSource& s, const std::string& ae) {
        return connect_dcmtk(s, ae);
      });
  ~Poller();
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;

  void start();
  // Asks the thread to stop between two studies and returns at once; the receiver's bounded
  // stop then cuts a C-MOVE in progress short.
  void request_stop();
  // request_stop() and waits for the thread (a C-MOVE in progress ends or times out first).
  void stop();
  // Polls every source that is due; returns when the next one is.
  TimePoint step();
  std::vector<PullStatus> status() const;

 private:
  struct Source;
  void run();
  void poll(Source& s, TimePoint now);
  // Looks at one study the PACS listed; false when the session is unusable.
  bool handle_study(Source& s, QrSession& session, const FoundStudy& found, std::int64_t now);
  // A study out of the window, due again: asked for by its UID first. False when the session is
  // unusable.
  bool handle_left_study(Source& s, QrSession& session, const catalog::PullStudyRow& row,
                         std::int64_t now);
  bool retrieve(Source& s, QrSession& session, const std::string& study_uid, std::int64_t reported,
                std::int64_t held_before, std::optional<catalog::PullStudyRow> row,
                std::int64_t now);
  void finish_poll(Source& s, catalog::PullSourceRow row, const std::string& error,
                   TimePoint started);

  std::vector<std::unique_ptr<Source>> sources_;
  std::string our_ae_, timezone_;
  catalog::PullLedger& ledger_;
  PullSink& sink_;
  const Clock& clock_;
  QrConnect connect_;
  std::atomic<bool> stopping_{false};
  std::mutex wake_mutex_;
  std::condition_variable wake_;
  std::thread thread_;
  mutable std::mutex status_mutex_;
};

}  // namespace dirgw::ingest::pull
