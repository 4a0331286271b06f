#include "senders/dimse/association.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

// clang-format off
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcostrmb.h"
#include "dcmtk/dcmdata/dcxfer.h"
#include "dcmtk/dcmnet/assoc.h"
#include "dcmtk/dcmnet/cond.h"
#include "dcmtk/dcmnet/dcmlayer.h"
#include "dcmtk/dcmnet/dcmtrans.h"
#include "dcmtk/dcmnet/dimse.h"
#include "dcmtk/dcmnet/dul.h"
#include "dcmtk/dcmtls/tlslayer.h"
#include "dcmtk/ofstd/ofstd.h"
#include "dcmtk/oflog/oflog.h"
// clang-format on

#include "common/dcmtk_guard.h"
#include "common/files.h"
#include "ingest/dimse_scp/watched_layer.h"
#include "log/log.h"
#include "scheduler/bandwidth.h"
#include "senders/transcode/decompress.h"

namespace dirgw::senders::dimse {

namespace {

int whole_seconds(std::chrono::milliseconds ms) {
  // DCMTK counts in seconds; round up so that 500 ms does not become "no time-out".
  return static_cast<int>(std::max<std::int64_t>(1, (ms.count() + 999) / 1000));
}

void quiet_dcmtk_once() {
  // DCMTK's own logging can print datasets at debug level and spool paths in warnings; our log
  // lines say what happened. Same setting as the SCP's.
  static std::once_flag once;
  std::call_once(once, [] { OFLog::configure(OFLogger::FATAL_LOG_LEVEL); });
}

Error tls_error(const std::string& what, const OFCondition& cond) {
  return make_error(ErrorCode::kTls, what + ": " + cond.text());
}

// What a failed A-ASSOCIATE request means, from DCMTK's condition codes (not its messages).
Verdict classify_request_failure(const OFCondition& cond, bool tls) {
  const std::string text = cond.text();
  if (cond.module() == OFM_dcmtls)
    return {InstanceStatus::kRetry,
            "TLS handshake failed (" + text +
                "): check the destination's certificate, our CA file and client certificate"};
  if (cond.module() == OFM_dcmnet) {
    switch (cond.code()) {
      case DULC_TCPINITERROR:
        return {InstanceStatus::kRetry, "cannot connect: " + text};
      case DULC_UNKNOWNHOST:
        return {InstanceStatus::kRetry, "cannot resolve host: " + text};
      case DULC_READTIMEOUT:
        return {InstanceStatus::kRetry, "no answer to the association request within acse_timeout"};
      case DULC_TLSERROR:
        return {InstanceStatus::kRetry, "TLS handshake failed: " + text};
      case DULC_PEERABORTEDASSOCIATION:
      case DULC_NETWORKCLOSED:
        return {InstanceStatus::kRetry,
                "connection closed by the destination during association negotiation (" + text +
                    (tls ? "; the destination may not trust our client certificate)"
                         : "; does it expect TLS?)")};
      default:
        break;
    }
  }
  return {InstanceStatus::kRetry, "association request failed: " + text};
}

// The bandwidth cap for C-STORE: each PDU of a data set, once written to the socket, is paid
// for from the destination's and the gateway's token buckets before the next one goes. Paying
// after writing lets at most one PDU (<= max PDU, 128 KiB) beyond a bucket's budget out at a
// time; over a study the rate follows the cap (docs/scheduling.md).
class Pacer {
 public:
  explicit Pacer(const std::vector<std::shared_ptr<scheduler::TokenBucket>>& buckets)
      : throttle_(buckets) {}
  void written(std::uint64_t n) {
    if (throttle_.unlimited()) return;
    while (n > 0) n -= scheduler::acquire_blocking(throttle_, n, scheduler::sleep_real);
  }

 private:
  scheduler::Throttle throttle_;
};

}  // namespace

// Every connection DCMTK opens for this destination passes through here before its first byte
// (and before a TLS handshake). Debian's DCMTK leaves Nagle's algorithm on for the connections
// it opens unless the environment says otherwise, and a C-STORE answer then waits for delayed
// ACKs; we switch it off whatever the environment says. Writes to and reads from a peer that
// stopped are bounded by dimse_timeout, per socket, not by DCMTK's process-wide defaults. What
// the destination answers passes a watch before DCMTK parses it (watched_layer.h).
class SocketTuningLayer final : public DcmTransportLayer {
 public:
  SocketTuningLayer(DcmTransportLayer* inner, std::chrono::milliseconds io_timeout)
      : inner_(inner), io_timeout_(io_timeout) {}

