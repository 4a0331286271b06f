// Storage Commitment Push Model (PS3.4 Annex J; SOP Class 1.2.840.10008.1.20.1): the messages
// dirgw exchanges with a DICOM destination to prove that it keeps what it took.
//   N-ACTION-RQ (action type 1) from dirgw: Transaction UID + Referenced SOP Sequence;
//   N-EVENT-REPORT-RQ (event type 1: all committed, 2: some failed) from the destination, on the
//   same association or on one it opens to dirgw's SCP: Referenced SOP Sequence and Failed SOP
//   Sequence (with Failure Reason).
// This file owns the data sets (build and parse, no I/O) and answering one N-EVENT-REPORT-RQ
// (serve_event_report, used by the SCP and by the sender's association). What a report means
// for the catalog is decided behind CommitmentReceiver (verify/commitment_inbox), which the
// ingest stage never learns about.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"

class DcmDataset;
struct T_ASC_Association;
struct T_DIMSE_N_EventReportRQ;
struct T_ASC_Parameters;
struct T_ASC_PresentationContext;

namespace dirgw::ingest {

inline constexpr const char* kStorageCommitmentClass = "1.2.840.10008.1.20.1";
inline constexpr const char* kStorageCommitmentInstance = "1.2.840.10008.1.20.1.1";

struct CommitRef {
  std::string sop_class_uid, sop_instance_uid;
};
struct FailedRef {
  std::string sop_class_uid, sop_instance_uid;
  std::uint16_t failure_reason = 0;
};

struct CommitmentReport {
  std::string transaction_uid;
  int event_type = 0;  // 1: every instance committed; 2: some failed
  std::vector<CommitRef> committed;
  std::vector<FailedRef> failed;
};

// DIMSE statuses dirgw answers an N-EVENT-REPORT-RQ with (PS3.7 Annex C).
inline constexpr std::uint16_t kStatusSuccess = 0x0000;
inline constexpr std::uint16_t kStatusProcessingFailure = 0x0110;
inline constexpr std::uint16_t kStatusNoSuchEventType = 0x0113;
inline constexpr std::uint16_t kStatusInvalidArgument = 0x0115;
inline constexpr std::uint16_t kStatusNoSuchSopClass = 0x0118;
inline constexpr std::uint16_t kStatusNotAuthorized = 0x0124;

// The N-ACTION-RQ's Action Information. The caller owns the result.
std::unique_ptr<DcmDataset> build_commitment_request(const std::string& transaction_uid,
                                                     const std::vector<CommitRef>& refs);

// The N-EVENT-REPORT-RQ's Event Information. An error names what is wrong (a missing or
// malformed Transaction UID, an item without its UIDs): never a value of the data set.
Result<CommitmentReport> parse_commitment_report(DcmDataset& event_information, int event_type);

// Decides what a report means and answers with a DIMSE status (kStatus*). Called on the SCP's
// association threads and on the sender's: implementations are thread-safe.
class CommitmentReceiver {
 public:
  virtual ~CommitmentReceiver() = default;
  virtual std::uint16_t event_report(const std::string& calling_ae, const std::string& peer,
                                     const CommitmentReport& report) = 0;
};

// Accepts a proposed Storage Commitment Push Model context: Explicit VR Little Endian when
// proposed, else Implicit VR Little Endian; the SCU/SCP role as the peer proposes it (a
// repository that opens an association to send its report proposes to be the SCP). False when
// neither syntax was proposed (the caller refuses it).
bool accept_commitment_context(T_ASC_Parameters* params, const T_ASC_PresentationContext& pc);

// Reads the data set of an N-EVENT-REPORT-RQ just received on `assoc`, hands the report to
// `receiver` and sends the N-EVENT-REPORT-RSP. False when the association failed (the caller
// ends it); a report refused is answered with a failure status and logged without PHI.
bool serve_event_report(T_ASC_Association* assoc, std::uint8_t pres_id,
                        const T_DIMSE_N_EventReportRQ& request, CommitmentReceiver& receiver,
                        const std::string& calling_ae, const std::string& peer, int dimse_secs);

}  // namespace dirgw::ingest
