#include "catalog/database.h"

#include "catalog/migrations.h"

namespace dirgw::catalog {

Error db_error(const sqlite::SqliteError& e) {
  const int primary = e.code() & 0xff;
  if (primary == SQLITE_FULL) return make_error(ErrorCode::kDiskFull, e.what());
  return make_error(ErrorCode::kCatalog, e.what());
}

Database::Database(std::unique_ptr<Connection> writer, std::unique_ptr<Connection> reader,
                   std::vector<std::string> destinations, const Clock& clock)
    : writer_(std::move(writer)),
      reader_(std::move(reader)),
      destinations_(std::move(destinations)),
      clock_(clock) {}

Result<std::unique_ptr<Database>> Database::open(const std::filesystem::path& path,
                                                 std::vector<std::string> destinations,
                                                 const Clock& clock) {
  try {
    auto writer = std::make_unique<Connection>(path.string());
    writer->exec("PRAGMA journal_mode=WAL");
    writer->exec("PRAGMA synchronous=FULL");
    writer->exec("PRAGMA foreign_keys=ON");
    auto migrated = migrate(*writer);
    if (!migrated) return migrated.error();
    auto reader = std::make_unique<Connection>(path.string(), /*read_only=*/true);
    return std::unique_ptr<Database>(
        new Database(std::move(writer), std::move(reader), std::move(destinations), clock));
  } catch (const sqlite::SqliteError& e) {
    return db_error(e);
  }
}

}  // namespace dirgw::catalog
