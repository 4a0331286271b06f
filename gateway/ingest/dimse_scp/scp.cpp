#include "ingest/dimse_scp/scp.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <optional>

// clang-format off
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmdata/dcxfer.h"
#include "dcmtk/dcmnet/assoc.h"
#include "dcmtk/dcmnet/dimse.h"
#include "dcmtk/dcmnet/diutil.h"
#include "dcmtk/dcmnet/dcmtrans.h"
#include "dcmtk/dcmnet/dul.h"
// clang-format on

#include "common/dcmtk_guard.h"
#include "common/text.h"
#include "ingest/dimse_scp/negotiation.h"
#include "ingest/dimse_scp/tls.h"
#include "ingest/dimse_scp/watched_layer.h"
#include "log/log.h"

namespace dirgw::ingest {

namespace {

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string peer_string(const sockaddr_in& addr) {
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &addr.sin_addr, buf, sizeof buf);
  return std::string(buf) + ":" + std::to_string(ntohs(addr.sin_port));
}

// What the store callback needs, per C-STORE.
struct StoreContext {
  DicomScp* scp = nullptr;
  const Spool* spool = nullptr;
  ObjectSink* sink = nullptr;
  const PrescanLimits* limits = nullptr;
  std::uint64_t max_object_size = 0;
  std::string temp_path;
  std::string refuse_reason;  // set before receiving: the object is read and discarded
  std::string calling_ae, peer;
  DcmDataset* status_detail = nullptr;
  bool stored = false;
  bool duplicate = false;
  std::string failure;  // why the response is not success; our words only
  std::string study_uid;
  int socket = -1;  // to cut an association that sends more than max_object_size
  std::atomic<std::int64_t>* progress = nullptr;  // the watchdog's view of this association
  bool plain = true;  // no TLS: an A-ABORT PDU can be written on the socket directly
  bool too_large = false;
  bool below_floor = false;  // the spool's free space fell under its floor during the receipt
  std::uint64_t spool_floor = 0;
  static constexpr std::uint64_t kFloorCheckStep = 4 * 1024 * 1024;
  std::uint64_t next_floor_check = kFloorCheckStep;
  std::uint64_t bytes = 0;
  // Which refusal counter applies; and when reception ended (for the commit histogram).
  enum class Refusal { kNone, kPrescan, kSopMismatch, kSpoolFloor, kSpoolError, kCatalog };
  Refusal refusal = Refusal::kNone;
  std::chrono::steady_clock::time_point received_at{};
};

void set_comment(StoreContext& ctx, DcmDataset** detail, const std::string& text) {
  if (ctx.status_detail == nullptr) ctx.status_detail = new DcmDataset;
  // ErrorComment is LO: at most 64 characters.
  ctx.status_detail->putAndInsertString(DCM_ErrorComment, text.substr(0, 64).c_str());
  *detail = ctx.status_detail;
}

// The metrics of one answered C-STORE: durations, what was stored, why it was refused.
void observe_store(metrics::GatewayMetrics& m, const StoreContext& ctx,
                   std::chrono::steady_clock::time_point started) {
  const auto end = std::chrono::steady_clock::now();
  m.store_duration.observe(end - started);
  if (ctx.received_at != std::chrono::steady_clock::time_point{})
    m.store_commit_duration.observe(end - ctx.received_at);
  if (ctx.stored) {
    m.instances_received_dicom.inc();
    m.bytes_received_dicom.inc(ctx.bytes);
    if (ctx.duplicate) m.duplicates_received_dicom.inc();
  }
  switch (ctx.refusal) {
    case StoreContext::Refusal::kPrescan:
      m.refused_prescan.inc();
      break;
    case StoreContext::Refusal::kSopMismatch:
      m.refused_sop_mismatch.inc();
      break;
    case StoreContext::Refusal::kSpoolFloor:
      m.refused_spool_floor.inc();
      break;
    case StoreContext::Refusal::kSpoolError:
      m.refused_spool_error.inc();
      break;
    case StoreContext::Refusal::kCatalog:
      m.refused_catalog.inc();
      break;
    case StoreContext::Refusal::kNone:
      break;
  }
}

// Ends the connection at once, from inside DCMTK's receive loop: an A-ABORT PDU if the peer is
// still reading (plain TCP only: with TLS the bytes would corrupt the stream), then a TCP
// disconnect. A shutdown() is not enough: Linux still delivers data already queued (and what keeps
// arriving) after SHUT_RD, so DCMTK kept reading until the sender gave up (issue 17, item 10).
// connect(AF_UNSPEC) drops the receive queue, sends a reset so a sender blocked in send() fails
// at once, and makes DCMTK's next read fail; the fd itself stays DCMTK's to close.
void cut_connection(int fd, bool plain) {
  if (fd < 0) return;
  if (plain) {
    // A-ABORT: type 7, length 4, source 2 (service provider), reason 0 (not specified).
    const unsigned char abort_pdu[10] = {0x07, 0, 0, 0, 0, 4, 0, 0, 2, 0};
    [[maybe_unused]] auto n = ::send(fd, abort_pdu, sizeof abort_pdu, MSG_DONTWAIT | MSG_NOSIGNAL);
  }
  sockaddr unspec{};
  unspec.sa_family = AF_UNSPEC;
  if (::connect(fd, &unspec, sizeof unspec) != 0) ::shutdown(fd, SHUT_RDWR);
}

// Called for every PDV DCMTK has written to the temporary: stops an object that passes
// max_object_size, or that would take the spool below its free-space floor, before the next PDU
// is read (so the temporary is at most one PDU over either allowance).
void check_allowance(StoreContext& ctx, unsigned long received) {
  const auto bytes = static_cast<std::uint64_t>(received);
  if (bytes > ctx.max_object_size) {
    ctx.too_large = true;
  } else if (bytes >= ctx.next_floor_check) {
    // Checked every kFloorCheckStep bytes: a statvfs per PDV would cost more than the write.
    ctx.next_floor_check = bytes + StoreContext::kFloorCheckStep;
    auto free = free_bytes(ctx.spool->root());
    if (free && *free < ctx.spool_floor) ctx.below_floor = true;
  }
  if (ctx.too_large || ctx.below_floor) cut_connection(ctx.socket, ctx.plain);
}

// noexcept: it runs inside DIMSE_storeProvider, whose dcmtk_guard is for DCMTK's exceptions;
// one of ours (the spool, the catalog) still ends the process, as it would anywhere else.
void store_callback(void* data, T_DIMSE_StoreProgress* progress, T_DIMSE_C_StoreRQ* req,
                    char* /*file*/, DcmDataset** /*dataset*/, T_DIMSE_C_StoreRSP* rsp,
                    DcmDataset** detail) noexcept {
  auto& ctx = *static_cast<StoreContext*>(data);
  if (ctx.progress != nullptr) *ctx.progress = steady_ms();
  if (progress->state == DIMSE_StoreProgressing) {
    if (!ctx.too_large && !ctx.below_floor && progress->progressBytes > 0)
      check_allowance(ctx, progress->progressBytes);
    return;
  }
  if (progress->state != DIMSE_StoreEnd) return;
  ctx.received_at = std::chrono::steady_clock::now();
  if (!ctx.refuse_reason.empty()) {
    ctx.refusal = StoreContext::Refusal::kSpoolFloor;
    rsp->DimseStatus = STATUS_STORE_Refused_OutOfResources;
    ctx.failure = ctx.refuse_reason;
    set_comment(ctx, detail, ctx.refuse_reason);
    return;
  }
  // The slot's data goes to disk on a spool thread from here: the pre-scan, the hash and the
  // catalog's statements run meanwhile, and the catalog commits the object's rows only once it
  // is durable (make_durable below). Nothing is answered before both.
  const auto flushing = ctx.spool->start_flush(ctx.temp_path);
  auto scan = prescan_file(ctx.temp_path, *ctx.limits);
  if (!scan) {
    ctx.spool->discard_temp(ctx.temp_path);
    rsp->DimseStatus = STATUS_STORE_Error_CannotUnderstand;
    ctx.refusal = StoreContext::Refusal::kPrescan;
    ctx.failure = scan.error().detail;
    set_comment(ctx, detail, "dirgw: " + scan.error().detail);
    return;
  }
  const std::string req_instance = uid_text(req->AffectedSOPInstanceUID);
  const std::string req_class = uid_text(req->AffectedSOPClassUID);
  if (scan->dataset_sop_instance_uid != req_instance || scan->dataset_sop_class_uid != req_class) {
    ctx.spool->discard_temp(ctx.temp_path);
    rsp->DimseStatus = STATUS_STORE_Error_DataSetDoesNotMatchSOPClass;
    ctx.refusal = StoreContext::Refusal::kSopMismatch;
    ctx.failure = "dataset SOP class/instance differ from the C-STORE request";
    set_comment(ctx, detail, "dirgw: dataset UIDs differ from the request");
    return;
  }
  const auto spool_failed = [&](const Error& e) {
    rsp->DimseStatus = STATUS_STORE_Refused_OutOfResources;
    ctx.refusal = StoreContext::Refusal::kSpoolError;
    ctx.failure = e.to_string();
    set_comment(ctx, detail, "dirgw: cannot store the object now");
  };
  auto hashed = ctx.spool->hash_received(ctx.temp_path, ctx.max_object_size);
  if (!hashed) return spool_failed(hashed.error());
  ReceivedObject obj{std::move(hashed).value(), std::move(scan).value(), ctx.calling_ae, ctx.peer};
  std::optional<Result<StoredObject>> durable;  // set once the data is durable and linked
  obj.make_durable = [&]() -> Result<void> {
    durable = ctx.spool->finish_commit(ctx.temp_path, obj.stored, flushing);
    if (!*durable) return durable->error();
    return {};
  };
  obj.file = ctx.temp_path;
  ctx.study_uid = obj.scan.study_uid;
  auto sunk = ctx.sink->object_received(obj);
  if (durable && !*durable) return spool_failed(durable->error());
  // Not kept: an error (the sender retries), or the same instance held in other bytes.
  const bool drop = !sunk || *sunk == SinkOutcome::kDuplicateOtherBytes;
  if (!durable && drop) ctx.spool->discard_temp(ctx.temp_path);
  if (!durable && !drop) {
    // A sink that records nothing durable of its own need not call make_durable: done here.
    if (auto made = obj.make_durable(); !made) return spool_failed(made.error());
  }
  ctx.bytes = obj.stored.size;
  if (!sunk) {
    rsp->DimseStatus = STATUS_STORE_Refused_OutOfResources;
    ctx.refusal = StoreContext::Refusal::kCatalog;
    ctx.failure = sunk.error().to_string();
    set_comment(ctx, detail, "dirgw: catalog unavailable, retry later");
    return;
  }
  ctx.stored = true;
  ctx.duplicate = *sunk != SinkOutcome::kStored;
  rsp->DimseStatus = STATUS_Success;
}

}  // namespace

