// The daemon's side of the audit trail: appends events (and wakes the syslog forwarder), keeps
// the anchor file beside the catalog up to date, and checks the trail and the configuration at
// start. The trail itself is the catalog's AuditLog; the anchor and the events are audit/.
#pragma once

#include <string>

#include "audit/audit.h"
#include "audit/export.h"
#include "audit/forwarder.h"
#include "catalog/audit_log.h"
#include "config/config.h"

namespace dirgw::daemon {

// Who we are in exported and forwarded audit messages.
audit::ExportContext export_context(const config::Config& config);

class AuditTrail {
 public:
  AuditTrail(const config::Config& config, catalog::AuditLog& log) : config_(config), log_(log) {}

  // Events recorded after this also wake the forwarder (may be null).
  void set_forwarder(audit::Forwarder* forwarder) { forwarder_ = forwarder; }

  // Appends; a failure is logged (the action it describes has happened already).
  void record(audit::Event event);
  void record(audit::EventType type, std::string outcome = std::string(audit::kSuccess),
              nlohmann::json detail = nlohmann::json::object());

  // Writes the newest seq and hash to audit.anchor, unless the trail was found broken.
  void write_anchor();
  // At start, before anything is appended: verifies the trail against its anchor, records a
  // configuration that differs from the one of the previous start, and the start itself.
  void check_at_start();
  // Why the trail did not verify at start ("" when it did).
  const std::string& broken() const { return broken_; }

 private:
  const config::Config& config_;
  catalog::AuditLog& log_;
  audit::Forwarder* forwarder_ = nullptr;
  std::string broken_;
};

}  // namespace dirgw::daemon
