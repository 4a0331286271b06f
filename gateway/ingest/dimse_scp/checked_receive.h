// A data set that DCMTK is to parse in memory (a storage commitment report, the answer to an
// N-ACTION), received bit-preserving first and pre-scanned (ingest/prescan) before DCMTK reads
// it, as a C-STORE object is. DIMSE_receiveDataSetInMemory would hand the bytes straight to
// DCMTK's recursive reader, which has no depth limit (docs/hostile-input.md).
#pragma once

#include <cstddef>

// clang-format off
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdatset.h"
#include "dcmtk/dcmnet/assoc.h"
// clang-format on

#include "ingest/dimse_scp/pdu_watch.h"  // kMaxInMemoryDataSet

namespace dirgw::ingest {

// Receives the data set that follows the command just received on `assoc`, at most `max_bytes`
// of it. On success *out is the parsed data set (the caller's to delete) and *pres_id its
// presentation context. A failure's text says why (DCMTK's words, or the pre-scan's); after a
// failure the association is in an unknown state and must be aborted.
OFCondition receive_dataset_checked(T_ASC_Association* assoc, int timeout_seconds,
                                    T_ASC_PresentationContextID* pres_id, DcmDataset** out,
                                    std::size_t max_bytes = kMaxInMemoryDataSet);

}  // namespace dirgw::ingest
