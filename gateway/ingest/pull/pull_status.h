// What a pull source reports for status and `dirgw sources` (kept apart from the poller so that
// the control commands need nothing else of it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dirgw::ingest::pull {

struct IncompleteStudy {
  std::string study_uid;
  std::int64_t held = 0, reported = -1;  // -1: the PACS did not say
  int pulls = 0;
  std::int64_t next_try_at = 0;
  std::string last_error;
};

struct PullStatus {
  std::string name, pacs;                                           // "OLDPACS@10.0.0.9:104"
  std::int64_t last_poll_at = 0, last_ok_at = 0, next_poll_at = 0;  // epoch ms, 0: never
  std::int64_t studies_complete = 0, studies_incomplete = 0;
  std::int64_t studies_gone = 0;     // no longer on the PACS while incomplete: not asked for again
  std::int64_t studies_skipped = 0;  // none of their modalities in the source's filter
  std::uint64_t studies_pulled = 0;  // retrieves asked for since start
  std::uint64_t objects_stored = 0, objects_duplicate = 0, rejected = 0;
  std::string last_error;
  std::vector<IncompleteStudy> incomplete;  // the oldest few
};

}  // namespace dirgw::ingest::pull
