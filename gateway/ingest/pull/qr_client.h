// Query/retrieve against one PACS (issue 12, ingest.pull): C-FIND at study level for the studies
// in a date range, SERIES/IMAGE C-FINDs to count a study's instances when the PACS does not
// report NumberOfStudyRelatedInstances, and C-MOVE of one study to our own receiver, or C-GET
// (the objects come back as C-STORE sub-operations on an association of our own, proposed for the
// study's classes in every syntax the receiver takes, get_contexts.h; each object is received into
// a spool temporary, pre-scanned, committed and handed to the ObjectSink as the SCP does). A
// session is one association (DCMTK's DcmSCU) for C-FIND and C-MOVE, and one more per C-GET; the
// poller sees only the QrSession interface, so that a unit test drives it with a fake. Only UIDs,
// SOP classes, modalities, dates and counts are asked for: no patient value is requested, and
// DCMTK's own logging (which prints datasets) stays off. No exceptions leave.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/result.h"
#include "config/pull_config.h"
#include "ingest/dimse_scp/scp.h"
#include "ingest/prescan/prescan.h"
#include "ingest/spool/spool.h"

namespace dirgw::ingest::pull {

struct FoundStudy {
  std::string study_uid;
  std::int64_t reported = -1;        // NumberOfStudyRelatedInstances; -1: not answered
  std::set<std::string> modalities;  // ModalitiesInStudy; empty: not answered
};

struct StudyContents {
  std::int64_t instances = 0;
  std::set<std::string> modalities;
  std::set<std::string> sop_classes;  // SOP Class UIDs the PACS returned at IMAGE level, if any
};

struct MoveResult {
  std::uint16_t status = 0;  // the final C-MOVE-RSP's status
  int completed = 0, failed = 0, warning = 0;
  bool success() const { return status == 0x0000; }
};

class QrSession {
 public:
  virtual ~QrSession() = default;
  // Studies whose Study Date is `from_date` (YYYYMMDD) or later.
  virtual Result<std::vector<FoundStudy>> find_studies(const std::string& from_date) = 0;
  // Studies whose Study Date is exactly `date` (YYYYMMDD): the PACS's own count of a day for
  // the daily report (report.pacs, docs/report.md).
  virtual Result<std::vector<FoundStudy>> find_studies_on(const std::string& date) {
    (void)date;
    return make_error(ErrorCode::kNetwork, "C-FIND by date is not available on this session");
  }
  // The answers to a study-level C-FIND on this UID: none when the PACS no longer holds it,
  // several from a PACS that answers once per Patient ID (merge_answers).
  virtual Result<std::vector<FoundStudy>> find_study(const std::string& study_uid) {
    (void)study_uid;
    return make_error(ErrorCode::kNetwork, "C-FIND by UID is not available on this session");
  }
  // Series (with modality) then images of one study: what it holds, for PACS that do not
  // answer NumberOfStudyRelatedInstances or ModalitiesInStudy.
  virtual Result<StudyContents> study_contents(const std::string& study_uid) = 0;
  // C-MOVE of the whole study to `destination`; returns when the PACS's final answer arrives.
  virtual Result<MoveResult> move_study(const std::string& study_uid,
                                        const std::string& destination) = 0;
  // C-GET of the whole study, on an association of its own proposed for the study's SOP classes
  // and modalities (get_contexts.h); the objects reach the intake's sink before this returns.
  virtual Result<MoveResult> get_study(const std::string& study_uid) {
    (void)study_uid;
    return make_error(ErrorCode::kNetwork, "C-GET is not available on this session");
  }
};

// Where the objects of a C-GET go: the same intake as a C-STORE to our receiver. The calling AE
// recorded is the PACS's, so the pull sink counts them for the pull in progress. The C-GET
// association proposes the transfer syntaxes the receiver offers (ingest.dicom.transfer_syntaxes),
// so that the PACS can send its objects as it holds them (get_contexts.h).
struct GetIntake {
  const Spool* spool = nullptr;
  ObjectSink* sink = nullptr;
  PrescanLimits limits;
  std::vector<std::string> transfer_syntaxes;
};

// Opens a session (one association with the Study Root FIND and MOVE models) with the PACS.
using QrConnect = std::function<Result<std::unique_ptr<QrSession>>(const config::PullSource&,
                                                                   const std::string& calling_ae)>;
// `intake` is needed for sources with retrieve: get (it outlives the session).
Result<std::unique_ptr<QrSession>> connect_dcmtk(const config::PullSource& source,
                                                 const std::string& calling_ae,
                                                 const GetIntake* intake = nullptr);

}  // namespace dirgw::ingest::pull
