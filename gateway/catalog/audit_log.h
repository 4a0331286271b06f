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
  // The start-up check: the anchored entry recomputes to the anchor's hash and every entry after
  // it chains on. Reads the entries since the anchor, not the whole trail (millions of entries at
  // a large site); `dirgw audit verify` still checks everything.
  Result<audit::VerifyResult> verify_audit_from_anchor(const audit::Anchor& anchor);
  Result<std::vector<audit::Event>> audit_since(std::int64_t since_ms, int limit);
  Result<std::vector<audit::Event>> audit_after(std::int64_t after_seq, int limit);
  Result<audit::Anchor> audit_head();

 private:
  // Entries matching `where` (a condition on ?1 = bound), oldest first.
  Result<std::vector<audit::Event>> read_audit(const char* where, std::int64_t bound, int limit);
  Database& db_;
};

}  // namespace dirgw::catalog