  DcmTransportConnection* createConnection(DcmNativeSocketType socket, OFBool secure) override {
    int one = 1;
    nodelay_ = ::setsockopt(socket, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0;
    DcmTransportConnection* c = ingest::watch_connection(
        socket, inner_ != nullptr ? inner_->createConnection(socket, secure)
                                  : DcmTransportLayer::createConnection(socket, secure));
    // After the connection's constructor, which applies DCMTK's global socket time-outs.
    timeval tv{};
    tv.tv_sec = whole_seconds(io_timeout_);
    ::setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ::setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return c;
  }
  bool nodelay() const { return nodelay_; }

 private:
  DcmTransportLayer* inner_;
  std::chrono::milliseconds io_timeout_;
  bool nodelay_ = false;
};

// ---------------------------------------------------------------------------------------------
// Network

Result<std::unique_ptr<Network>> Network::create(const DimseOptions& opts) {
  quiet_dcmtk_once();
  std::unique_ptr<Network> n(new Network());
  OFCondition cond =
      ASC_initializeNetwork(NET_REQUESTOR, 0, whole_seconds(opts.acse_timeout), &n->net_);
  if (cond.bad())
    return make_error(ErrorCode::kNetwork, std::string("DCMTK network: ") + cond.text());
  if (!opts.tls.enabled) {
    n->layer_ = std::make_unique<SocketTuningLayer>(nullptr, opts.dimse_timeout);
    cond = ASC_setTransportLayer(n->net_, n->layer_.get(), 0);
    if (cond.bad())
      return make_error(ErrorCode::kNetwork, std::string("DCMTK transport: ") + cond.text());
    return n;
  }

  const auto& t = opts.tls;
  n->tls_ = std::make_unique<DcmTLSTransportLayer>(NET_REQUESTOR, nullptr, OFTrue);
  DcmTLSTransportLayer& layer = *n->tls_;
  if (!layer) return make_error(ErrorCode::kTls, "cannot create the TLS layer");
  // Non-downgrading BCP 195: TLS 1.2 or newer and its four AEAD ciphersuites only.
  cond = layer.setTLSProfile(TSP_Profile_BCP195_ND);
  if (cond.good()) cond = layer.activateCipherSuites();
  if (cond.bad()) return tls_error("TLS profile BCP 195 (non-downgrading)", cond);
  if (!t.ca_file.empty()) {
    cond = layer.addTrustedCertificateFile(t.ca_file.c_str(), DCF_Filetype_PEM);
    if (cond.bad()) return tls_error("CA file " + t.ca_file.string() + " unusable", cond);
  }
  if (!t.client_cert.empty() || !t.client_key.empty()) {
    if (t.client_cert.empty() || t.client_key.empty())
      return make_error(ErrorCode::kTls, "client certificate and key must be given together");
    cond = layer.setPrivateKeyFile(t.client_key.c_str(), DCF_Filetype_PEM);
    if (cond.bad()) return tls_error("client key " + t.client_key.string() + " unusable", cond);
    cond = layer.setCertificateFile(t.client_cert.c_str(), DCF_Filetype_PEM);
    if (cond.bad())
      return tls_error("client certificate " + t.client_cert.string() + " unusable", cond);
    if (!layer.checkPrivateKeyMatchesCertificate())
      return make_error(ErrorCode::kTls, "client key does not match the client certificate");
  }
  layer.setCertificateVerification(t.verify_peer ? DCV_requireCertificate : DCV_ignoreCertificate);
  SSL_CTX* ctx = layer.getNativeHandle();
  if (ctx == nullptr) return make_error(ErrorCode::kTls, "no TLS context");
  // The profile already refuses older versions; this holds even if a profile changes.
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
    return make_error(ErrorCode::kTls, "cannot require TLS 1.2");
  if (t.verify_peer && t.verify_hostname) {
    X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx);
    in6_addr probe{};
    const bool is_ip = ::inet_pton(AF_INET, opts.host.c_str(), &probe) == 1 ||
                       ::inet_pton(AF_INET6, opts.host.c_str(), &probe) == 1;
    const int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, opts.host.c_str())
                         : X509_VERIFY_PARAM_set1_host(param, opts.host.c_str(), 0);
    if (ok != 1) return make_error(ErrorCode::kTls, "cannot set the expected host name");
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  }
  n->layer_ = std::make_unique<SocketTuningLayer>(n->tls_.get(), opts.dimse_timeout);
  cond = ASC_setTransportLayer(n->net_, n->layer_.get(), 0);
  if (cond.bad()) return tls_error("cannot use the TLS layer", cond);
  return n;
}

Network::~Network() {
  if (net_ != nullptr) ASC_dropNetwork(&net_);  // before the layers it points to go
  layer_.reset();
  tls_.reset();
}

