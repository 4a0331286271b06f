// Retention (issue 15, docs/verification.md): spool files are removed only once every
// destination has verified them, never an unverified object:
//   age       retention.keep_after_verified after the last destination verified the object;
//   pressure  below retention.spool_floor, verified objects go at once, oldest verification
//             first, until the floor is met again — called by the receivers before they refuse
//             an object (make_room), and on every round.
// The catalog records the purge first (objects.purged_at, studies PURGED, audit), then the files
// go: a crash between the two leaves a file the start-up reconciliation adopts again, never a
// row without its file that something still needs.
#pragma once

#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "catalog/verify_ledger.h"
#include "common/clock.h"
#include "config/config.h"
#include "ingest/spool/spool.h"
#include "verify/metrics.h"

namespace dirgw::verify {

class Retention {
 public:
  // Free bytes on the spool's file system; none when it cannot be read.
  using FreeBytes = std::function<std::optional<std::uint64_t>()>;
  Retention(const config::Retention& config, catalog::VerifyLedger& ledger,
            const ingest::Spool& spool, const Clock& clock, RetentionMetrics* metrics = nullptr,
            FreeBytes free = {});

  struct StepResult {
    std::int64_t objects = 0, bytes = 0;  // removed this round (age and pressure)
    std::optional<TimePoint> next;        // when the next object comes of age
  };
  StepResult step();
  // Below the floor: removes verified objects, oldest first, until it is met. True when free
  // space is at or above the floor afterwards. Thread-safe: every receiver may call it.
  bool make_room();

  // What would go now (dirgw purge --dry-run): objects past keep_after_verified, and, below the
  // floor, the verified objects that pressure would remove besides.
  struct Plan {
    std::vector<catalog::PurgeCandidate> by_age, by_pressure;
    std::optional<std::uint64_t> free;
    std::uint64_t floor = 0;
  };
  Result<Plan> plan();

  // What an object holds apart from its bytes ("" when unreadable), recorded as each object
  // goes by age (objects.content_key), so that the same instance received again later in other
  // bytes is still a duplicate (ingest/content_key.h). Not for a purge under disk pressure,
  // which a receiver waits on. Unset: nothing recorded.
  using ContentKey = std::function<std::string(const std::filesystem::path&)>;
  void set_content_key(ContentKey key) { content_key_ = std::move(key); }

 private:
  // Records and removes `objects`; returns the bytes and count actually removed.
  std::pair<std::int64_t, std::int64_t> purge(std::vector<catalog::PurgeCandidate> objects,
                                              const std::string& reason);
  std::int64_t purge_pressure(StepResult* r);
  bool below_floor() const;

  const config::Retention& config_;
  catalog::VerifyLedger& ledger_;
  const ingest::Spool& spool_;
  const Clock& clock_;
  RetentionMetrics* metrics_;
  FreeBytes free_;
  ContentKey content_key_;
  std::mutex mutex_;  // one purge at a time
};

}  // namespace dirgw::verify
