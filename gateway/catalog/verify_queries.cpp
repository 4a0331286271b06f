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
      auto st = db.prepare(
          "SELECT coalesce(sum(state = 'verified'), 0), coalesce(sum(state = 'sent'), 0), "
          "coalesce(sum(resends > 0), 0), coalesce(sum(state = 'failed' AND verify_attempts > "
          "0), 0) FROM deliveries WHERE destination = ?1");
      st.bind(1, name);
      if (st.step()) {
        d.verified = st.int64(0);
        d.awaiting = st.int64(1);
        d.resent = st.int64(2);
        d.lost = st.int64(3);
      }
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
        "SELECT coalesce(sum(purged_at IS NOT NULL), 0), coalesce(sum(CASE WHEN purged_at IS NOT "
        "NULL THEN size END), 0), coalesce(sum(purged_at IS NULL AND verified_at IS NOT NULL), "
        "0), coalesce(sum(CASE WHEN purged_at IS NULL AND verified_at IS NOT NULL THEN size END), "
        "0) FROM objects");
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
