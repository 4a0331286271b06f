// Storage commitment for `type: dimse` destinations with `verify: storage-commitment` (issue 15,
// docs/verification.md). The verifier asks (Committer: one N-ACTION-RQ per study, its
// Transaction UID recorded first in the catalog); the answer, an N-EVENT-REPORT, arrives on the
// same association or on one the destination opens to dirgw's SCP, and both hand it to the
// CommitmentInbox. The inbox accepts only a transaction dirgw issued, from the AE title of the
// destination it was issued to, and records what it says through the same ledger path as
// QIDO-RS: committed -> verified; failed -> sent again (verify.max_resends, then quarantined).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "catalog/verify_ledger.h"
#include "config/config.h"
#include "ingest/dimse_scp/commitment.h"
#include "senders/dimse/dimse_sender.h"
#include "verify/metrics.h"

namespace dirgw::verify {

// Asks a destination to commit instances (the real one: senders/dimse/commitment_scu).
class Committer {
 public:
  virtual ~Committer() = default;
  // Success: the destination took the request. answered(): the report has come (the committer
  // may stop waiting for it on its own association).
  virtual Result<void> request(const std::string& transaction_uid,
                               const std::vector<ingest::CommitRef>& refs,
                               const std::function<bool()>& answered) = 0;
};

// linger: how long the association stays open for a report on it.
std::unique_ptr<Committer> make_dimse_committer(senders::DimseOptions options,
                                                ingest::CommitmentReceiver& receiver,
                                                std::chrono::milliseconds linger);

// Pure: the findings a report gives for the instances still `sent` (committed with the same SOP
// Class: listed; with another: mismatch; failed: missing). Instances the report does not name
// get no finding (they are asked about again).
std::vector<catalog::VerifyFinding> commitment_findings(
    const std::vector<catalog::VerifyInstance>& sent, const ingest::CommitmentReport& report);

class CommitmentInbox : public ingest::CommitmentReceiver {
 public:
  // on_requeued: instances were queued again (the daemon wakes the forwarders).
  CommitmentInbox(const config::Config& config, catalog::VerifyLedger& ledger,
                  VerifyMetrics* metrics, std::function<void()> on_requeued);
  std::uint16_t event_report(const std::string& calling_ae, const std::string& peer,
                             const ingest::CommitmentReport& report) override;
  // Whether the transaction has been answered (or is unknown).
  bool answered(const std::string& transaction_uid);

 private:
  const config::Destination* destination(const std::string& name) const;

  const config::Config& config_;
  catalog::VerifyLedger& ledger_;
  VerifyMetrics* metrics_;
  std::function<void()> on_requeued_;
};

// A new Transaction UID ("2.25." and 128 random bits).
std::string new_transaction_uid();

}  // namespace dirgw::verify
