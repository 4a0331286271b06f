// When an HL7 connection must be closed, whatever the peer does: a connection with no message
// begun may stay idle for idle_timeout; a message begun must be complete within message_timeout
// of its first byte. Both are bounded by total time, not per read, so a peer that trickles a
// byte at a time (slow loris) is closed as surely as a silent one. Pure: times come in.
#pragma once

#include "common/clock.h"

namespace dirgw::ingest {

class ConnectionDeadline {
 public:
  enum class Expiry { kNone, kIdle, kMessage };

  ConnectionDeadline(Millis idle_timeout, Millis message_timeout, TimePoint connected_at);

  // After bytes were read and fed to the decoder: `message_open` says whether a message is now
  // begun and unfinished (the decoder is not idle). The first byte of a message starts its
  // clock; further bytes of the same message do not move it.
  void read(TimePoint now, bool message_open);
  // Every message read so far has been answered: the connection is idle again from `now`, or,
  // when `message_open` (the same read began another), that message's clock starts now.
  void answered(TimePoint now, bool message_open);
  // A message is being applied and answered: our time, not the peer's; no deadline runs.
  void busy();

  // When the connection is due to be closed (TimePoint::max() while busy).
  TimePoint due() const;
  Expiry expired(TimePoint now) const;
  Expiry kind() const;

 private:
  Millis idle_, message_;
  TimePoint idle_since_;
  TimePoint message_started_{};
  bool message_open_ = false;
  bool busy_ = false;
};

}  // namespace dirgw::ingest