struct DicomScp::Worker {
  std::thread thread;
  std::atomic<bool> done{false};
  int fd = -1;
  // Steady-clock milliseconds of the last progress (a PDV, a command): the watchdog cuts an
  // association that makes none for dimse_timeout, however slowly bytes trickle in.
  std::atomic<std::int64_t> last_progress_ms{0};
  std::atomic<bool> cut{false};
  std::atomic<bool> associated{false};  // past negotiation: the stop's grace applies
};

namespace {
// Waits, without reading, until the whole first PDU (the A-ASSOCIATE-RQ) is in the socket's
// receive buffer, so that DCMTK's read of it cannot block. False when the peer does not send it
// within the time-out or closes. A PDU too large to peek at is left to DCMTK.
bool whole_first_pdu(int fd, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::size_t need = 6;
  std::vector<unsigned char> buf(need);
  for (;;) {
    ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return false;
    if (n > 0 && static_cast<std::size_t>(n) >= need) {
      if (need == 6) {
        const std::size_t length = (std::size_t{buf[2]} << 24) | (std::size_t{buf[3]} << 16) |
                                   (std::size_t{buf[4]} << 8) | buf[5];
        if (buf[0] != 0x01 || length > 60 * 1024) return true;  // not ours to judge: DCMTK's
        need = 6 + length;
        buf.resize(need);
        continue;
      }
      return true;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 200)));
  }
}
}  // namespace

