#include "ingest/folder/settle.h"

#include <algorithm>

namespace dirgw::ingest::folder {

bool SettleTracker::observe(const std::string& name, const FileStamp& stamp, TimePoint now) {
  auto it = seen_.find(name);
  if (it == seen_.end()) {
    const TimePoint changed{
        std::chrono::duration_cast<TimePoint::duration>(std::chrono::nanoseconds(stamp.mtime_ns))};
    // A modification time in the future (clock skew on a network share) counts as now.
    it = seen_.emplace(name, Seen{stamp, std::min(now, changed)}).first;
  } else if (!(it->second.stamp == stamp)) {
    it->second = {stamp, now};  // seen changing now, whatever its mtime says
  }
  return now - it->second.since >= settle_;
}

void SettleTracker::restart(const std::string& name, const FileStamp& stamp, TimePoint now) {
  seen_[name] = Seen{stamp, now};
}

void SettleTracker::keep_only(const std::set<std::string>& present) {
  for (auto it = seen_.begin(); it != seen_.end();) {
    if (present.count(it->first) == 0)
      it = seen_.erase(it);
    else
      ++it;
  }
}

std::optional<TimePoint> SettleTracker::next_due() const {
  std::optional<TimePoint> due;
  for (const auto& [name, s] : seen_) {
    const TimePoint t = s.since + settle_;
    if (!due || t < *due) due = t;
  }
  return due;
}

}  // namespace dirgw::ingest::folder