bool Network::last_nodelay() const { return layer_ != nullptr && layer_->nodelay(); }

// ---------------------------------------------------------------------------------------------
// Association

std::unique_ptr<Association> Association::request(Network& network, const DimseOptions& opts,
                                                  const std::vector<ProposedContext>& contexts,
                                                  Verdict* failure) {
  (void)ingest::take_watch_verdict();  // one left by an earlier association is not this one's
  T_ASC_Parameters* params = nullptr;
  const long max_pdu = std::clamp<long>(opts.max_pdu, ASC_MINIMUMPDUSIZE, ASC_MAXIMUMPDUSIZE);
  OFCondition cond = ASC_createAssociationParameters(&params, max_pdu);
  if (cond.bad()) {
    *failure = {InstanceStatus::kRetry, std::string("association parameters: ") + cond.text()};
    return nullptr;
  }
  ASC_setAPTitles(params, opts.calling_ae.c_str(), opts.called_ae.c_str(), nullptr);
  const std::string peer = opts.host + ":" + std::to_string(opts.port);
  ASC_setPresentationAddresses(params, OFStandard::getHostName().c_str(), peer.c_str());
  if (network.tls()) ASC_setTransportLayerType(params, OFTrue);
  for (const auto& c : contexts) {
    const char* ts[] = {c.transfer_syntax.c_str()};
    cond = ASC_addPresentationContext(params, c.id, c.abstract_syntax.c_str(), ts, 1);
    if (cond.bad()) {
      ASC_destroyAssociationParameters(&params);
      *failure = {InstanceStatus::kRetry, std::string("presentation context: ") + cond.text()};
      return nullptr;
    }
  }

  // The connect time-out is a DCMTK global read when the connection starts; every DIMSE
  // destination sets its own just before (see docs/dimse-sender.md).
  dcmConnectionTimeout.set(static_cast<Sint32>(whole_seconds(opts.connect_timeout)));
  T_ASC_Association* raw = nullptr;
  cond = ASC_requestAssociation(network.get(), params, &raw);
  // From here `raw` owns `params` (also on failure).
  if (cond.bad()) {
    if (cond == DUL_ASSOCIATIONREJECTED) {
      T_ASC_RejectParameters rej{};
      ASC_getRejectParameters(params, &rej);
      AssociateReject rj;
      rj.result = static_cast<int>(rej.result);
      rj.source = static_cast<int>(rej.source);
      rj.reason = static_cast<int>(rej.reason) & 0xFF;
      *failure = classify_reject(rj, opts.called_ae, opts.calling_ae);
    } else {
      *failure = classify_request_failure(cond, network.tls());
    }
    if (raw != nullptr)
      ASC_destroyAssociation(&raw);
    else
      ASC_destroyAssociationParameters(&params);
    return nullptr;
  }

  std::unique_ptr<Association> a(new Association(raw, opts));
  for (int i = 0; i < ASC_countPresentationContexts(params); ++i) {
    T_ASC_PresentationContext pc;
    if (ASC_getPresentationContext(params, i, &pc).bad()) continue;
    NegotiatedContext n;
    n.id = pc.presentationContextID;
    n.abstract_syntax = pc.abstractSyntax;
    n.accepted = pc.resultReason == ASC_P_ACCEPTANCE;
    // We propose one syntax per context: accepted or not, it is the one we proposed.
    n.transfer_syntax = pc.transferSyntaxCount > 0 ? pc.proposedTransferSyntaxes[0] : "";
    if (n.accepted && pc.acceptedTransferSyntax[0] != '\0')
      n.transfer_syntax = pc.acceptedTransferSyntax;
    a->contexts_.push_back(std::move(n));
  }
  return a;
}

Association::~Association() {
  if (assoc_ != nullptr) abort();
}

StoreAnswer Association::lost(const std::string& what) {
  StoreAnswer a;
  a.kind = StoreAnswer::Kind::kLost;
  a.failure = what;
  abort();
  return a;
}

