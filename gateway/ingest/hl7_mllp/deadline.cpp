#include "ingest/hl7_mllp/deadline.h"

namespace dirgw::ingest {

ConnectionDeadline::ConnectionDeadline(Millis idle_timeout, Millis message_timeout,
                                       TimePoint connected_at)
    : idle_(idle_timeout), message_(message_timeout), idle_since_(connected_at) {}

void ConnectionDeadline::read(TimePoint now, bool message_open) {
  if (message_open && !message_open_) message_started_ = now;
  // Bytes that complete a message leave the connection idle from now on.
  if (!message_open) idle_since_ = now;
  message_open_ = message_open;
}

void ConnectionDeadline::answered(TimePoint now, bool message_open) {
  busy_ = false;
  // A message begun in the same read as the one answered starts its clock now.
  if (message_open) message_started_ = now;
  idle_since_ = now;
  message_open_ = message_open;
}

void ConnectionDeadline::busy() { busy_ = true; }

TimePoint ConnectionDeadline::due() const {
  if (busy_) return TimePoint::max();
  return message_open_ ? message_started_ + message_ : idle_since_ + idle_;
}

ConnectionDeadline::Expiry ConnectionDeadline::kind() const {
  return message_open_ ? Expiry::kMessage : Expiry::kIdle;
}

ConnectionDeadline::Expiry ConnectionDeadline::expired(TimePoint now) const {
  if (busy_ || now < due()) return Expiry::kNone;
  return kind();
}

}  // namespace dirgw::ingest
