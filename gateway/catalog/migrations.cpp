#include "catalog/migrations.h"

#include <string>

#include "catalog/migrations_embedded.h"

namespace dirgw::catalog {

const std::vector<Migration>& migrations() {
  static const std::vector<Migration> kAll = embedded_migrations();
  return kAll;
}

int latest_schema_version() { return migrations().empty() ? 0 : migrations().back().version; }

Result<int> migrate(sqlite::Connection& db, int target) {
  if (target < 0) target = latest_schema_version();
  try {
    int current = 0;
    {
      // Done with before the migrations run: a statement still active keeps its tables locked
      // against DROP INDEX / DROP TABLE (SQLITE_LOCKED).
      auto st = db.prepare("PRAGMA user_version");
      st.step();
      current = static_cast<int>(st.int64(0));
    }
    if (current > latest_schema_version())
      return make_error(ErrorCode::kCatalogSchema,
                        "catalog is at schema " + std::to_string(current) + ", this build knows " +
                            std::to_string(latest_schema_version()));
    for (const auto& m : migrations()) {
      if (m.version <= current || m.version > target) continue;
      sqlite::Transaction tx(db);
      db.exec(std::string(m.sql));
      db.exec("PRAGMA user_version = " + std::to_string(m.version));
      tx.commit();
    }
    return current;
  } catch (const sqlite::SqliteError& e) {
    return make_error(ErrorCode::kCatalog, std::string("migration failed: ") + e.what());
  }
}

}  // namespace dirgw::catalog