// Over 80 lines: the C-STORE-RQ command, the data set streamed from the file PDV by PDV, then
// the response, in the order DIMSE requires; the steps share the association's PDU state.
StoreAnswer Association::store_as_is(const std::filesystem::path& file, const FileMeta& meta,
                                     std::uint64_t file_size, std::uint8_t context_id) {
  if (assoc_ == nullptr) return lost("association already closed");
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid() || ::lseek(fd.get(), static_cast<off_t>(meta.dataset_offset), SEEK_SET) < 0) {
    StoreAnswer a;
    a.kind = StoreAnswer::Kind::kNotSent;
    a.verdict = {InstanceStatus::kRetry, "cannot read spool file: " + errno_text(errno)};
    return a;
  }

  // The C-STORE-RQ command set (PS3.7 9.3.1.1), Implicit VR Little Endian with its group
  // length, as DCMTK's own DIMSE layer encodes it.
  const std::uint16_t message_id = assoc_->nextMsgID++;
  DcmDataset cmd;
  cmd.putAndInsertString(DCM_AffectedSOPClassUID, meta.sop_class_uid.c_str());
  cmd.putAndInsertUint16(DCM_CommandField, 0x0001);
  cmd.putAndInsertUint16(DCM_MessageID, message_id);
  cmd.putAndInsertUint16(DCM_Priority, 0x0000);            // medium
  cmd.putAndInsertUint16(DCM_CommandDataSetType, 0x0000);  // a data set follows
  cmd.putAndInsertString(DCM_AffectedSOPInstanceUID, meta.sop_instance_uid.c_str());
  unsigned char cmd_buf[4096];
  DcmOutputBufferStream out(cmd_buf, sizeof cmd_buf);
  cmd.transferInit();
  OFCondition cond = cmd.write(out, EXS_LittleEndianImplicit, EET_ExplicitLength, nullptr,
                               EGL_withGL, EPD_withoutPadding);
  cmd.transferEnd();
  if (cond.bad()) {
    StoreAnswer a;
    a.kind = StoreAnswer::Kind::kNotSent;
    a.verdict = {InstanceStatus::kPermanent,
                 std::string("cannot encode the C-STORE request: ") + cond.text()};
    return a;
  }
  out.flush();
  void* cmd_bytes = nullptr;
  offile_off_t cmd_len = 0;
  out.flushBuffer(cmd_bytes, cmd_len);

  DUL_PDV pdv{};
  DUL_PDVLIST list{};
  list.count = 1;
  list.pdv = &pdv;
  pdv.fragmentLength = static_cast<unsigned long>(cmd_len);
  pdv.presentationContextID = context_id;
  pdv.pdvType = DUL_COMMANDPDV;
  pdv.lastPDV = OFTrue;
  pdv.data = cmd_bytes;
  cond = DUL_WritePDVs(&assoc_->DULassociation, &list);
  if (cond.bad()) return lost(std::string("sending the C-STORE request failed: ") + cond.text());

  // The data set, straight from the file: DUL cuts it into PDUs the peer accepts.
  unsigned long chunk = assoc_->sendPDVLength;
  const Uint32 max_out = dcmMaxOutgoingPDUSize.get();
  if (max_out > 12 && chunk + 12 > max_out) chunk = max_out - 12;
  chunk &= ~1UL;
  std::vector<unsigned char> buf(chunk);
  Pacer pacer(opts_.bandwidth_buckets);
  const std::uint64_t total = file_size - meta.dataset_offset;
  std::uint64_t sent = 0;
  while (sent < total) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, total - sent));
    std::size_t got = 0;
    while (got < want) {
      const ssize_t n = ::read(fd.get(), buf.data() + got, want - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        // Part of the data set is on the wire already: only an abort can take it back.
        return lost(n == 0 ? "spool file shrank while it was being sent"
                           : "reading the spool file failed: " + errno_text(errno));
      }
      got += static_cast<std::size_t>(n);
    }
    pdv.fragmentLength = static_cast<unsigned long>(got);
    pdv.pdvType = DUL_DATASETPDV;
    pdv.lastPDV = (sent + got == total) ? OFTrue : OFFalse;
    pdv.data = buf.data();
    cond = DUL_WritePDVs(&assoc_->DULassociation, &list);
    if (cond.bad()) return lost(std::string("sending the data set failed: ") + cond.text());
    sent += got;
    pacer.written(got);
  }
  return receive_store_response(message_id, sent);
}

StoreAnswer Association::receive_store_response(std::uint16_t message_id, std::uint64_t bytes) {
  T_DIMSE_Message rsp;
  std::memset(&rsp, 0, sizeof rsp);
  T_ASC_PresentationContextID pres_id = 0;
  DcmDataset* detail = nullptr;
  OFCondition cond = dcmtk_guard([&] {
    return DIMSE_receiveCommand(assoc_, DIMSE_NONBLOCKING, whole_seconds(opts_.dimse_timeout),
                                &pres_id, &rsp, &detail);
  });
  delete detail;  // ErrorComment and the like: the peer's words, possibly patient data
  if (cond == DIMSE_NODATAAVAILABLE) return lost("no C-STORE response within dimse_timeout");
  if (cond == DUL_PEERABORTEDASSOCIATION) return lost("destination aborted the association");
  if (cond == DUL_PEERREQUESTEDRELEASE) return lost("destination released the association");
  if (cond.bad())
    return lost("receiving the C-STORE response failed: " + ingest::dimse_failure_text(cond));
  if (rsp.CommandField != DIMSE_C_STORE_RSP)
    return lost("unexpected DIMSE command " + std::to_string(static_cast<int>(rsp.CommandField)) +
                " instead of a C-STORE response");
  if (rsp.msg.CStoreRSP.MessageIDBeingRespondedTo != message_id)
    return lost("C-STORE response for another message");
  StoreAnswer a;
  a.kind = StoreAnswer::Kind::kAnswered;
  a.status = rsp.msg.CStoreRSP.DimseStatus;
  a.bytes = bytes;
  return a;
}