DicomScp::DicomScp(const config::DicomIngest& cfg, const Spool& spool, ObjectSink& sink,
                   PrescanLimits limits, std::uint64_t spool_floor,
                   metrics::GatewayMetrics* metrics)
    : cfg_(cfg),
      spool_(spool),
      sink_(sink),
      limits_(limits),
      spool_floor_(spool_floor),
      metrics_(metrics) {
  // The request's UIDs are the meta header's (DCMTK writes it from the request): compared in
  // store_callback, which answers 0xA900 "data set does not match SOP class" (issue 17, item 10).
  limits_.compare_meta_uids = false;
  // Offered: what the configuration lists and DCMTK can at least parse (a syntax it does not
  // know could not be written into the spool's file meta header).
  for (const auto& ts : cfg.transfer_syntaxes) {
    if (DcmXfer(ts.c_str()).getXfer() != EXS_Unknown)
      rules_.storage_transfer_syntaxes.push_back(ts);
    else
      log::warn("transfer syntax not known to DCMTK: not offered", {{"transfer_syntax", ts}});
  }
  for (int i = 0; i < numberOfDcmAllStorageSOPClassUIDs; ++i)
    rules_.known_storage_classes.insert(dcmAllStorageSOPClassUIDs[i]);
  rules_.extra_sop_classes.insert(cfg.extra_sop_classes.begin(), cfg.extra_sop_classes.end());
}

DicomScp::~DicomScp() {
  stop();
  if (network_ != nullptr) {
    auto* net = static_cast<T_ASC_Network*>(network_);
    ASC_dropNetwork(&net);
  }
}

