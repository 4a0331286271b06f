// The thin wrapper around DCMTK's association API for the SCU: a Network (DCMTK network and, for
// TLS, its transport layer, one per Sender) and an Association (one per round of a batch), which
// can C-STORE a spool file either byte for byte or re-encoded. Storage Commitment's N-ACTION /
// N-EVENT-REPORT will be further operations of Association over the same presentation contexts
// (plan_rounds() already takes extra abstract syntaxes). No exceptions leave this file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/file_meta.h"
#include "common/result.h"
#include "ingest/dimse_scp/commitment.h"
#include "senders/dimse/dimse_sender.h"
#include "senders/dimse/outcome.h"
#include "senders/dimse/plan.h"

struct T_ASC_Network;
struct T_ASC_Association;
class DcmTLSTransportLayer;
class DcmDataset;

namespace dirgw::senders::dimse {
class SocketTuningLayer;
}

namespace dirgw::senders::dimse {

class Network {
 public:
  // Sets up DCMTK's requestor network and the TLS layer (BCP 195 non-downgrading profile,
  // TLS 1.2 at least, our certificate and key, the trusted CA, peer and host-name checks).
  static Result<std::unique_ptr<Network>> create(const DimseOptions& options);
  ~Network();
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  T_ASC_Network* get() const { return net_; }
  bool tls() const { return tls_ != nullptr; }
  // Whether TCP_NODELAY could be set on the last connection opened (for logs and tests).
  bool last_nodelay() const;

 private:
  Network() = default;
  T_ASC_Network* net_ = nullptr;
  std::unique_ptr<DcmTLSTransportLayer> tls_;
  std::unique_ptr<SocketTuningLayer> layer_;  // wraps tls_ (or plain TCP); DCMTK uses this one
};

// The answer to one C-STORE attempt.
struct StoreAnswer {
  enum class Kind {
    kAnswered,  // a C-STORE-RSP arrived: `status` holds its Status (0000,0900)
    kNotSent,   // nothing went on the wire (the file could not be loaded): `verdict` says why;
                // the association is still usable
    kLost,      // the association failed mid-operation: `failure` says how; it is aborted
  };
  Kind kind = Kind::kLost;
  std::uint16_t status = 0;
  Verdict verdict{InstanceStatus::kRetry, ""};
  std::string failure;
  std::uint64_t bytes = 0;  // dataset bytes put on the wire
};

class Association {
 public:
  // Requests an association with `contexts`. On failure `failure` says what it means for the
  // instances that were to go over it (rejected: per classify_reject; no connection, time-out,
  // TLS handshake: retry).
  static std::unique_ptr<Association> request(Network& network, const DimseOptions& options,
                                              const std::vector<ProposedContext>& contexts,
                                              Verdict* failure);
  ~Association();  // aborts an association neither released nor aborted
  Association(const Association&) = delete;
  Association& operator=(const Association&) = delete;

  const std::vector<NegotiatedContext>& contexts() const { return contexts_; }
  bool usable() const { return assoc_ != nullptr; }

  // The file's dataset bytes, from meta.dataset_offset to the end, sent unchanged as the
  // C-STORE data set: the context's syntax must be the file's own.
  StoreAnswer store_as_is(const std::filesystem::path& file, const FileMeta& meta,
                          std::uint64_t file_size, std::uint8_t context_id);
  // The file loaded by DCMTK and written in the context's syntax (a native syntax: lossless).
  // With `decompress`, an encapsulated object is decoded first (plan.h, decodable_syntax); one
  // that cannot be, or would be larger than transcode::kMaxDecompressedBytes, is not sent
  // (permanent). In memory, in this process: dirgwd decompresses in its codec process instead
  // (DimseSender::send_decompressed) and hands this the decompressed copy.
  StoreAnswer store_converted(const std::filesystem::path& file, const FileMeta& meta,
                              std::uint8_t context_id, bool decompress = false);

  // Storage commitment (commitment_scu.cpp). The N-ACTION-RQ (action type 1) and the status of
  // its N-ACTION-RSP; an error when the association failed (it is aborted then).
  Result<std::uint16_t> n_action(std::uint8_t context_id, DcmDataset& action_information);
  // Answers N-EVENT-REPORT-RQs arriving on this association (from the destination: `receiver`
  // is told its AE title) until done() or `linger` has passed; false when the association failed.
  bool serve_reports(std::chrono::milliseconds linger, ingest::CommitmentReceiver& receiver,
                     const std::function<bool()>& done);

  // A-RELEASE; false when the peer did not confirm (the association is gone either way).
  bool release();
  void abort();

 private:
  Association(T_ASC_Association* assoc, const DimseOptions& options)
      : assoc_(assoc), opts_(options) {}
  StoreAnswer receive_store_response(std::uint16_t message_id, std::uint64_t bytes);
  StoreAnswer lost(const std::string& what);

  T_ASC_Association* assoc_ = nullptr;
  const DimseOptions& opts_;
  std::vector<NegotiatedContext> contexts_;
};

}  // namespace dirgw::senders::dimse
