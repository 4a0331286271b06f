// What a watched folder reports for status, `dirgw sources` and metrics (kept apart from the
// watcher so that the control commands need nothing else of it).
#pragma once

#include <cstdint>
#include <string>

namespace dirgw::ingest::folder {

struct FolderStatus {
  std::string name, path;
  std::int64_t last_scan_at = 0, next_scan_at = 0;  // epoch ms, 0: never
  std::uint64_t units_taken = 0, objects_stored = 0, objects_duplicate = 0, rejected = 0;
  std::string last_error;  // our side (spool, catalog, the folder itself); empty when fine
};

}  // namespace dirgw::ingest::folder