Result<void> DicomScp::start() {
  // DCMTK's own logging can print dataset contents at debug level; keep it to fatal errors.
  OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
  dcmDisableGethostbyaddr.set(OFTrue);
  // Silence inside a PDU is bounded by dimse_timeout too (DCMTK's default is 60 s).
  const auto dimse_secs = static_cast<Sint32>(
      std::chrono::duration_cast<std::chrono::seconds>(cfg_.dimse_timeout).count());
  dcmSocketReceiveTimeout.set(dimse_secs);
  dcmSocketSendTimeout.set(dimse_secs);

  listen_fd_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listen_fd_.valid()) return make_error(ErrorCode::kNetwork, "socket: " + errno_text(errno));
  int one = 1;
  ::setsockopt(listen_fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(cfg_.port));
  if (::inet_pton(AF_INET, cfg_.bind.c_str(), &addr.sin_addr) != 1)
    return make_error(ErrorCode::kConfig, "bind address is not IPv4");
  if (::bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return make_error(ErrorCode::kNetwork, "cannot bind DICOM port " + std::to_string(cfg_.port) +
                                               ": " + errno_text(errno));
  if (::listen(listen_fd_.get(), 64) != 0)
    return make_error(ErrorCode::kNetwork, "listen: " + errno_text(errno));
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return make_error(ErrorCode::kIo, "pipe: " + errno_text(errno));
  stop_pipe_read_.reset(fds[0]);
  stop_pipe_write_.reset(fds[1]);

  // With an external socket handle set, DCMTK creates no listening socket of its own (it would
  // bind every interface); we accept ourselves, on the configured address.
  T_ASC_Network* net = nullptr;
  dcmExternalSocketHandle.set(listen_fd_.get());
  OFCondition cond = ASC_initializeNetwork(
      NET_ACCEPTOR, 0,
      static_cast<int>(std::chrono::duration_cast<std::chrono::seconds>(cfg_.acse_timeout).count()),
      &net);
  dcmExternalSocketHandle.set(DCMNET_INVALID_SOCKET);
  if (cond.bad())
    return make_error(ErrorCode::kNetwork, std::string("DCMTK network: ") + cond.text());
  network_ = net;
  auto callers = Callers::make(cfg_.allowed_callers, cfg_.callers);
  if (!callers) return callers.error();
  callers_ = std::make_unique<Callers>(std::move(callers).value());
  DcmTransportLayer* inner = nullptr;  // DCMTK's plain TCP
  if (cfg_.tls.enabled) {
    auto tls = ScpTls::make(cfg_.tls);
    if (!tls) return tls.error();
    tls_ = std::move(tls).value();
    inner = static_cast<DcmTransportLayer*>(tls_->layer());
  }
  // Every association's bytes pass a watch before DCMTK parses them (pdu_watch.h).
  watched_layer_ = std::make_unique<WatchedLayer>(inner);
  if (OFCondition c = ASC_setTransportLayer(net, watched_layer_.get(), /*takeoverOwnership=*/0);
      c.bad())
    return make_error(ErrorCode::kNetwork, std::string("DCMTK transport layer: ") + c.text());
  listener_ = std::thread(&DicomScp::listen_loop, this);
  log::info("DICOM listener ready", {{"ae_title", cfg_.ae_title},
                                     {"address", cfg_.bind},
                                     {"port", std::to_string(port_)},
                                     {"tls", tls_ ? "BCP195-ND" : "off"}});
  return {};
}

void DicomScp::stop() {
  std::lock_guard stop_lock(stop_mutex_);
  if (stopped_) return;
  stopped_ = true;
  stopping_ = true;
  if (stop_pipe_write_.valid()) {
    char c = 'x';
    [[maybe_unused]] auto n = ::write(stop_pipe_write_.get(), &c, 1);
  }
  if (listener_.joinable()) listener_.join();
  // Connections are refused by the kernel from here on; those still negotiating are cut.
  if (listen_fd_.valid()) ::shutdown(listen_fd_.get(), SHUT_RDWR);
  cut_workers(SHUT_RDWR, /*negotiating_only=*/true);
  const int active = stats_.active.load();
  if (active > 0)
    log::info("DICOM listener closed: associations in progress may finish",
              {{"associations", std::to_string(active)},
               {"stop_grace_ms", std::to_string(cfg_.stop_grace.count())}});
  if (!wait_workers(cfg_.stop_grace)) {
    // Reading stops, so each worker's next read fails and it sends an A-ABORT; an object being
    // committed completes (its response may be lost: the sender resends, a duplicate).
    const int cut = cut_workers(SHUT_RD, false);
    log::warn("stop_grace over: aborting the associations left",
              {{"associations", std::to_string(cut)}});
    if (!wait_workers(std::chrono::seconds(2))) cut_workers(SHUT_RDWR, false);
  }
  std::list<std::unique_ptr<Worker>> workers;
  {
    std::lock_guard lock(workers_mutex_);
    workers.swap(workers_);
  }
  for (auto& w : workers)
    if (w->thread.joinable()) w->thread.join();
}

int DicomScp::cut_workers(int how, bool negotiating_only) {
  int n = 0;
  std::lock_guard lock(workers_mutex_);
  for (auto& w : workers_) {
    if (w->done || w->fd < 0 || (negotiating_only && w->associated)) continue;
    ::shutdown(w->fd, how);
    ++n;
  }
  return n;
}

