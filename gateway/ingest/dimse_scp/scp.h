// The DICOM Storage SCP: C-ECHO and C-STORE for the storage SOP classes, bit-preserving.
// DCMTK writes each received dataset straight into a spool temporary as the PDVs arrive (so
// memory stays flat whatever the size); the object is pre-scanned, made durable and catalogued
// before the C-STORE response says success.
//
// Threads: one listener (accept + A-ASSOCIATE-RQ, which DCMTK reads through a process-wide
// socket hand-over that only this thread touches) and one thread per association, bounded by
// max_associations.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "common/files.h"
#include "common/result.h"
#include "config/config.h"
#include "ingest/dimse_scp/callers.h"
#include "ingest/dimse_scp/commitment.h"
#include "ingest/dimse_scp/negotiation.h"
#include "ingest/dimse_scp/refusal.h"
#include "ingest/prescan/prescan.h"
#include "ingest/spool/spool.h"
#include "metrics/metrics.h"

namespace dirgw::ingest {

class ScpTls;
class WatchedLayer;

struct ReceivedObject {
  StoredObject stored;
  PrescanResult scan;
  std::string calling_ae;
  std::string peer;
  std::string source;  // set by a door that knows better ("pull:<name>"); empty: derived
  // Set by the SCP when the object's data is not durable yet: the sink calls it before the
  // object's record can commit and fails the object if it fails (catalog::NewInstance).
  std::function<Result<void>()> make_durable;
  // Where the object's bytes can be read while the sink runs, when not at stored.path yet (the
  // SCP's slot): for telling the same instance in other bytes (catalog::NewInstance::content).
  std::filesystem::path file;
};

// kDuplicateOtherBytes: an instance held already, received in other bytes (another door's meta
// header, another VR form or transfer syntax): nothing is kept of it. An object at stored.path
// (made durable by its door) has been removed by the sink; one with make_durable set is not
// linked yet, and its door discards its temporary instead of making it durable.
enum class SinkOutcome { kStored, kDuplicate, kDuplicateOtherBytes };

// A refusal at the door: who, why in our words, and why as a code (refusal::k*). `security`
// marks who-may-call refusals (caller bindings, TLS), which the audit trail records too.
struct DoorRefusal {
  std::string calling_ae, peer, reason;
  const char* code = refusal::kOther;
  bool security = false;
  std::string source = "dicom";  // the door: dicom, or folder:<name> (refusals.source)
};

// Where received objects go next (the catalog, via the daemon).
class ObjectSink {
 public:
  virtual ~ObjectSink() = default;
  // The object is durable in the spool. Returns once it is durable in the catalog too; an
  // error makes the C-STORE fail (the sender will retry), nothing is acknowledged.
  virtual Result<SinkOutcome> object_received(const ReceivedObject& object) = 0;
  // Something was refused: recorded so that status can say why.
  virtual void refused(const DoorRefusal& refusal) = 0;
  void refused(const std::string& calling_ae, const std::string& peer, const std::string& reason) {
    refused(DoorRefusal{calling_ae, peer, reason, refusal::kOther, false});
  }
};

struct ScpStats {
  std::atomic<std::uint64_t> associations{0};
  std::atomic<std::uint64_t> associations_rejected{0};
  std::atomic<std::uint64_t> stored{0};
  std::atomic<std::uint64_t> duplicates{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> contexts_refused{0};  // presentation contexts, every reason
  std::atomic<int> active{0};
};

class DicomScp {
 public:
  DicomScp(const config::DicomIngest& cfg, const Spool& spool, ObjectSink& sink,
           PrescanLimits limits, std::uint64_t spool_floor,
           metrics::GatewayMetrics* metrics = nullptr);
  ~DicomScp();
  DicomScp(const DicomScp&) = delete;
  DicomScp& operator=(const DicomScp&) = delete;

