// Numbered schema migrations (migrations/NNNN_*.sql), embedded at build time.
#pragma once

#include <string_view>
#include <vector>

#include "catalog/sqlite/sqlite.h"
#include "common/result.h"

namespace dirgw::catalog {

struct Migration {
  int version;
  std::string_view name;
  std::string_view sql;
};

// All migrations known to this build, ascending.
const std::vector<Migration>& migrations();
int latest_schema_version();

// Brings the database to `target` (default: latest), one transaction per step. Refuses a
// database newer than this build. Returns the version it started from.
Result<int> migrate(sqlite::Connection& db, int target = -1);

}  // namespace dirgw::catalog
