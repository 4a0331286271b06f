// Queries::verification(): the read side of verification and retention (issue 15), apart from
// queries.cpp so that the feature's SQL sits together.
#include "catalog/queries.h"

namespace dirgw::catalog {

Result<VerificationCounts> Queries::verification() {
  return db_.read([&](Connection& db) -> Result<VerificationCounts> {
    VerificationCounts out;
    for (const auto& name : db_.destinations()) {
      VerificationCounts::Destination d;
      d.name = name;
      // Counters (schema 27) and partial indexes: rows read grow with what is shown.
      auto st = db.prepare(
          "SELECT coalesce(sum(CASE WHEN state = 'verified' THEN deliveries END), 0), "
          "coalesce(sum(CASE WHEN state = 'sent' THEN deliveries END), 0) "
          "FROM delivery_counts WHERE destination = ?1");
      st.bind(1, name);
      if (st.step()) {
        d.verified = st.int64(0);
        d.awaiting = st.int64(1);
      }
      auto resent = db.prepare(
          "SELECT count(*) FROM deliveries WHERE destination = ?1 "
          "AND resends > 0");
      resent.bind(1, name);
      resent.step();
      d.resent = resent.int64(0);
      auto lost = db.prepare(
          "SELECT count(*) FROM deliveries WHERE destination = ?1 AND state = 'failed' "
          "AND verify_attempts > 0");
      lost.bind(1, name);
      lost.step();
      d.lost = lost.int64(0);
      auto err = db.prepare(
          "SELECT count(*), coalesce(max(verify_error), '') FROM study_destinations WHERE "
          "destination = ?1 AND verify_error != ''");
      err.bind(1, name);
      if (err.step()) {
        d.failing_studies = err.int64(0);
        d.last_check_error = err.text(1);
      }
      out.destinations.push_back(std::move(d));
    }
    auto st = db.prepare(
        "SELECT coalesce(sum(CASE WHEN kind = 'purged' THEN objects END), 0), "
        "coalesce(sum(CASE WHEN kind = 'purged' THEN bytes END), 0), "
        "coalesce(sum(CASE WHEN kind = 'verified' THEN objects END), 0), "
        "coalesce(sum(CASE WHEN kind = 'verified' THEN bytes END), 0) FROM object_counts");
    if (st.step()) {
      out.purged_objects = st.int64(0);
      out.purged_bytes = st.int64(1);
      out.verified_kept_objects = st.int64(2);
      out.verified_kept_bytes = st.int64(3);
    }
    return out;
  });
}

}  // namespace dirgw::catalog
