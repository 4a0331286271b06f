// The catalog: SQLite (WAL) as the system of record for objects, studies, instances and their
// delivery per destination; the only module with SQL in it. Every state change is one
// transaction, taken through the database layer (database.h).
//
// It is split by concern into parts, and each stage holds only the part it uses:
//   ingest     IngestLedger     the DICOM receiver, readiness, start-up reconciliation
//   delivery   DeliveryLedger   the forwarders (due items, last check, answers, notification
//   outbox) policy     PolicyLedger     the policy stage (work, decisions, findings) consent
//   ConsentRegistry  consent changes (CLI, CSV, HL7) and the MRN -> health number table queries
//   Queries          status, studies, study detail (read-only connection) operators OperatorActions
//   retry / hold / release, quarantine release / delete audit      AuditLog         the
//   hash-chained audit trail; orders OrderBook HL7 order priorities by accession number
// Shared rules (life-cycle transitions, withdrawal, audit append) live in internal.h.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "catalog/audit_log.h"
#include "catalog/consent_registry.h"
#include "catalog/database.h"
#include "catalog/day_report.h"
#include "catalog/delivery_ledger.h"
#include "catalog/ingest_ledger.h"
#include "catalog/operator_actions.h"
#include "catalog/order_book.h"
#include "catalog/policy_ledger.h"
#include "catalog/queries.h"
#include "catalog/row_pruner.h"
#include "catalog/types.h"
#include "catalog/verify_ledger.h"

namespace dirgw::catalog {

class Catalog {
 private:
  std::unique_ptr<Database> db_;  // first: the parts below refer to it

 public:
  // Opens (creating if needed) and migrates the catalog; WAL, synchronous=FULL.
  static Result<std::unique_ptr<Catalog>> open(const std::filesystem::path& path,
                                               std::vector<std::string> destinations,
                                               const Clock& clock);
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;

  Database& db() { return *db_; }

  IngestLedger ingest;
  DeliveryLedger delivery;
  PolicyLedger policy;
  ConsentRegistry consent;
  Queries queries;
  OperatorActions operators;
  AuditLog audit;
  OrderBook orders;             // HL7 order priorities by accession number (schema 17)
  VerifyLedger verify;          // verification and retention (issue 15)
  DayReportQueries day_report;  // the daily reconciliation report's counts (issue 15)
  RowPruner pruner;             // finished studies' rows after retention.report_days (issue 15)

 private:
  explicit Catalog(std::unique_ptr<Database> db);
};

}  // namespace dirgw::catalog