StoreAnswer Association::store_converted(const std::filesystem::path& file, const FileMeta& meta,
                                         std::uint8_t context_id, bool decompress) {
  if (assoc_ == nullptr) return lost("association already closed");
  auto not_sent = [](std::string reason) {
    StoreAnswer a;
    a.kind = StoreAnswer::Kind::kNotSent;
    a.verdict = {InstanceStatus::kPermanent, std::move(reason)};
    return a;
  };
  // Values over 4 KiB (pixel data) stay in the file until they are written out.
  DcmFileFormat ff;
  OFCondition cond = dcmtk_guard(
      [&] { return ff.loadFile(file.c_str(), EXS_Unknown, EGL_noChange, 4096, ERM_autoDetect); });
  if (cond.bad())
    return not_sent(std::string("DCMTK cannot read the spool file for re-encoding: ") +
                    cond.text());
  if (decompress) {
    std::string target;
    for (const auto& c : contexts_)
      if (c.id == context_id) target = c.transfer_syntax;
    if (auto why = transcode::decompress_dataset(*ff.getDataset(), target)) return not_sent(*why);
  }
  T_DIMSE_C_StoreRQ req;
  std::memset(&req, 0, sizeof req);
  req.MessageID = assoc_->nextMsgID++;
  OFStandard::strlcpy(req.AffectedSOPClassUID, meta.sop_class_uid.c_str(),
                      sizeof req.AffectedSOPClassUID);
  OFStandard::strlcpy(req.AffectedSOPInstanceUID, meta.sop_instance_uid.c_str(),
                      sizeof req.AffectedSOPInstanceUID);
  req.DataSetType = DIMSE_DATASET_PRESENT;
  req.Priority = DIMSE_PRIORITY_MEDIUM;
  T_DIMSE_C_StoreRSP rsp;
  std::memset(&rsp, 0, sizeof rsp);
  DcmDataset* detail = nullptr;
  // DCMTK calls this after each PDU of the data set has been written to the socket.
  struct Progress {
    std::uint64_t bytes = 0;
    Pacer pacer;
    static void cb(void* data, T_DIMSE_StoreProgress* p, T_DIMSE_C_StoreRQ*) {
      auto& self = *static_cast<Progress*>(data);
      const auto now = static_cast<std::uint64_t>(std::max<long>(p->progressBytes, 0));
      if (now > self.bytes) self.pacer.written(now - self.bytes);
      self.bytes = std::max(self.bytes, now);
    }
  };
  Progress progress{0, Pacer(opts_.bandwidth_buckets)};
  cond = dcmtk_guard([&] {
    return DIMSE_storeUser(assoc_, context_id, &req, nullptr, ff.getDataset(), &Progress::cb,
                           &progress, DIMSE_NONBLOCKING, whole_seconds(opts_.dimse_timeout), &rsp,
                           &detail, nullptr, 0);
  });
  delete detail;
  if (cond == DIMSE_NODATAAVAILABLE) return lost("no C-STORE response within dimse_timeout");
  if (cond.bad()) return lost("C-STORE failed: " + ingest::dimse_failure_text(cond));
  StoreAnswer a;
  a.kind = StoreAnswer::Kind::kAnswered;
  a.status = rsp.DimseStatus;
  a.bytes = progress.bytes;
  return a;
}

bool Association::release() {
  if (assoc_ == nullptr) return false;
  const OFCondition cond = ASC_releaseAssociation(assoc_);
  if (cond.bad()) ASC_abortAssociation(assoc_);
  ASC_destroyAssociation(&assoc_);
  assoc_ = nullptr;
  return cond.good();
}

void Association::abort() {
  if (assoc_ == nullptr) return;
  ASC_abortAssociation(assoc_);
  ASC_destroyAssociation(&assoc_);
  assoc_ = nullptr;
}

}  // namespace dirgw::senders::dimse
