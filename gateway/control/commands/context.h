// The control commands' collaborators, passed by reference: each command handler is a function
// from a request (and the caller's credentials) to a reply, and sees the world only through this
// struct, so that a unit test can run it against a real catalog in a temporary directory and
// fakes for the rest.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/audit.h"
#include "audit/export.h"
#include "catalog/audit_log.h"
#include "catalog/consent_registry.h"
#include "catalog/day_report.h"
#include "catalog/operator_actions.h"
#include "catalog/policy_ledger.h"
#include "catalog/queries.h"
#include "catalog/report_ledger.h"
#include "catalog/row_pruner.h"
#include "catalog/types.h"
#include "config/config.h"
#include "control/protocol.h"
#include "ingest/folder/folder_status.h"
#include "ingest/pull/pull_status.h"
#include "ingest/spool/spool.h"
#include "policy/consent/consent_service.h"
#include "priors/service.h"
#include "report/nightly.h"
#include "scheduler/scheduler.h"
#include "senders/transcode/transcoding_sender.h"
#include "verify/retention.h"
#include "verify/service.h"

namespace dirgw::control::commands {

// The DICOM receiver's counters, for status.
struct DicomFacts {
  int port = 0;
  std::uint64_t associations_active = 0, associations = 0, associations_rejected = 0;
  std::uint64_t stored = 0, duplicates = 0, refused = 0;
  std::uint64_t contexts_refused = 0;  // presentation contexts refused at negotiation
};

// What only the running daemon knows, read when status is asked for.
struct LiveFacts {
  std::int64_t started_at_ms = 0;
  bool stopping = false;  // SIGTERM received: listeners closed, associations finishing
  catalog::Reconciliation reconciliation;  // what start-up did
  std::optional<DicomFacts> dicom;         // none: the DICOM receiver is off
  // Watched export folders, in configuration order (issue 12).
  std::vector<ingest::folder::FolderStatus> folders;
  // HL7 reports by state (issue 12); none when ingest.hl7.reports is off.
  std::optional<std::vector<catalog::ReportCounts>> hl7_reports;
  // HL7 reports answered AE / AR since start (the report service's counts).
  std::uint64_t hl7_reports_ae = 0, hl7_reports_ar = 0;
  // PACS polled with C-FIND / C-MOVE, in configuration order (issue 12).
  std::vector<ingest::pull::PullStatus> pulls;
  // One per configured destination, in configuration order.
  std::vector<scheduler::ForwarderStatus> forwarders;
  // One per configured destination: what transcoding did since start (nullopt: off).
  std::vector<std::optional<senders::transcode::CountersSnapshot>> transcoding;
  std::vector<std::string> host_warnings;  // clock, certificates
  std::string audit_forwarder_error;       // the audit repository's last error, if any
  std::string audit_broken;                // why the audit trail did not verify at start
  int policy_failures = 0;                 // the policy stage's failed rounds in a row
  std::string policy_error;                // and why (our words and the catalog's error)
  // Verification per destination, in configuration order (issue 15; empty: not running).
  std::vector<verify::VerificationStatus> verification;
};

struct Context {
  const config::Config& config;
  catalog::Queries& queries;
  catalog::OperatorActions& operators;
  catalog::PolicyLedger& policy;  // quarantine findings
  catalog::ConsentRegistry& consent;
  catalog::AuditLog& audit_log;
  policy::ConsentService& consent_service;
  const ingest::Spool& spool;
  audit::ExportContext export_context;
  std::function<void()> work_available;     // wakes the forwarders after a change
  std::function<void(audit::Event)> audit;  // appends to the trail
  std::function<void()> audit_verified;     // the trail verified: the anchor may move on
  std::function<LiveFacts()> live;
  // dirgw purge (issue 15); null: the command answers that retention is not running.
  verify::Retention* retention = nullptr;
  // dirgw priors (issue 18); null: priors are off and the command says so.
  priors::Service* priors = nullptr;
  catalog::PriorLedger* prior_ledger = nullptr;
  // dirgw report (issue 15, docs/report.md); null: the command answers that it is not here.
  catalog::DayReportQueries* day_report = nullptr;
  // report.folder's writer (null: no folder configured): `dirgw report --write`.
  report::Nightly* nightly = nullptr;
  // report.pacs: the PACS's own count of a day beside dirgw's (null: none configured, "n/a").
  report::PacsCounts pacs_counts;
  // retention.report_days: finished studies' catalog rows (null: not pruned here).
  catalog::RowPruner* pruner = nullptr;
  // HL7 reports (issue 12): `dirgw reports`; null when ingest.hl7.reports is off.
  catalog::ReportLedger* report_ledger = nullptr;
};

// The names used in log lines and in the audit trail for whoever sent a request.
std::string actor_of(const Peer& peer);  // audit::user_actor
std::string who(const Peer& peer);       // "alice(1000)"

// Appends an audit event through ctx.audit.
void record_audit(const Context& ctx, audit::EventType type, const std::string& actor,
                  const std::string& outcome, const std::string& study_uid = "",
                  nlohmann::json detail = nlohmann::json::object(),
                  const std::string& patient_ref = "");

}  // namespace dirgw::control::commands
