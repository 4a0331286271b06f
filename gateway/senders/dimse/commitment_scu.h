// Storage commitment, the SCU side (PS3.4 Annex J, docs/verification.md): one association to
// the destination with the Storage Commitment Push Model SOP Class, the N-ACTION-RQ for a
// transaction, then a short wait for the N-EVENT-REPORT on the same association (a destination
// may also send it later on an association of its own, to dirgw's SCP). What the report means is
// decided by the receiver; this file only carries the messages.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "common/result.h"
#include "ingest/dimse_scp/commitment.h"
#include "senders/dimse/dimse_sender.h"

namespace dirgw::senders {

// Success: the destination took the request (N-ACTION-RSP status 0000); its report may already
// have been handed to `receiver`. An error says why it could not be asked (no association, the
// request refused: the DIMSE status in hex).
Result<void> request_storage_commitment(const DimseOptions& options,
                                        const std::string& transaction_uid,
                                        const std::vector<ingest::CommitRef>& refs,
                                        ingest::CommitmentReceiver& receiver,
                                        std::chrono::milliseconds linger,
                                        const std::function<bool()>& answered);

}  // namespace dirgw::senders
