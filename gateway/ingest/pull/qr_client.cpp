#include "ingest/pull/qr_client.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <optional>
#include <utility>

// clang-format off
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmnet/dcmlayer.h"
#include "dcmtk/dcmnet/dcmtrans.h"
#include "dcmtk/dcmnet/scu.h"
#include "dcmtk/dcmnet/dimse.h"
#include "dcmtk/oflog/oflog.h"
// clang-format on

#include "common/dcmtk_guard.h"
#include "common/uid.h"
#include "ingest/dimse_scp/watched_layer.h"
#include "ingest/pull/get_contexts.h"
#include "log/log.h"

namespace dirgw::ingest::pull {

namespace {

// Every connection to the PACS gets TCP_NODELAY (whatever the environment says) and socket
// time-outs, before its first byte. DcmSCU takes a transport layer only as its "secure" one;
// this layer hands back plain TCP connections whatever it is asked for, watched: the PACS's
// answers pass a watch before DCMTK parses them (watched_layer.h).
class TcpLayer final : public DcmTransportLayer {
 public:
  explicit TcpLayer(std::chrono::milliseconds timeout) : timeout_(timeout) {}
  DcmTransportConnection* createConnection(DcmNativeSocketType socket, OFBool) override {
    socket_ = socket;
    int one = 1;
    ::setsockopt(socket, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    DcmTransportConnection* c =
        watch_connection(socket, DcmTransportLayer::createConnection(socket, OFFalse),
                         /*check_answers=*/true);
    timeval tv{};
    tv.tv_sec = std::max<long>(1, static_cast<long>((timeout_.count() + 999) / 1000));
    ::setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ::setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return c;
  }
  int socket() const { return socket_; }

 private:
  std::chrono::milliseconds timeout_;
  int socket_ = -1;
};

std::string uid_text(const char* v) {
  std::string s(v);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

// DcmSCU keeps its transport-layer hook protected (it is meant for DcmTLSSCU). For C-GET it
// receives each C-STORE sub-operation bit-preserving into a spool temporary of ours (DCMTK's own
// file name would be made from the SOP Instance UID: never used), which then takes the SCP's
// intake path; the answer to the PACS says what became of the object.
class Scu final : public DcmSCU {
 public:
  using DcmSCU::useSecureConnection;
  void set_intake(const GetIntake* intake, const TcpLayer* layer, std::string calling_ae,
                  std::string peer) {
    intake_ = intake;
    layer_ = layer;
    calling_ae_ = std::move(calling_ae);
    peer_ = std::move(peer);
  }
  int refused() const { return refused_; }

 protected:
  OFCondition handleSTORERequestFile(T_ASC_PresentationContextID* pres_id, const OFString&,
                                     T_DIMSE_C_StoreRQ* request) override;
  OFCondition sendSTOREResponse(T_ASC_PresentationContextID pres_id, Uint16 status,
                                const T_DIMSE_C_StoreRQ& request) override {
    return DcmSCU::sendSTOREResponse(pres_id, status != 0 ? status : answer_, request);
  }
  // An object beyond max_object_size: the connection is shut, the receive fails, the temporary
  // is deleted and the C-GET ends (as the SCP cuts such a C-STORE).
  void notifyRECEIVEProgress(const unsigned long bytes) override {
    if (intake_ != nullptr && layer_ != nullptr && layer_->socket() >= 0 &&
        bytes > intake_->limits.max_object_size)
      ::shutdown(layer_->socket(), SHUT_RDWR);
  }

 private:
  Uint16 refuse(Uint16 status, const std::string& why) {
    ++refused_;
    intake_->sink->refused(DoorRefusal{calling_ae_, peer_, "C-GET sub-operation refused: " + why,
                                       refusal::kStoreRefused, false});
    return status;
  }
  // noexcept: it runs inside sendCGETRequest, whose dcmtk_guard is for DCMTK's exceptions.
  Uint16 take(const std::filesystem::path& temp, const T_DIMSE_C_StoreRQ& request) noexcept;

  const GetIntake* intake_ = nullptr;
  const TcpLayer* layer_ = nullptr;
  std::string calling_ae_, peer_;
  Uint16 answer_ = STATUS_STORE_Refused_OutOfResources;
  int refused_ = 0;
};

OFCondition Scu::handleSTORERequestFile(T_ASC_PresentationContextID* pres_id, const OFString&,
                                        T_DIMSE_C_StoreRQ* request) {
  answer_ = STATUS_STORE_Refused_OutOfResources;
  if (intake_ == nullptr) return EC_IllegalCall;
  const auto temp = intake_->spool->new_temp_path();
  const OFCondition cond = DcmSCU::handleSTORERequestFile(pres_id, temp.c_str(), request);
  if (cond.bad()) {
    intake_->spool->discard_temp(temp);
    return cond;
  }
  answer_ = take(temp, *request);
  return EC_Normal;
}

// The SCP's intake (scp.cpp, store_callback): pre-scan, UIDs as announced, spool, catalog.
Uint16 Scu::take(const std::filesystem::path& temp, const T_DIMSE_C_StoreRQ& request) noexcept {
  auto scan = prescan_file(temp, intake_->limits);
  if (!scan) {
    intake_->spool->discard_temp(temp);
    return refuse(STATUS_STORE_Error_CannotUnderstand, scan.error().detail);
  }
  if (scan->dataset_sop_instance_uid != uid_text(request.AffectedSOPInstanceUID) ||
      scan->dataset_sop_class_uid != uid_text(request.AffectedSOPClassUID)) {
    intake_->spool->discard_temp(temp);
    return refuse(STATUS_STORE_Error_DataSetDoesNotMatchSOPClass,
                  "dataset SOP class/instance differ from the C-STORE request");
  }
  auto stored = intake_->spool->commit(temp, intake_->limits.max_object_size);
  if (!stored) return refuse(STATUS_STORE_Refused_OutOfResources, stored.error().to_string());
  ReceivedObject obj{std::move(stored).value(), std::move(scan).value(), calling_ae_, peer_, ""};
  if (auto sunk = intake_->sink->object_received(obj); !sunk)
    return refuse(STATUS_STORE_Refused_OutOfResources, sunk.error().to_string());
  return STATUS_Success;
}

Error dimse_error(const std::string& what, const OFCondition& cond) {
  return make_error(ErrorCode::kNetwork, what + ": " + dimse_failure_text(cond));
}

std::string text_of(DcmDataset* ds, const DcmTagKey& tag) {
  OFString v;
  if (ds == nullptr || ds->findAndGetOFStringArray(tag, v).bad()) return "";
  std::string s = v.c_str();
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

std::set<std::string> split_modalities(const std::string& v) {
  std::set<std::string> out;
  std::size_t i = 0;
  while (i <= v.size()) {
    std::size_t j = v.find('\\', i);
    if (j == std::string::npos) j = v.size();
    std::string m = v.substr(i, j - i);
    m.erase(0, m.find_first_not_of(' '));
    while (!m.empty() && m.back() == ' ') m.pop_back();
    if (!m.empty()) out.insert(m);
    i = j + 1;
  }
  return out;
}

// Deletes DcmSCU's answers when the list goes out of scope.
template <class T>
struct Answers {
  OFList<T*> list;
  ~Answers() {
    for (T* r : list) delete r;
  }
};

// The last answer of a C-MOVE or C-GET: its status and sub-operation counts.
Result<MoveResult> final_answer(const Answers<RetrieveResponse>& a, const char* what) {
  if (a.list.empty()) return make_error(ErrorCode::kNetwork, std::string(what) + ": no answer");
  const RetrieveResponse* last = a.list.back();
  MoveResult m;
  m.status = last->m_status;
  m.completed = last->m_numberOfCompletedSubops;
  m.failed = last->m_numberOfFailedSubops;
  m.warning = last->m_numberOfWarningSubops;
  return m;
}

// The identifier of a C-MOVE or C-GET of one whole study.
DcmDataset study_identifier(const std::string& study_uid) {
  DcmDataset q;
  q.putAndInsertString(DCM_QueryRetrieveLevel, "STUDY");
  q.putAndInsertString(DCM_StudyInstanceUID, study_uid.c_str());
  return q;
}

// Our AE, the PACS's address and the time-outs, on a new DcmSCU.
void configure(DcmSCU& scu, const config::PullSource& source, const std::string& calling_ae) {
  scu.setAETitle(calling_ae.c_str());
  scu.setPeerAETitle(source.ae_title.c_str());
  scu.setPeerHostName(source.host.c_str());
  scu.setPeerPort(static_cast<Uint16>(source.port));
  const auto seconds = static_cast<Uint32>(std::max<long long>(
      1, (std::chrono::duration_cast<std::chrono::milliseconds>(source.timeout).count() + 999) /
             1000));
  scu.setACSETimeout(seconds);
  scu.setDIMSETimeout(seconds);
  scu.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
  scu.setConnectionTimeout(static_cast<Sint32>(seconds));
}

Result<void> negotiate(Scu& scu, TcpLayer& layer) {
  // The layer goes on DCMTK's network, which initNetwork() creates.
  OFCondition cond = scu.initNetwork();
  if (cond.good()) cond = scu.useSecureConnection(&layer);
  if (cond.bad()) return dimse_error("DCMTK network", cond);
  (void)take_watch_verdict();  // one left by an earlier association is not this one's
  cond = scu.negotiateAssociation();
  if (cond.bad()) return dimse_error("association with the PACS failed", cond);
  return {};
}

OFList<OFString> of_list(const std::vector<std::string>& v) {
  OFList<OFString> out;
  for (const auto& s : v) out.push_back(s.c_str());
  return out;
}

// The query/retrieve models' syntaxes.
OFList<OFString> uncompressed() {
  return of_list({UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax});
}

// An association has at most 128 presentation contexts (odd IDs 1-255); one is the GET model's.
constexpr std::size_t kMaxContexts = 128;

// One C-GET: an association of its own, with the GET model and the storage contexts planned for
// the study (get_contexts.h), released when the retrieve ends.
class GetAssociation {
 public:
  GetAssociation(const config::PullSource& source, const std::string& calling_ae,
                 const GetIntake* intake)
      : layer_(source.timeout) {
    configure(scu_, source, calling_ae);
    scu_.setStorageMode(DCMSCU_STORAGE_BIT_PRESERVING);
    scu_.setProgressNotificationMode(OFTrue);
    scu_.set_intake(intake, &layer_, source.ae_title, source.host);
  }
  ~GetAssociation() {
    if (scu_.isConnected()) scu_.releaseAssociation();
  }

  Result<MoveResult> get(const std::string& study_uid, const GetContextPlan& plan) {
    scu_.addPresentationContext(UID_GETStudyRootQueryRetrieveInformationModel, uncompressed());
    // The SCP role is asked for once per SOP class (PS3.7 D.3.3.4: one role selection item per
    // class, applying to each of its contexts); DCMTK writes one item per context that names a
    // role, so a class's further contexts name none.
    std::set<std::string> role_asked;
    for (const auto& pc : plan.contexts)
      scu_.addPresentationContext(
          pc.sop_class.c_str(), of_list(pc.transfer_syntaxes),
          role_asked.insert(pc.sop_class).second ? ASC_SC_ROLE_SCP : ASC_SC_ROLE_DEFAULT);
    if (auto r = negotiate(scu_, layer_); !r) return r.error();
    const T_ASC_PresentationContextID id =
        scu_.findPresentationContextID(UID_GETStudyRootQueryRetrieveInformationModel, "");
    if (id == 0)
      return make_error(ErrorCode::kNetwork,
                        "the PACS refused Study Root C-GET (check its AE table for our AE)");
    DcmDataset q = study_identifier(study_uid);
    Answers<RetrieveResponse> a;
    OFCondition cond = dcmtk_guard([&] { return scu_.sendCGETRequest(id, &q, &a.list); });
    // A failed receive (the connection cut, an object too large) leaves the association in
    // the middle of a C-GET: it is aborted, not released.
    if (cond.bad()) {
      scu_.abortAssociation();
      return dimse_error("C-GET failed", cond);
    }
    return final_answer(a, "C-GET");
  }

 private:
  TcpLayer layer_;
  Scu scu_;
};

class DcmtkSession final : public QrSession {
 public:
  DcmtkSession(const config::PullSource& source, const std::string& calling_ae,
               const GetIntake* intake)
      : source_(source), calling_ae_(calling_ae), intake_(intake) {}
  ~DcmtkSession() override { disconnect(); }

  // FIND, and MOVE for C-MOVE sources. A C-GET source's retrieves each open an association of
  // their own (get_study); this one is released meanwhile and negotiated again by the next
  // C-FIND, so that it neither sits idle through a long retrieve (a PACS may drop it) nor makes
  // a second association at the same time (a PACS may allow one per AE).
  Result<void> open() {
    disconnect();
    layer_ = std::make_unique<TcpLayer>(source_.timeout);
    scu_ = std::make_unique<Scu>();
    configure(*scu_, source_, calling_ae_);
    scu_->addPresentationContext(UID_FINDStudyRootQueryRetrieveInformationModel, uncompressed());
    if (!get())
      scu_->addPresentationContext(UID_MOVEStudyRootQueryRetrieveInformationModel, uncompressed());
    if (auto r = negotiate(*scu_, *layer_); !r) {
      disconnect();
      return r.error();
    }
    find_ = scu_->findPresentationContextID(UID_FINDStudyRootQueryRetrieveInformationModel, "");
    if (!get())
      move_ = scu_->findPresentationContextID(UID_MOVEStudyRootQueryRetrieveInformationModel, "");
    if (find_ == 0)
      return make_error(ErrorCode::kNetwork,
                        "the PACS refused Study Root C-FIND (check its AE table for our AE)");
    return {};
  }

  Result<std::vector<FoundStudy>> find_studies(const std::string& from_date) override {
    return find_dated(from_date + "-");
  }

  Result<std::vector<FoundStudy>> find_studies_on(const std::string& date) override {
    return find_dated(date);
  }

  Result<std::vector<FoundStudy>> find_study(const std::string& study_uid) override {
    return find_studies_where(DCM_StudyInstanceUID, study_uid);
  }

  Result<StudyContents> study_contents(const std::string& study_uid) override {
    contents_.reset();
    DcmDataset q;
    q.putAndInsertString(DCM_QueryRetrieveLevel, "SERIES");
    q.putAndInsertString(DCM_StudyInstanceUID, study_uid.c_str());
    q.putAndInsertString(DCM_SeriesInstanceUID, "");
    q.putAndInsertString(DCM_Modality, "");
    Answers<QRResponse> series;
    if (auto r = find(q, series); !r) return r.error();
    StudyContents out;
    for (QRResponse* s : series.list) {
      const std::string uid = text_of(s->m_dataset, DCM_SeriesInstanceUID);
      if (uid.empty()) continue;
      const std::string modality = text_of(s->m_dataset, DCM_Modality);
      if (!modality.empty()) out.modalities.insert(modality);
      DcmDataset iq;
      iq.putAndInsertString(DCM_QueryRetrieveLevel, "IMAGE");
      iq.putAndInsertString(DCM_StudyInstanceUID, study_uid.c_str());
      iq.putAndInsertString(DCM_SeriesInstanceUID, uid.c_str());
      iq.putAndInsertString(DCM_SOPInstanceUID, "");
      iq.putAndInsertString(DCM_SOPClassUID, "");
      Answers<QRResponse> images;
      if (auto r = find(iq, images); !r) return r.error();
      for (QRResponse* i : images.list) {
        if (text_of(i->m_dataset, DCM_SOPInstanceUID).empty()) continue;
        ++out.instances;
        const std::string sop_class = text_of(i->m_dataset, DCM_SOPClassUID);
        if (!sop_class.empty() && uid_syntax_ok(sop_class)) out.sop_classes.insert(sop_class);
      }
    }
    contents_.emplace(study_uid, out);
    return out;
  }

  Result<MoveResult> move_study(const std::string& study_uid,
                                const std::string& destination) override {
    if (move_ == 0)
      return make_error(ErrorCode::kNetwork,
                        "the PACS refused Study Root C-MOVE (check its AE table for our AE)");
    DcmDataset q = study_identifier(study_uid);
    Answers<RetrieveResponse> a;
    if (!connected()) return make_error(ErrorCode::kNetwork, "no association with the PACS");
    OFCondition cond =
        dcmtk_guard([&] { return scu_->sendMOVERequest(move_, destination.c_str(), &q, &a.list); });
    if (dcmtk_threw(cond)) scu_->abortAssociation();  // its state is unknown after that
    if (cond.bad()) return dimse_error("C-MOVE failed", cond);
    return final_answer(a, "C-MOVE");
  }

  Result<MoveResult> get_study(const std::string& study_uid) override {
    if (!get() || intake_ == nullptr)
      return make_error(ErrorCode::kNetwork, "C-GET is not configured for this source");
    // What the study holds, to propose its classes in every syntax the receiver takes; a PACS
    // that answers neither gets the common classes uncompressed, as before.
    // The poller asked for them just before when the PACS reports no counts: not asked twice.
    StudyContents contents;
    if (contents_ && contents_->first == study_uid)
      contents = std::move(contents_->second);
    else if (auto c = study_contents(study_uid))
      contents = std::move(c).value();
    contents_.reset();
    disconnect();
    std::vector<std::string> fallback(
        dcmLongSCUStorageSOPClassUIDs,
        dcmLongSCUStorageSOPClassUIDs + numberOfDcmLongSCUStorageSOPClassUIDs);
    auto retrieve = [&](GetLayout layout) -> Result<MoveResult> {
      const GetContextPlan plan =
          plan_get_contexts(contents.sop_classes, contents.modalities, intake_->transfer_syntaxes,
                            fallback, kMaxContexts - 1, layout);
      log::info("pull: C-GET association",
                {{"source", source_.name},
                 {"study_uid", study_uid},
                 {"layout", layout == GetLayout::kUncompressedFirst ? "uncompressed-first"
                                                                    : "pacs-choice-first"},
                 {"sop_classes_reported", std::to_string(contents.sop_classes.size())},
                 {"image_classes", std::to_string(plan.image_classes)},
                 {"contexts", std::to_string(plan.contexts.size() + 1)},
                 {"not_proposed", std::to_string(plan.dropped)}});
      GetAssociation association(source_, calling_ae_, intake_);
      return association.get(study_uid, plan);
    };
    auto first = retrieve(GetLayout::kUncompressedFirst);
    if (!first || first->failed == 0) return first;
    // Some objects did not come: a PACS that sends on the first context of a class (dcmqrscp
    // does) and cannot convert what it holds compressed. Once more with its own choice first;
    // what came already comes again and is counted as a duplicate.
    return retrieve(GetLayout::kPacsChoiceFirst);
  }

 private:
  bool get() const { return source_.retrieve == "get"; }
  bool connected() const { return scu_ != nullptr && scu_->isConnected(); }
  // The SCU goes before its transport layer: DCMTK's network holds a pointer to the layer.
  void disconnect() {
    if (connected()) scu_->releaseAssociation();
    scu_.reset();
    layer_.reset();
  }

  // STUDY-level C-FIND by Study Date (a DICOM date or range), asking for UIDs and counts only.
  Result<std::vector<FoundStudy>> find_dated(const std::string& dates) {
    return find_studies_where(DCM_StudyDate, dates);
  }

  // A study-level C-FIND matching `key` on `value`, asking for the UID, count and modalities.
  Result<std::vector<FoundStudy>> find_studies_where(const DcmTagKey& key,
                                                     const std::string& value) {
    DcmDataset q;
    q.putAndInsertString(DCM_QueryRetrieveLevel, "STUDY");
    q.putAndInsertString(DCM_StudyDate, "");
    q.putAndInsertString(DCM_StudyInstanceUID, "");
    q.putAndInsertString(key, value.c_str());
    q.putAndInsertString(DCM_NumberOfStudyRelatedInstances, "");
    q.putAndInsertString(DCM_ModalitiesInStudy, "");
    Answers<QRResponse> a;
    if (auto r = find(q, a); !r) return r.error();
    std::vector<FoundStudy> out;
    for (QRResponse* r : a.list) {
      if (r->m_dataset == nullptr) continue;
      FoundStudy f;
      f.study_uid = text_of(r->m_dataset, DCM_StudyInstanceUID);
      if (f.study_uid.empty()) continue;
      const std::string n = text_of(r->m_dataset, DCM_NumberOfStudyRelatedInstances);
      if (!n.empty() && n.size() < 10 && n.find_first_not_of("0123456789 ") == std::string::npos)
        f.reported = std::stoll(n);
      f.modalities = split_modalities(text_of(r->m_dataset, DCM_ModalitiesInStudy));
      out.push_back(std::move(f));
    }
    return out;
  }

  Result<void> find(DcmDataset& q, Answers<QRResponse>& a) {
    if (!connected())
      if (auto r = open(); !r) return r.error();
    OFCondition cond = dcmtk_guard([&] { return scu_->sendFINDRequest(find_, &q, &a.list); });
    if (dcmtk_threw(cond)) scu_->abortAssociation();  // its state is unknown after that
    if (cond.bad()) return dimse_error("C-FIND failed", cond);
    // The last answer is the final one: success, or a failure status.
    if (!a.list.empty()) {
      const Uint16 status = a.list.back()->m_status;
      if (status != 0x0000 && status != 0xFF00 && status != 0xFF01) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "%04X", status);
        return make_error(ErrorCode::kNetwork,
                          std::string("C-FIND refused by the PACS (status ") + hex + ")");
      }
    }
    return {};
  }

  const config::PullSource& source_;
  std::string calling_ae_;
  std::unique_ptr<TcpLayer> layer_;
  const GetIntake* intake_;
  std::unique_ptr<Scu> scu_;
  T_ASC_PresentationContextID find_ = 0, move_ = 0;
  // The last study_contents() answer, for the get_study() of the same study that follows it.
  std::optional<std::pair<std::string, StudyContents>> contents_;
};

}  // namespace

Result<std::unique_ptr<QrSession>> connect_dcmtk(const config::PullSource& source,
                                                 const std::string& calling_ae,
                                                 const GetIntake* intake) {
  static std::once_flag once;
  std::call_once(once, [] { OFLog::configure(OFLogger::FATAL_LOG_LEVEL); });
  if (source.retrieve == "get" &&
      (intake == nullptr || intake->spool == nullptr || intake->sink == nullptr))
    return make_error(ErrorCode::kConfig, "C-GET needs the intake (spool and catalog)");
  auto s = std::make_unique<DcmtkSession>(source, calling_ae, intake);
  if (auto r = s->open(); !r) return r.error();
  return std::unique_ptr<QrSession>(std::move(s));
}

}  // namespace dirgw::ingest::pull
