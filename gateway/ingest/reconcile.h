// Start-up reconciliation of spool and catalog, run before any listener opens: half-written
// temporaries are removed, complete objects without a row are catalogued (their sender was never
// told success, but will send again and must find them), objects that do not parse are moved to
// quarantine, rows whose file is gone are flagged, and deliveries that were on the wire when the
// daemon stopped are recovered. Files are touched only through the Spool.
#pragma once

#include <filesystem>

#include "catalog/delivery_ledger.h"
#include "catalog/ingest_ledger.h"
#include "catalog/types.h"
#include "common/clock.h"
#include "common/result.h"
#include "ingest/prescan/prescan.h"
#include "ingest/spool/spool.h"

namespace dirgw::ingest {

struct ReconcileOptions {
  PrescanLimits limits;
  std::filesystem::path unparseable_dir;  // where objects that do not parse go
};

// Returns what was done; the summary is also recorded in the catalog (for status).
Result<catalog::Reconciliation> reconcile(const Spool& spool, catalog::IngestLedger& ingest,
                                          catalog::DeliveryLedger& delivery,
                                          const ReconcileOptions& options, const Clock& clock);

}  // namespace dirgw::ingest
