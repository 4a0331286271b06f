#include "catalog/order_book.h"

namespace dirgw::catalog {

Result<int> OrderBook::record_order(const OrderRecord& o) {
  const std::int64_t now = db_.now_ms();
  return db_.write([&](Connection& db) -> Result<int> {
    db.prepare(
          "INSERT INTO hl7_orders(accession, stat, priority, control_id, source, received_at) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(accession) DO UPDATE SET "
          "stat = max(stat, ?2), priority = ?3, control_id = ?4, source = ?5, received_at = ?6")
        .bind(1, o.accession)
        .bind(2, o.stat ? 1 : 0)
        .bind(3, o.priority)
        .bind(4, o.control_id)
        .bind(5, o.source)
        .bind(6, now)
        .run();
    if (!o.stat) return 0;
    db.prepare("UPDATE studies SET priority = 1 WHERE accession = ?1 AND priority < 1")
        .bind(1, o.accession)
        .run();
    return db.changes();
  });
}

Result<bool> OrderBook::link_study(std::int64_t study_id, const std::string& accession) {
  return db_.write([&](Connection& db) -> Result<bool> {
    db.prepare("UPDATE studies SET accession = ?2 WHERE id = ?1")
        .bind(1, study_id)
        .bind(2, accession)
        .run();
    auto st = db.prepare("SELECT stat FROM hl7_orders WHERE accession = ?1");
    st.bind(1, accession);
    const bool stat = st.step() && st.int64(0) != 0;
    if (stat)
      db.prepare("UPDATE studies SET priority = 1 WHERE id = ?1 AND priority < 1")
          .bind(1, study_id)
          .run();
    return stat;
  });
}

}  // namespace dirgw::catalog