bool DicomScp::wait_workers(std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    bool running = false;
    {
      std::lock_guard lock(workers_mutex_);
      for (auto& w : workers_) running = running || !w->done;
    }
    if (!running) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void DicomScp::reap_finished() {
  std::lock_guard lock(workers_mutex_);
  for (auto it = workers_.begin(); it != workers_.end();) {
    if ((*it)->done) {
      (*it)->thread.join();
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
}

void DicomScp::watchdog() {
  const std::int64_t now = steady_ms();
  const std::int64_t limit = cfg_.dimse_timeout.count();
  std::lock_guard lock(workers_mutex_);
  for (auto& w : workers_) {
    if (w->done || w->fd < 0 || w->cut) continue;
    const std::int64_t last = w->last_progress_ms.load();
    if (last != 0 && now - last > limit) {
      w->cut = true;
      ::shutdown(w->fd, SHUT_RDWR);
      log::warn("association made no progress within dimse_timeout: cut",
                {{"dimse_timeout_ms", std::to_string(limit)}});
    }
  }
}

void DicomScp::listen_loop() {
  while (!stopping_) {
    pollfd pfd[2] = {{listen_fd_.get(), POLLIN, 0}, {stop_pipe_read_.get(), POLLIN, 0}};
    // The one-second tick is the watchdog's: it cuts associations that trickle bytes without
    // ever completing a PDV (a slow-loris peer would otherwise hold a worker for ever).
    const int rc = ::poll(pfd, 2, 1000);
    if (rc < 0) {
      if (errno == EINTR) continue;
      log::error("DICOM listener poll failed", {{"error", errno_text(errno)}});
      return;
    }
    if (pfd[1].revents != 0 || stopping_) return;
    watchdog();
    if ((pfd[0].revents & POLLIN) == 0) continue;
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    int fd = ::accept4(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len, SOCK_CLOEXEC);
    if (fd < 0) continue;
    // Whatever the environment says, Nagle's algorithm stays off on every DICOM socket.
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const std::string peer = peer_string(addr);
    reap_finished();
    // Connections still negotiating count too: a flood of silent connections cannot make
    // threads without bound.
    {
      std::lock_guard lock(workers_mutex_);
      if (static_cast<int>(workers_.size()) >= 2 * cfg_.max_associations) {
        ::close(fd);
        log::warn("connection refused: too many connections at once", {{"peer", peer}});
        stats_.associations_rejected++;
        if (metrics_ != nullptr) metrics_->associations_busy.inc();
        continue;
      }
    }
    auto worker = std::make_unique<Worker>();
    Worker* w = worker.get();
    w->fd = fd;
    {
      std::lock_guard lock(workers_mutex_);
      workers_.push_back(std::move(worker));
    }
    w->thread = std::thread([this, peer, w, fd] {
      accept_association(fd, peer, *w);
      w->done = true;
    });
  }
}

// In the connection's own thread: wait (bounded by acse_timeout) for the whole association
// request, then let DCMTK read it; only that read, which no longer blocks, is serialised.
void DicomScp::accept_association(int fd, const std::string& peer, Worker& w) {
  auto* net = static_cast<T_ASC_Network*>(network_);
  const int acse_secs =
      static_cast<int>(std::chrono::duration_cast<std::chrono::seconds>(cfg_.acse_timeout).count());
  // From here on the fd may be closed by DCMTK: the stop and the watchdog must not touch it.
  auto release_fd = [this, &w] {
    std::lock_guard lock(workers_mutex_);
    w.fd = -1;
  };
  if (!whole_first_pdu(fd,
                       std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.acse_timeout))) {
    release_fd();
    ::close(fd);
    if (stopping_) return;  // cut by the stop: not the peer's doing
    log::warn("no complete association request within acse_timeout: connection closed",
              {{"peer", peer}});
    sink_.refused({"", peer, "no complete association request within acse_timeout",
                   refusal::kAcseTimeout, false});
    return;
  }
  T_ASC_Association* assoc = nullptr;
  OFCondition cond;
  {
    std::lock_guard lock(receive_mutex_);
    dcmExternalSocketHandle.set(fd);  // DCMTK owns fd from here on
    // With TLS the handshake happens in here (our own first-PDU wait saw only a ClientHello).
    cond = ASC_receiveAssociation(net, &assoc, static_cast<long>(cfg_.max_pdu), nullptr, nullptr,
                                  tls_ ? OFTrue : OFFalse, DUL_NOBLOCK, acse_secs);
    dcmExternalSocketHandle.set(DCMNET_INVALID_SOCKET);
  }
  if (cond.bad()) {
    release_fd();
    if (tls_ && !stopping_) {
      // No TLS, an untrusted or expired certificate, none when one is required, TLS < 1.2.
      log::warn("TLS handshake or association request failed: connection closed",
                {{"peer", peer}, {"reason", cond.text()}});
      stats_.associations_rejected++;
      if (metrics_ != nullptr) metrics_->associations_rejected.inc();
      sink_.refused({"", peer, std::string("TLS handshake failed: ") + cond.text(),
                     refusal::kTlsHandshake, true});
    } else {
      log::warn("association request not received", {{"peer", peer}, {"reason", cond.text()}});
    }
    if (assoc != nullptr) {
      ASC_dropAssociation(assoc);
      ASC_destroyAssociation(&assoc);
    }
    return;
  }
  if (stats_.active.fetch_add(1) >= cfg_.max_associations) {
    stats_.active--;
    T_ASC_RejectParameters rej = {ASC_RESULT_REJECTEDTRANSIENT,
                                  ASC_SOURCE_SERVICEPROVIDER_PRESENTATION_RELATED,
                                  ASC_REASON_SP_PRES_LOCALLIMITEXCEEDED};
    ASC_rejectAssociation(assoc, &rej);
    release_fd();
    ::shutdown(fd, SHUT_RDWR);  // closed at once, not when the peer gets round to it
    ASC_dropAssociation(assoc);
    ASC_destroyAssociation(&assoc);
    stats_.associations_rejected++;
    if (metrics_ != nullptr) metrics_->associations_busy.inc();
    log::warn("association rejected: too many at once",
              {{"peer", peer}, {"max_associations", std::to_string(cfg_.max_associations)}});
    sink_.refused(
        {"", peer, "association rejected: max_associations reached", refusal::kBusy, false});
    return;
  }
  w.last_progress_ms = steady_ms();
  w.associated = true;
  handle_association(assoc, peer, fd, &w.last_progress_ms, &w);
  stats_.active--;
}

// Answers every proposed presentation context (negotiation.h decides); each refusal is logged with
// its SOP class and reason, counted, and the association's refusals recorded in one row.
void DicomScp::negotiate_contexts(void* handle, const std::string& calling_ae,
                                  const std::string& peer, bool commitment, bool commitment_only) {
  auto* assoc = static_cast<T_ASC_Association*>(handle);
  std::vector<ProposedContext> proposed;
  const int n = ASC_countPresentationContexts(assoc->params);
  for (int i = 0; i < n; ++i) {
    T_ASC_PresentationContext pc;
    if (ASC_getPresentationContext(assoc->params, i, &pc).bad()) continue;
    ProposedContext p{pc.presentationContextID, uid_text(pc.abstractSyntax), {}};
    for (int t = 0; t < pc.transferSyntaxCount; ++t)
      p.transfer_syntaxes.push_back(uid_text(pc.proposedTransferSyntaxes[t]));
    proposed.push_back(std::move(p));
  }
  int refused = 0;
  std::string first;
  for (std::size_t i = 0; i < proposed.size(); ++i) {
    if (commitment && proposed[i].abstract_syntax == kStorageCommitmentClass) {
      T_ASC_PresentationContext pc;
      if (ASC_findAcceptedPresentationContextID(assoc, proposed[i].abstract_syntax.c_str()) == 0 &&
          ASC_getPresentationContext(assoc->params, static_cast<int>(i), &pc).good() &&
          accept_commitment_context(assoc->params, pc))
        continue;
    }
    ContextDecision d = negotiate({proposed[i]}, rules_).front();
    if (commitment_only || proposed[i].abstract_syntax == kStorageCommitmentClass)
      d.result = ContextResult::kAbstractSyntaxNotSupported;
    const auto id = static_cast<T_ASC_PresentationContextID>(d.id);
    if (d.result == ContextResult::kAccepted) {
      ASC_acceptPresentationContext(assoc->params, id, d.transfer_syntax.c_str());
      continue;
    }
    const bool abstract = d.result == ContextResult::kAbstractSyntaxNotSupported;
    ASC_refusePresentationContext(
        assoc->params, id,
        abstract ? ASC_P_ABSTRACTSYNTAXNOTSUPPORTED : ASC_P_TRANSFERSYNTAXESNOTSUPPORTED);
    ++refused;
    stats_.contexts_refused++;
    if (metrics_ != nullptr)
      (abstract ? metrics_->contexts_refused_abstract : metrics_->contexts_refused_transfer).inc();
    const std::string why = std::string(describe(d.result));
    if (first.empty()) first = proposed[i].abstract_syntax + " (" + why + ")";
    log::warn("presentation context refused", {{"calling_ae", calling_ae},
                                               {"peer", peer},
                                               {"sop_class_uid", proposed[i].abstract_syntax},
                                               {"reason", why}});
  }
  if (refused > 0)
    sink_.refused(calling_ae, peer,
                  std::to_string(refused) + " presentation context(s) refused, first: " + first);
}

void DicomScp::handle_association(void* handle, std::string peer, int socket_fd,
                                  std::atomic<std::int64_t>* progress, Worker* worker) {
  auto* assoc = static_cast<T_ASC_Association*>(handle);
  char calling[64] = {}, called[64] = {};
  ASC_getAPTitles(assoc->params, calling, sizeof calling, called, sizeof called, nullptr, 0);
  const std::string calling_ae = uid_text(calling), called_ae = uid_text(called);

  // A rejected association is closed at once: after the A-ASSOCIATE-RJ, DCMTK would otherwise
  // wait for the peer to close the connection.
  auto reject = [&](T_ASC_RejectParametersReason reason, const std::string& why, const char* code,
                    T_ASC_RejectParametersResult result = ASC_RESULT_REJECTEDPERMANENT) {
    T_ASC_RejectParameters rej = {result, ASC_SOURCE_SERVICEUSER, reason};
    ASC_rejectAssociation(assoc, &rej);
    ::shutdown(socket_fd, SHUT_RDWR);
    stats_.associations_rejected++;
    if (metrics_ != nullptr) metrics_->associations_rejected.inc();
    log::warn("association rejected",
              {{"calling_ae", calling_ae}, {"peer", peer}, {"reason", why}, {"code", code}});
    sink_.refused(
        {calling_ae, peer, "association rejected: " + why, code, code != refusal::kStopping});
  };

  const std::string peer_address = peer.substr(0, peer.rfind(':'));
  const CallerDecision caller = callers_->decide(
      calling_ae, peer_address, tls_ ? peer_certificate_subject(assoc) : std::nullopt);
  // A repository sending storage commitment reports (set_commitment): admitted for that alone.
  const bool repository = commitment_ != nullptr && commitment_callers_.count(calling_ae) > 0;
  const bool commitment_only = repository && !caller.admitted;
  if (called_ae != cfg_.ae_title && !(repository && commitment_called_.count(called_ae) > 0)) {
    reject(ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED, "called AE title is not " + cfg_.ae_title,
           refusal::kCalledAe);
  } else if (!caller.admitted && !commitment_only) {
    reject(ASC_REASON_SU_CALLINGAETITLENOTRECOGNIZED, caller.why, caller.code);
  } else if (stopping_) {
    reject(ASC_REASON_SU_NOREASON, "the receiver is stopping", refusal::kStopping,
           ASC_RESULT_REJECTEDTRANSIENT);
  } else {
    negotiate_contexts(assoc, calling_ae, peer, repository, commitment_only);
    ASC_setAPTitles(assoc->params, nullptr, nullptr, called_ae.c_str());
    const OFCondition cond = ASC_acknowledgeAssociation(assoc);
    if (cond.bad()) {
      log::warn("association acknowledge failed", {{"peer", peer}, {"reason", cond.text()}});
    } else {
      serve_association(assoc, calling_ae, peer, socket_fd, progress);
    }
  }
  if (worker != nullptr) {
    std::lock_guard lock(workers_mutex_);
    worker->fd = -1;
  }
  ASC_dropSCPAssociation(assoc);
  ASC_destroyAssociation(&assoc);
}

void DicomScp::serve_association(void* handle, const std::string& calling_ae,
                                 const std::string& peer, int socket_fd,
                                 std::atomic<std::int64_t>* progress) {
  auto* assoc = static_cast<T_ASC_Association*>(handle);
  stats_.associations++;
  if (metrics_ != nullptr) metrics_->associations_accepted.inc();
  struct ObserveDuration {
    metrics::GatewayMetrics* m;
    std::chrono::steady_clock::time_point t0;
    ~ObserveDuration() {
      if (m != nullptr) m->association_duration.observe(std::chrono::steady_clock::now() - t0);
    }
  } observe_duration{metrics_, std::chrono::steady_clock::now()};
  log::info("association accepted", {{"calling_ae", calling_ae}, {"peer", peer}});
  (void)take_watch_verdict();  // one left by an earlier association of this thread is not ours
  const int dimse_secs = static_cast<int>(
      std::chrono::duration_cast<std::chrono::seconds>(cfg_.dimse_timeout).count());
  for (;;) {
    T_DIMSE_Message msg;
    T_ASC_PresentationContextID pres_id = 0;
    const OFCondition cond = dcmtk_guard([&] {
      return DIMSE_receiveCommand(assoc, DIMSE_NONBLOCKING, dimse_secs, &pres_id, &msg, nullptr);
    });
    if (cond == DUL_PEERREQUESTEDRELEASE) {
      ASC_acknowledgeRelease(assoc);
      return;
    }
    if (cond == DUL_PEERABORTEDASSOCIATION) {
      log::warn("association aborted by peer", {{"calling_ae", calling_ae}, {"peer", peer}});
      return;
    }
    if (cond == DIMSE_NODATAAVAILABLE) {
      log::warn("association idle beyond dimse_timeout: aborting",
                {{"calling_ae", calling_ae}, {"peer", peer}});
      ASC_abortAssociation(assoc);
      return;
    }
    if (cond.bad()) {
      // DCMTK's condition texts name the problem, never a value of the message; the watch's
      // reason, when it cut the connection, says more than DCMTK's "network read failed".
      const std::string why = dimse_failure_text(cond);
      log::warn("DIMSE receive failed: aborting association",
                {{"calling_ae", calling_ae}, {"peer", peer}, {"reason", why}});
      sink_.refused(
          {calling_ae, peer, "DIMSE receive failed: " + why, refusal::kReceiveFailed, false});
      ASC_abortAssociation(assoc);
      return;
    }
    if (progress != nullptr) *progress = steady_ms();
    if (msg.CommandField == DIMSE_C_ECHO_RQ) {
      DIMSE_sendEchoResponse(assoc, pres_id, &msg.msg.CEchoRQ, STATUS_Success, nullptr);
      continue;
    }
    if (msg.CommandField == DIMSE_N_EVENT_REPORT_RQ && commitment_ != nullptr &&
        commitment_callers_.count(calling_ae) > 0) {
      if (!serve_event_report(assoc, pres_id, msg.msg.NEventReportRQ, *commitment_, calling_ae,
                              peer, dimse_secs)) {
        ASC_abortAssociation(assoc);
        return;
      }
      continue;
    }
    if (msg.CommandField != DIMSE_C_STORE_RQ) {
      log::warn("unsupported DIMSE command: aborting association",
                {{"calling_ae", calling_ae},
                 {"peer", peer},
                 {"command", std::to_string(static_cast<int>(msg.CommandField))}});
      ASC_abortAssociation(assoc);
      return;
    }
    if (!serve_store(assoc, pres_id, &msg.msg.CStoreRQ, calling_ae, peer, socket_fd, progress))
      return;
  }
}

bool DicomScp::serve_store(void* handle, unsigned char pres_id, void* request,
                           const std::string& calling_ae, const std::string& peer, int socket_fd,
                           std::atomic<std::int64_t>* progress) {
  auto* assoc = static_cast<T_ASC_Association*>(handle);
  T_DIMSE_C_StoreRQ& req = *static_cast<T_DIMSE_C_StoreRQ*>(request);
  const int dimse_secs = static_cast<int>(
      std::chrono::duration_cast<std::chrono::seconds>(cfg_.dimse_timeout).count());
  StoreContext ctx;
  ctx.scp = this;
  ctx.spool = &spool_;
  ctx.sink = &sink_;
  ctx.limits = &limits_;
  ctx.max_object_size = cfg_.max_object_size;
  ctx.calling_ae = calling_ae;
  ctx.peer = peer;
  auto free = free_bytes(spool_.root());
  if ((!free || *free < spool_floor_) && make_room_ && make_room_())
    free = free_bytes(spool_.root());
  if (!free || *free < spool_floor_) {
    ctx.refuse_reason = "spool below its free-space floor";
    ctx.temp_path = NULL_DEVICE_NAME;
  } else {
    // A pre-created slot: its name is durable already, so the object's data is its only flush.
    auto slot = spool_.acquire_slot();
    ctx.temp_path = slot ? slot->string() : spool_.new_temp_path().string();
  }
  ctx.socket = socket_fd;
  ctx.plain = !tls_;
  ctx.spool_floor = spool_floor_;
  ctx.progress = progress;
  const auto started = std::chrono::steady_clock::now();
  const OFCondition cond = dcmtk_guard([&] {
    return DIMSE_storeProvider(assoc, pres_id, &req, ctx.temp_path.c_str(), OFTrue, nullptr,
                               store_callback, &ctx, DIMSE_NONBLOCKING, dimse_secs);
  });
  delete ctx.status_detail;
  const std::string sop_uid = uid_text(req.AffectedSOPInstanceUID);
  if (cond.bad()) {
    if (ctx.refuse_reason.empty()) spool_.discard_temp(ctx.temp_path);
    const std::string why = ctx.too_large     ? "object larger than max_object_size"
                            : ctx.below_floor ? "spool fell below its free-space floor"
                                              : dimse_failure_text(cond);
    log::warn("C-STORE failed before a response: nothing acknowledged",
              {{"sop_instance_uid", sop_uid}, {"peer", peer}, {"reason", why}});
    if (ctx.too_large || ctx.below_floor) {
      stats_.refused++;
      if (metrics_ != nullptr)
        (ctx.too_large ? metrics_->refused_too_large : metrics_->refused_spool_floor).inc();
      sink_.refused({calling_ae, peer, "C-STORE cut off: " + why,
                     ctx.too_large ? refusal::kObjectTooLarge : refusal::kSpoolFull, false});
    } else if (!ctx.stored && cond != DUL_PEERABORTEDASSOCIATION) {
      // DCMTK failed the receive (an odd PDV fragment, a malformed PDU, the connection lost):
      // the sender gets no answer, but status counts it and the row says why. A refusal already
      // decided (the pre-scan's reason) whose answer could not be sent keeps its reason.
      stats_.refused++;
      const bool decided = !ctx.failure.empty();
      sink_.refused({calling_ae, peer,
                     decided ? "C-STORE refused: " + ctx.failure + " (the answer could not be sent)"
                             : "C-STORE receive failed: " + why,
                     decided ? refusal::kStoreRefused : refusal::kReceiveFailed, false});
    }
    if (ctx.stored) {
      // Stored and catalogued but the response could not be sent: the sender will send again
      // and it will be recognised as a duplicate.
      log::info("object kept although its response was lost", {{"sop_instance_uid", sop_uid}});
    }
    ASC_abortAssociation(assoc);
    return false;
  }
  if (metrics_ != nullptr) observe_store(*metrics_, ctx, started);
  if (ctx.stored) {
    (ctx.duplicate ? stats_.duplicates : stats_.stored)++;
    log::debug(ctx.duplicate ? "duplicate instance acknowledged" : "instance stored",
               {{"sop_instance_uid", sop_uid},
                {"study_uid", ctx.study_uid},
                {"calling_ae", calling_ae},
                {"ms", std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::steady_clock::now() - started)
                                          .count())}});
  } else {
    stats_.refused++;
    log::warn("C-STORE refused", {{"sop_instance_uid", sop_uid},
                                  {"calling_ae", calling_ae},
                                  {"peer", peer},
                                  {"reason", ctx.failure}});
    sink_.refused(
        {calling_ae, peer, "C-STORE refused: " + ctx.failure, refusal::kStoreRefused, false});
  }
  return true;
}

}  // namespace dirgw::ingest
