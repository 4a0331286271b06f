#include "catalog/catalog.h"

namespace dirgw::catalog {

Catalog::Catalog(std::unique_ptr<Database> db)
    : db_(std::move(db)),
      ingest(*db_),
      delivery(*db_),
      policy(*db_),
      consent(*db_),
      queries(*db_),
      operators(*db_),
      audit(*db_),
      orders(*db_),
      verify(*db_),
      day_report(*db_),
      pruner(*db_) {}

Result<std::unique_ptr<Catalog>> Catalog::open(const std::filesystem::path& path,
                                               std::vector<std::string> destinations,
                                               const Clock& clock) {
  auto db = Database::open(path, std::move(destinations), clock);
  if (!db) return db.error();
  return std::unique_ptr<Catalog>(new Catalog(std::move(db).value()));
}

}  // namespace dirgw::catalog
