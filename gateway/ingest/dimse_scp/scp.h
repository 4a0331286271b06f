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
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/files.h"
#include "common/result.h"
#include "config/config.h"
#include "ingest/dimse_scp/negotiation.h"
#include "ingest/prescan/prescan.h"
#include "ingest/spool/spool.h"
#include "metrics/metrics.h"

namespace dirgw::ingest {

struct ReceivedObject {
  StoredObject stored;
  PrescanResult scan;
  std::string calling_ae;
  std::string peer;
};

enum class SinkOutcome { kStored, kDuplicate };

// Where received objects go next (the catalog, via the daemon).
class ObjectSink {
 public:
  virtual ~ObjectSink() = default;
  // The object is durable in the spool. Returns once it is durable in the catalog too; an
  // error makes the C-STORE fail (the sender will retry), nothing is acknowledged.
  virtual Result<SinkOutcome> object_received(const ReceivedObject& object) = 0;
  // Something was refused: recorded so that status can say why.
  virtual void refused(const std::string& calling_ae, const std::string& peer,
                       const std::string& reason) = 0;
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
  // Stops accepting, lets running associations finish their current message, joins threads.
  void stop();

  int port() const { return port_; }
  const ScpStats& stats() const { return stats_; }

 private:
  struct Worker;
  void listen_loop();
  void watchdog();
  void accept_association(int fd, const std::string& peer, Worker& w);
  void handle_association(void* assoc, std::string peer, int socket_fd,
                          std::atomic<std::int64_t>* progress);
  void reap_finished();
  void negotiate_contexts(void* assoc, const std::string& calling_ae, const std::string& peer);

  const config::DicomIngest& cfg_;
  const Spool& spool_;
  ObjectSink& sink_;
  PrescanLimits limits_;
  std::uint64_t spool_floor_;
  metrics::GatewayMetrics* metrics_;
  NegotiationRules rules_;

  UniqueFd listen_fd_;
  UniqueFd stop_pipe_read_, stop_pipe_write_;
  int port_ = 0;
  void* network_ = nullptr;  // T_ASC_Network*
  std::atomic<bool> stopping_{false};
  std::thread listener_;
  std::mutex workers_mutex_;
  std::mutex receive_mutex_;  // DCMTK's socket hand-over is a process-wide global
  std::list<std::unique_ptr<Worker>> workers_;
  ScpStats stats_;
};

}  // namespace dirgw::ingest