  // Binds the listening socket (so READY=1 can follow) and starts the listener thread.
  Result<void> start();
  // The bounded stop: stops accepting at once (new connections are refused by the kernel),
  // lets associations in progress run for stop_grace, then aborts those left and joins every
  // thread. Nothing is acknowledged that is not durable, so an abort loses nothing acknowledged.
  // Safe to call from any thread and more than once (later calls wait for the first).
  void stop();
  bool stopping() const { return stopping_; }

  int port() const { return port_; }
  const ScpStats& stats() const { return stats_; }
  // Before start: called when the spool is below its floor, before an object is refused; true
  // when it made room (retention removed verified objects: docs/verification.md).
  void set_make_room(std::function<bool()> make_room) { make_room_ = std::move(make_room); }
  // Before start: storage commitment reports (docs/verification.md). The Storage Commitment
  // Push Model context is accepted only from `repository_aes` (the AE titles of the dimse
  // destinations with verify: storage-commitment), which are admitted for that context alone
  // when allowed_callers does not name them, calling us by ae_title or by one of `called_aes`
  // (those destinations' calling_ae: the AE title the repository knows us by).
  void set_commitment(CommitmentReceiver* receiver, std::set<std::string> repository_aes,
                      std::set<std::string> called_aes) {
    commitment_ = receiver;
    commitment_callers_ = std::move(repository_aes);
    commitment_called_ = std::move(called_aes);
  }

 private:
  struct Worker;
  void listen_loop();
  void watchdog();
  void accept_association(int fd, const std::string& peer, Worker& w);
  void handle_association(void* assoc, std::string peer, int socket_fd,
                          std::atomic<std::int64_t>* progress, Worker* worker = nullptr);
  void reap_finished();
  // shutdown(how) on the sockets of the workers still running (only those not yet associated
  // when `negotiating_only`); returns how many.
  int cut_workers(int how, bool negotiating_only);
  bool wait_workers(std::chrono::milliseconds limit);
  // `commitment`: the caller is a repository that may send storage commitment reports;
  // `commitment_only`: and nothing else (allowed_callers does not name it).
  void negotiate_contexts(void* assoc, const std::string& calling_ae, const std::string& peer,
                          bool commitment = false, bool commitment_only = false);
  // After the A-ASSOCIATE-AC: C-ECHO and C-STORE until release, abort or time-out.
  void serve_association(void* assoc, const std::string& calling_ae, const std::string& peer,
                         int socket_fd, std::atomic<std::int64_t>* progress);
  // One C-STORE (`request` is its T_DIMSE_C_StoreRQ); false when the association must end.
  bool serve_store(void* assoc, unsigned char pres_id, void* request, const std::string& calling_ae,
                   const std::string& peer, int socket_fd, std::atomic<std::int64_t>* progress);

  const config::DicomIngest& cfg_;
  const Spool& spool_;
  ObjectSink& sink_;
  PrescanLimits limits_;
  std::uint64_t spool_floor_;
  std::function<bool()> make_room_;
  CommitmentReceiver* commitment_ = nullptr;
  std::set<std::string> commitment_callers_, commitment_called_;
  metrics::GatewayMetrics* metrics_;
  NegotiationRules rules_;

  UniqueFd listen_fd_;
  UniqueFd stop_pipe_read_, stop_pipe_write_;
  int port_ = 0;
  void* network_ = nullptr;  // T_ASC_Network*
  std::atomic<bool> stopping_{false};
  std::mutex stop_mutex_;
  bool stopped_ = false;
  std::unique_ptr<Callers> callers_;
  std::unique_ptr<ScpTls> tls_;
  std::unique_ptr<WatchedLayer> watched_layer_;  // outlives network_ (dropped in ~DicomScp)
  std::thread listener_;
  std::mutex workers_mutex_;
  std::mutex receive_mutex_;  // DCMTK's socket hand-over is a process-wide global
  std::list<std::unique_ptr<Worker>> workers_;
  ScpStats stats_;
};

}  // namespace dirgw::ingest
