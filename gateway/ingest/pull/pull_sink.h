// Between the DICOM receiver and the catalog while pulls run (issue 12): an object whose calling
// AE is a PACS we are retrieving from right now, for the very study we asked for, is recorded
// with the source "pull:<name>" and counted for that pull; everything else passes unchanged.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "ingest/dimse_scp/scp.h"

namespace dirgw::ingest::pull {

struct PullTally {
  std::uint64_t stored = 0, duplicates = 0, refused = 0;
};

class PullSink final : public ObjectSink {
 public:
  // `late`: how long after a retrieve's final answer an object of that study from that PACS is
  // still the pull's (a PACS may answer the C-MOVE before its last sub-association's objects
  // have all arrived).
  explicit PullSink(ObjectSink& next,
                    std::chrono::steady_clock::duration late = std::chrono::minutes(5))
      : next_(next), late_(late) {}

  // From now until done(): objects of `study_uid` from `calling_ae` belong to pull `source`
  // (and for `late` after, recorded as the pull's but no longer counted in its tally).
  void expect(const std::string& calling_ae, const std::string& study_uid,
              const std::string& source);
  PullTally done(const std::string& calling_ae, const std::string& study_uid);

  Result<SinkOutcome> object_received(const ReceivedObject& object) override;
  using ObjectSink::refused;
  void refused(const DoorRefusal& refusal) override;

 private:
  struct Expected {
    std::string source;
    PullTally tally;
  };
  using Key = std::pair<std::string, std::string>;  // (calling AE, study UID)
  struct Finished {
    std::string source;
    std::chrono::steady_clock::time_point until;
  };
  ObjectSink& next_;
  std::chrono::steady_clock::duration late_;
  std::mutex mutex_;
  std::map<Key, Expected> expected_;
  std::map<Key, Finished> finished_;  // retrieves answered less than `late_` ago
};

}  // namespace dirgw::ingest::pull
