#include "senders/dimse/commitment_scu.h"

#include <cstring>

#include "common/dcmtk_guard.h"
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmnet/assoc.h"
#include "dcmtk/dcmnet/dimse.h"
#include "dcmtk/dcmnet/dul.h"
#include "ingest/dimse_scp/checked_receive.h"
#include "ingest/dimse_scp/watched_layer.h"
#include "log/log.h"
#include "senders/dimse/association.h"

namespace dirgw::senders {

namespace dimse {

namespace {
int seconds_at_least_one(std::chrono::milliseconds ms) {
  return static_cast<int>(std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(ms + std::chrono::milliseconds(999))
             .count()));
}
}  // namespace

Result<std::uint16_t> Association::n_action(std::uint8_t context_id, DcmDataset& information) {
  if (assoc_ == nullptr) return Error{ErrorCode::kNetwork, "association already closed"};
  T_DIMSE_Message rq;
  std::memset(&rq, 0, sizeof rq);
  rq.CommandField = DIMSE_N_ACTION_RQ;
  auto& a = rq.msg.NActionRQ;
  a.MessageID = assoc_->nextMsgID++;
  OFStandard::strlcpy(a.RequestedSOPClassUID, ingest::kStorageCommitmentClass,
                      sizeof a.RequestedSOPClassUID);
  OFStandard::strlcpy(a.RequestedSOPInstanceUID, ingest::kStorageCommitmentInstance,
                      sizeof a.RequestedSOPInstanceUID);
  a.ActionTypeID = 1;
  a.DataSetType = DIMSE_DATASET_PRESENT;
  OFCondition cond = DIMSE_sendMessageUsingMemoryData(assoc_, context_id, &rq, nullptr,
                                                      &information, nullptr, nullptr);
  if (cond.bad()) {
    abort();
    return Error{ErrorCode::kNetwork, std::string("sending the N-ACTION failed: ") + cond.text()};
  }
  // Reports that come before the answer are not expected (the answer comes first, PS3.7
  // 10.3.7), so the next command must be the N-ACTION-RSP.
  T_DIMSE_Message rsp;
  std::memset(&rsp, 0, sizeof rsp);
  T_ASC_PresentationContextID pres_id = 0;
  DcmDataset* detail = nullptr;
  cond = dcmtk_guard([&] {
    return DIMSE_receiveCommand(assoc_, DIMSE_NONBLOCKING,
                                seconds_at_least_one(opts_.dimse_timeout), &pres_id, &rsp, &detail);
  });
  delete detail;  // the peer's words
  if (cond.bad() || rsp.CommandField != DIMSE_N_ACTION_RSP ||
      rsp.msg.NActionRSP.MessageIDBeingRespondedTo != a.MessageID) {
    abort();
    return Error{ErrorCode::kNetwork,
                 cond.bad() ? "no N-ACTION response: " + ingest::dimse_failure_text(cond)
                            : std::string("unexpected answer to the N-ACTION")};
  }
  if (rsp.msg.NActionRSP.DataSetType != DIMSE_DATASET_NULL) {
    DcmDataset* reply = nullptr;
    const OFCondition got = ingest::receive_dataset_checked(
        assoc_, seconds_at_least_one(opts_.dimse_timeout), &pres_id, &reply);
    delete reply;     // nothing in it is needed
    if (got.bad()) {  // the association's state is unknown after that
      abort();
      return Error{ErrorCode::kNetwork, std::string("the N-ACTION reply: ") + got.text()};
    }
  }
  return rsp.msg.NActionRSP.DimseStatus;
}

bool Association::serve_reports(std::chrono::milliseconds linger,
                                ingest::CommitmentReceiver& receiver,
                                const std::function<bool()>& done) {
  const auto until = std::chrono::steady_clock::now() + linger;
  const std::string peer = opts_.host + ":" + std::to_string(opts_.port);
  while (assoc_ != nullptr && !done() && std::chrono::steady_clock::now() < until) {
    T_DIMSE_Message msg;
    std::memset(&msg, 0, sizeof msg);
    T_ASC_PresentationContextID pres_id = 0;
    const OFCondition cond = dcmtk_guard([&] {
      return DIMSE_receiveCommand(assoc_, DIMSE_NONBLOCKING, 1, &pres_id, &msg, nullptr);
    });
    if (cond == DIMSE_NODATAAVAILABLE) continue;
    if (cond.bad()) {
      abort();
      return false;
    }
    if (msg.CommandField != DIMSE_N_EVENT_REPORT_RQ ||
        !ingest::serve_event_report(assoc_, pres_id, msg.msg.NEventReportRQ, receiver,
                                    opts_.called_ae, peer,
                                    seconds_at_least_one(opts_.dimse_timeout))) {
      abort();
      return false;
    }
  }
  return assoc_ != nullptr;
}

}  // namespace dimse

Result<void> request_storage_commitment(const DimseOptions& options,
                                        const std::string& transaction_uid,
                                        const std::vector<ingest::CommitRef>& refs,
                                        ingest::CommitmentReceiver& receiver,
                                        std::chrono::milliseconds linger,
                                        const std::function<bool()>& answered) {
  auto network = dimse::Network::create(options);
  if (!network) return network.error();
  // Two contexts for the one class, so that the destination's choice of syntax is not refused.
  const std::vector<dimse::ProposedContext> contexts = {
      {1, ingest::kStorageCommitmentClass, UID_LittleEndianExplicitTransferSyntax},
      {3, ingest::kStorageCommitmentClass, UID_LittleEndianImplicitTransferSyntax}};
  dimse::Verdict failure{InstanceStatus::kRetry, ""};
  auto assoc = dimse::Association::request(**network, options, contexts, &failure);
  if (!assoc) return Error{ErrorCode::kNetwork, failure.reason};
  std::uint8_t context = 0;
  for (const auto& c : assoc->contexts())
    if (c.accepted && context == 0) context = c.id;
  if (context == 0) {
    assoc->release();
    return Error{ErrorCode::kRefused,
                 "the destination does not accept the Storage Commitment Push Model SOP Class"};
  }
  auto information = ingest::build_commitment_request(transaction_uid, refs);
  auto status = assoc->n_action(context, *information);
  if (!status) return status.error();
  if (*status != 0x0000) {
    assoc->release();
    return Error{ErrorCode::kRefused,
                 "N-ACTION refused with DIMSE status " + dimse::hex_status(*status)};
  }
  if (assoc->serve_reports(linger, receiver, answered)) assoc->release();
  return {};
}

}  // namespace dirgw::senders
