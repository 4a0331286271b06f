// Between the DICOM receiver and the catalog while pulls run (issue 12): an object whose calling
// AE is a PACS we are retrieving from right now, for the very study we asked for, is recorded
// with the source "pull:<name>" and counted for that pull; everything else passes unchanged.
#pragma once

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
  explicit PullSink(ObjectSink& next) : next_(next) {}

  // From now until done(): objects of `study_uid` from `calling_ae` belong to pull `source`.
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
  ObjectSink& next_;
  std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, Expected> expected_;  // (calling AE, study UID)
};

}  // namespace dirgw::ingest::pull
