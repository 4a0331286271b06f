#include "ingest/dimse_scp/commitment.h"

#include <cstring>

#include "common/text.h"
#include "common/uid.h"
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcitem.h"
#include "dcmtk/dcmdata/dcsequen.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmnet/assoc.h"
#include "dcmtk/dcmnet/dimse.h"
#include "ingest/dimse_scp/checked_receive.h"
#include "log/log.h"

namespace dirgw::ingest {

namespace {

// A UID element of `item`, trimmed; empty when absent.
std::string uid_of(DcmItem& item, const DcmTagKey& tag) {
  OFString v;
  if (item.findAndGetOFString(tag, v).bad()) return {};
  return uid_text(std::string_view(v.c_str(), v.length()));
}

Result<void> read_refs(DcmDataset& ds, const DcmTagKey& seq_tag, const char* name, bool failed,
                       CommitmentReport& out) {
  DcmSequenceOfItems* seq = nullptr;
  if (ds.findAndGetSequence(seq_tag, seq).bad() || seq == nullptr) return {};
  for (unsigned long i = 0; i < seq->card(); ++i) {
    DcmItem* item = seq->getItem(i);
    const std::string cls = uid_of(*item, DCM_ReferencedSOPClassUID);
    const std::string inst = uid_of(*item, DCM_ReferencedSOPInstanceUID);
    if (!uid_syntax_ok(cls) || !uid_syntax_ok(inst))
      return Error{ErrorCode::kProtocol, std::string(name) + " item " + std::to_string(i + 1) +
                                             " lacks a well-formed Referenced SOP Class or "
                                             "Instance UID"};
    if (!failed) {
      out.committed.push_back({cls, inst});
      continue;
    }
    Uint16 reason = 0;
    (void)item->findAndGetUint16(DCM_FailureReason, reason);
    out.failed.push_back({cls, inst, reason});
  }
  return {};
}

}  // namespace

std::unique_ptr<DcmDataset> build_commitment_request(const std::string& transaction_uid,
                                                     const std::vector<CommitRef>& refs) {
  auto ds = std::make_unique<DcmDataset>();
  ds->putAndInsertString(DCM_TransactionUID, transaction_uid.c_str());
  ds->insertEmptyElement(DCM_ReferencedSOPSequence);
  for (const auto& r : refs) {
    DcmItem* item = nullptr;
    if (ds->findOrCreateSequenceItem(DCM_ReferencedSOPSequence, item, -2).bad()) continue;
    item->putAndInsertString(DCM_ReferencedSOPClassUID, r.sop_class_uid.c_str());
    item->putAndInsertString(DCM_ReferencedSOPInstanceUID, r.sop_instance_uid.c_str());
  }
  return ds;
}

Result<CommitmentReport> parse_commitment_report(DcmDataset& ds, int event_type) {
  CommitmentReport r;
  r.event_type = event_type;
  if (event_type != 1 && event_type != 2)
    return Error{ErrorCode::kProtocol,
                 "event type " + std::to_string(event_type) + " is not 1 or 2"};
  r.transaction_uid = uid_of(ds, DCM_TransactionUID);
  if (!uid_syntax_ok(r.transaction_uid))
    return Error{ErrorCode::kProtocol, "no well-formed Transaction UID"};
  if (auto ok = read_refs(ds, DCM_ReferencedSOPSequence, "Referenced SOP Sequence", false, r); !ok)
    return ok.error();
  if (auto ok = read_refs(ds, DCM_FailedSOPSequence, "Failed SOP Sequence", true, r); !ok)
    return ok.error();
  if (event_type == 2 && r.failed.empty())
    return Error{ErrorCode::kProtocol, "event type 2 without a Failed SOP Sequence item"};
  if (event_type == 1 && !r.failed.empty())
    return Error{ErrorCode::kProtocol, "event type 1 with a Failed SOP Sequence"};
  return r;
}

namespace {

bool send_event_report_rsp(T_ASC_Association* assoc, std::uint8_t pres_id,
                           const T_DIMSE_N_EventReportRQ& rq, std::uint16_t status) {
  T_DIMSE_Message rsp;
  std::memset(&rsp, 0, sizeof rsp);
  rsp.CommandField = DIMSE_N_EVENT_REPORT_RSP;
  auto& r = rsp.msg.NEventReportRSP;
  r.MessageIDBeingRespondedTo = rq.MessageID;
  r.DimseStatus = status;
  r.DataSetType = DIMSE_DATASET_NULL;
  OFStandard::strlcpy(r.AffectedSOPClassUID, rq.AffectedSOPClassUID, sizeof r.AffectedSOPClassUID);
  OFStandard::strlcpy(r.AffectedSOPInstanceUID, rq.AffectedSOPInstanceUID,
                      sizeof r.AffectedSOPInstanceUID);
  r.EventTypeID = rq.EventTypeID;
  r.opts = O_NEVENTREPORT_AFFECTEDSOPCLASSUID | O_NEVENTREPORT_AFFECTEDSOPINSTANCEUID |
           O_NEVENTREPORT_EVENTTYPEID;
  return DIMSE_sendMessageUsingMemoryData(assoc, pres_id, &rsp, nullptr, nullptr, nullptr, nullptr)
      .good();
}

}  // namespace

bool accept_commitment_context(T_ASC_Parameters* params, const T_ASC_PresentationContext& pc) {
  for (const char* ts :
       {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax})
    for (int t = 0; t < pc.transferSyntaxCount; ++t)
      if (uid_text(pc.proposedTransferSyntaxes[t]) == ts)
        return ASC_acceptPresentationContext(params, pc.presentationContextID, ts, pc.proposedRole)
            .good();
  return false;
}

bool serve_event_report(T_ASC_Association* assoc, std::uint8_t pres_id,
                        const T_DIMSE_N_EventReportRQ& rq, CommitmentReceiver& receiver,
                        const std::string& calling_ae, const std::string& peer, int dimse_secs) {
  DcmDataset* raw = nullptr;
  if (rq.DataSetType != DIMSE_DATASET_NULL) {
    T_ASC_PresentationContextID data_pres = 0;
    // Pre-scanned before DCMTK parses it: a destination's report is untrusted input too.
    const OFCondition cond = receive_dataset_checked(assoc, dimse_secs, &data_pres, &raw);
    if (cond.bad()) {
      log::warn("storage commitment report: data set not received",
                {{"calling_ae", calling_ae}, {"peer", peer}, {"reason", cond.text()}});
      delete raw;
      return false;
    }
  }
  std::unique_ptr<DcmDataset> ds(raw);
  std::uint16_t status = kStatusSuccess;
  std::string why;
  if (uid_text(rq.AffectedSOPClassUID) != kStorageCommitmentClass) {
    status = kStatusNoSuchSopClass;
    why = "not the Storage Commitment Push Model SOP Class";
  } else if (rq.EventTypeID != 1 && rq.EventTypeID != 2) {
    status = kStatusNoSuchEventType;
    why = "event type " + std::to_string(rq.EventTypeID) + " is not 1 or 2";
  } else if (!ds) {
    status = kStatusInvalidArgument;
    why = "no event information";
  } else if (auto report = parse_commitment_report(*ds, rq.EventTypeID); !report) {
    status = kStatusInvalidArgument;
    why = report.error().detail;
  } else {
    status = receiver.event_report(calling_ae, peer, *report);
  }
  if (!why.empty())
    log::warn("storage commitment report refused",
              {{"calling_ae", calling_ae}, {"peer", peer}, {"reason", why}});
  return send_event_report_rsp(assoc, pres_id, rq, status);
}

}  // namespace dirgw::ingest
