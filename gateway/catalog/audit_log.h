// The catalog's audit part: the hash-chained trail (append, verify, read back, head).
#pragma once

#include "catalog/database.h"
#include "catalog/types.h"

namespace dirgw::catalog {

class AuditLog {
 public:
  explicit AuditLog(Database& db) : db_(db) {}

  // Appends one entry, sealed onto the chain in its own transaction.
  Result<void> audit(audit::Event event);
  // Streams the trail through a verifier (on the read connection).
  Result<audit::VerifyResult> verify_audit(const std::optional<audit::Anchor>& anchor);
  Result<std::vector<audit::Event>> audit_since(std::int64_t since_ms, int limit);
  Result<std::vector<audit::Event>> audit_after(std::int64_t after_seq, int limit);
  Result<audit::Anchor> audit_head();

 private:
  // Entries matching `where` (a condition on ?1 = bound), oldest first.
  Result<std::vector<audit::Event>> read_audit(const char* where, std::int64_t bound, int limit);
  Database& db_;
};

}  // namespace dirgw::catalog
