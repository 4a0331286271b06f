// When a file in a watched folder is complete enough to take: its size, modification time and
// inode have not changed for the folder's settle time. Pure (time comes in as an argument), so
// the rule is tested on simulated time. inotify's IN_CLOSE_WRITE only wakes the scan: writers
// that close and reopen between pieces exist, so a close alone never makes a file ready.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "common/clock.h"

namespace dirgw::ingest::folder {

// What is compared between two looks at an entry (for a media tree: summed over its files).
struct FileStamp {
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::uint64_t ino = 0;
  std::uint64_t files = 1;
  bool operator==(const FileStamp&) const = default;
};

class SettleTracker {
 public:
  explicit SettleTracker(Millis settle) : settle_(settle) {}

  // Records a look at `name`; true when it is ready to take. A stamp seen for the first time is
  // ready at once only if its last change is already older than the settle time (a file left
  // there while the daemon was down); any change restarts the wait.
  bool observe(const std::string& name, const FileStamp& stamp, TimePoint now);
  // Drops what is known of entries not in `present` (taken, moved away, deleted).
  void keep_only(const std::set<std::string>& present);
  void forget(const std::string& name) { seen_.erase(name); }
  // Watched from now, as if it had just changed: due a settle period from now (a unit to be
  // read again however old its modification time is).
  void restart(const std::string& name, const FileStamp& stamp, TimePoint now);
  // The earliest time an entry being watched could become ready (none: nothing is waiting).
  std::optional<TimePoint> next_due() const;

 private:
  struct Seen {
    FileStamp stamp;
    TimePoint since;  // when this stamp was first seen (at the first look: its mtime, if older)
  };
  Millis settle_;
  std::map<std::string, Seen> seen_;
};

}  // namespace dirgw::ingest::folder
