#include "ingest/pull/pull_sink.h"

namespace dirgw::ingest::pull {

void PullSink::expect(const std::string& calling_ae, const std::string& study_uid,
                      const std::string& source) {
  std::lock_guard lock(mutex_);
  expected_[{calling_ae, study_uid}] = Expected{source, {}};
}

PullTally PullSink::done(const std::string& calling_ae, const std::string& study_uid) {
  std::lock_guard lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  std::erase_if(finished_, [&](const auto& f) { return f.second.until <= now; });
  auto it = expected_.find({calling_ae, study_uid});
  if (it == expected_.end()) return {};
  PullTally t = it->second.tally;
  finished_[it->first] = Finished{it->second.source, now + late_};
  expected_.erase(it);
  return t;
}

Result<SinkOutcome> PullSink::object_received(const ReceivedObject& object) {
  std::string source;
  {
    std::lock_guard lock(mutex_);
    const Key key{object.calling_ae, object.scan.study_uid};
    if (auto it = expected_.find(key); it != expected_.end()) {
      source = it->second.source;
    } else if (auto f = finished_.find(key);
               f != finished_.end() && f->second.until > std::chrono::steady_clock::now()) {
      source = f->second.source;  // after the final answer: still the pull's object
    }
  }
  if (source.empty()) return next_.object_received(object);
  ReceivedObject tagged = object;
  tagged.source = "pull:" + source;
  auto r = next_.object_received(tagged);
  std::lock_guard lock(mutex_);
  auto it = expected_.find({object.calling_ae, object.scan.study_uid});
  if (r && it != expected_.end())
    ++(*r == SinkOutcome::kStored ? it->second.tally.stored : it->second.tally.duplicates);
  return r;
}

void PullSink::refused(const DoorRefusal& refusal) {
  {
    std::lock_guard lock(mutex_);
    // A refusal names the calling AE only (the study may be unknown): counted for every pull
    // from that PACS in progress, of which there is one at a time per source.
    for (auto& [key, e] : expected_)
      if (key.first == refusal.calling_ae) ++e.tally.refused;
  }
  next_.refused(refusal);
}

}  // namespace dirgw::ingest::pull
