// The DIMSE destination: a C-STORE SCU (PS3.4 Annex B, PS3.7 9.1.1) that sends a batch of spooled
// Part-10 files to one DICOM node over one association, optionally over TLS (PS3.15 B.9, BCP 195
// non-downgrading profile). The batch's presentation contexts are planned from the files' own
// meta headers (plan.h), each C-STORE status is mapped to an InstanceStatus (outcome.h), and
// association failures are mapped for the whole batch. See docs/dimse-sender.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "senders/sender.h"
#include "senders/transcode/codec_worker.h"

namespace dirgw::senders {

struct DimseTlsOptions {
  bool enabled = false;
  std::filesystem::path ca_file;      // PEM; the CA(s) that sign the destination's certificate
  std::filesystem::path client_cert;  // PEM; empty: no client certificate is offered
  std::filesystem::path client_key;   // PEM, unencrypted; must match client_cert
  bool verify_peer = true;            // false: any server certificate is accepted (tests only)
  // The server certificate must name `host` (DNS name or IP address in subjectAltName). DICOM
  // nodes often carry certificates without their host name: turn off per destination then.
  bool verify_hostname = true;
};

struct DimseOptions {
  std::string host;
  std::uint16_t port = 104;
  std::string called_ae;             // the destination's AE title
  std::string calling_ae = "DIRGW";  // ours, as the destination knows us
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds acse_timeout{30000};    // association request / release answers
  std::chrono::milliseconds dimse_timeout{120000};  // each C-STORE response
  std::uint32_t max_pdu = 131072;                   // what we accept; 4096..131072 (DCMTK's limits)
  DimseTlsOptions tls;
  // Compressed objects the destination refuses in their own syntax (plan.h, Decompress).
  enum class Decompress { kNever, kLossless, kAlways };
  Decompress decompress = Decompress::kAlways;
  // The codec process that decompresses (transcode/codec_worker.h) and where it writes the
  // decompressed copy (the spool's tmp/). No program: decoded in this process, in memory.
  transcode::CodecSettings codec;
  std::filesystem::path scratch_dir;
  // Byte budgets every C-STORE of this sender draws from (its destination's cap and the
  // gateway-wide one), as for STOW-RS: paced in DCMTK's store progress callback, which runs
  // after each PDU of the data set is written to the socket (docs/scheduling.md).
  std::vector<std::shared_ptr<scheduler::TokenBucket>> bandwidth_buckets;
};

// Never fails: problems with the options (unreadable TLS files, say) surface in the Outcome of
// the first send(), instance by instance, with a reason that names them.
std::unique_ptr<Sender> make_dimse_sender(const DimseOptions& options);

}  // namespace dirgw::senders
