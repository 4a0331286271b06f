// The catalog's read side for people: status, studies, one study in detail, quarantine list.
// Runs on the read-only connection: never delays an acknowledgement.
#pragma once

#include "catalog/database.h"
#include "catalog/types.h"

namespace dirgw::catalog {

class Queries {
 public:
  explicit Queries(Database& db) : db_(db) {}

  int schema_version();
  Result<Status> status();
  Result<std::vector<StudySummary>> studies(const std::string& state_filter, int limit,
                                            const std::string& destination_filter = "");
  Result<std::optional<StudyDetail>> study(const std::string& study_uid);
  Result<std::vector<StudySummary>> quarantined(int limit);
  // Verified, awaiting, re-sent, lost per destination; purged and kept (verify_queries.cpp).
  Result<VerificationCounts> verification();

 private:
  Database& db_;
};

}  // namespace dirgw::catalog
