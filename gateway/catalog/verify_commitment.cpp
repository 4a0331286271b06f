// The storage commitment part of VerifyLedger (schema 23, docs/verification.md): the
// transactions dirgw issued, so that a report is matched to one of them and one never answered
// is seen. What a report says about each instance goes through record_verification, as QIDO's
// findings do.
#include "catalog/internal.h"
#include "catalog/verify_ledger.h"

namespace dirgw::catalog {

Result<void> VerifyLedger::record_commitment_request(const CommitmentTransaction& t, int instances,
                                                     std::int64_t requested_at) {
  return db_.write([&](Connection& db) -> Result<void> {
    db.prepare(
          "INSERT INTO commitment_transactions(transaction_uid, destination, study_id, "
          "instances, requested_at, deadline) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        .bind(1, t.transaction_uid)
        .bind(2, t.destination)
        .bind(3, t.study_id)
        .bind(4, static_cast<std::int64_t>(instances))
        .bind(5, requested_at)
        .bind(6, t.deadline)
        .run();
    db.prepare(
          "UPDATE deliveries SET verify_next_at = ?3 WHERE study_id = ?1 AND destination = ?2 "
          "AND state = 'sent'")
        .bind(1, t.study_id)
        .bind(2, t.destination)
        .bind(3, t.deadline)
        .run();
    return {};
  });
}

Result<std::optional<CommitmentTransaction>> VerifyLedger::commitment_transaction(
    const std::string& uid) {
  return db_.locked([&](Connection& db) -> Result<std::optional<CommitmentTransaction>> {
    auto st = db.prepare(
        "SELECT destination, state, study_id, deadline FROM commitment_transactions WHERE "
        "transaction_uid = ?1");
    st.bind(1, uid);
    if (!st.step()) return std::optional<CommitmentTransaction>();
    return std::optional<CommitmentTransaction>(
        CommitmentTransaction{uid, st.text(0), st.text(1), st.int64(2), st.int64(3)});
  });
}

Result<void> VerifyLedger::record_commitment_answer(const std::string& uid,
                                                    const std::string& state, int committed,
                                                    int failed) {
  const std::int64_t now = db_.now_ms();
  return db_.write([&](Connection& db) -> Result<void> {
    db.prepare(
          "UPDATE commitment_transactions SET state = ?2, answered_at = ?3, committed = ?4, "
          "failed = ?5 WHERE transaction_uid = ?1")
        .bind(1, uid)
        .bind(2, state)
        .bind(3, now)
        .bind(4, static_cast<std::int64_t>(committed))
        .bind(5, static_cast<std::int64_t>(failed))
        .run();
    return {};
  });
}

Result<int> VerifyLedger::expire_commitments(const std::string& destination, std::int64_t study_id,
                                             std::int64_t now) {
  return db_.write([&](Connection& db) -> Result<int> {
    auto st = db.prepare(
        "UPDATE commitment_transactions SET state = 'expired' WHERE study_id = ?1 AND "
        "destination = ?2 AND state = 'pending' AND deadline <= ?3");
    st.bind(1, study_id).bind(2, destination).bind(3, now).run();
    return db.changes();
  });
}

}  // namespace dirgw::catalog
