#include "ingest/hl7_mllp/mllp.h"

namespace dirgw::hl7 {

std::string_view describe(MllpError error) {
  switch (error) {
    case MllpError::kDataBeforeStart:
      return "data outside an MLLP frame";
    case MllpError::kUnexpectedStart:
      return "start block inside an MLLP frame";
    case MllpError::kTooLarge:
      return "message larger than allowed";
  }
  return "MLLP framing error";
}

MllpDecoder::MllpDecoder(std::size_t max_message_bytes) : max_(max_message_bytes) {}

void MllpDecoder::start_frame() {
  buffer_.clear();
  state_ = State::kMessage;
}

void MllpDecoder::error(MllpError e, std::size_t bytes, std::vector<MllpEvent>& out) {
  MllpEvent ev;
  ev.kind = MllpEvent::Kind::kError;
  ev.error = e;
  ev.bytes = bytes;
  out.push_back(std::move(ev));
}

// Long (~90 lines) because it is the framing state machine, one case per state: split up, the
// transitions would no longer read as one table.
void MllpDecoder::feed(std::string_view bytes, std::vector<MllpEvent>& out) {
  std::size_t i = 0;
  while (i < bytes.size()) {
    const char c = bytes[i];
    switch (state_) {
      case State::kIdle:
        if (c == kMllpStart) {
          start_frame();
        } else {
          state_ = State::kJunk;
          junk_ = 1;
        }
        ++i;
        break;
      case State::kJunk:
        if (c == kMllpStart) {
          if (junk_ > 0) error(MllpError::kDataBeforeStart, junk_, out);
          junk_ = 0;
          start_frame();
        } else if (++junk_ >= max_) {
          // Report long runs of junk without waiting for a start block that may never come.
          error(MllpError::kDataBeforeStart, junk_, out);
          junk_ = 0;
        }
        ++i;
        break;
      case State::kMessage: {
        // Copy the run of ordinary bytes at once.
        std::size_t j = i;
        while (j < bytes.size() && bytes[j] != kMllpStart && bytes[j] != kMllpEnd) ++j;
        if (j > i) {
          const std::size_t room = max_ - buffer_.size();
          if (j - i > room) {
            error(MllpError::kTooLarge, buffer_.size() + (j - i), out);
            buffer_.clear();
            buffer_.shrink_to_fit();
            state_ = State::kDiscard;
            i = j;
            break;
          }
          buffer_.append(bytes.data() + i, j - i);
          i = j;
          break;
        }
        if (c == kMllpEnd) {
          // The payload is whole at the end block: it is yielded now, whether or not the CR
          // follows (some senders omit it and wait for the ACK).
          MllpEvent ev;
          ev.kind = MllpEvent::Kind::kMessage;
          ev.message = std::move(buffer_);
          out.push_back(std::move(ev));
          buffer_ = std::string();
          state_ = State::kEnd;
        } else {  // kMllpStart
          error(MllpError::kUnexpectedStart, buffer_.size() + 1, out);
          start_frame();
        }
        ++i;
        break;
      }
      case State::kEnd:
        // The CR of the frame's end (or an LF some senders write instead, or CR LF) is taken;
        // anything else is judged again from the idle state: a start block begins the next frame.
        state_ = c == kMllpTrailer ? State::kEndCr : State::kIdle;
        if (c == kMllpTrailer || c == '\n') ++i;
        break;
      case State::kEndCr:
        state_ = State::kIdle;
        if (c == '\n') ++i;
        break;
      case State::kDiscard:
        if (c == kMllpEnd) {
          state_ = State::kDiscardEnd;
        } else if (c == kMllpStart) {
          start_frame();
        }
        ++i;
        break;
      case State::kDiscardEnd:
        if (c == kMllpTrailer) {
          state_ = State::kIdle;
          ++i;
        } else {
          state_ = State::kDiscard;  // a stray 0x1C inside the oversized payload
        }
        break;
    }
  }
}

std::vector<MllpEvent> MllpDecoder::feed(std::string_view bytes) {
  std::vector<MllpEvent> out;
  feed(bytes, out);
  return out;
}

Result<std::string> mllp_encode(std::string_view payload, std::size_t max_message_bytes) {
  if (payload.size() > max_message_bytes) {
    return make_error(ErrorCode::kInvalidArgument, "HL7 message larger than allowed");
  }
  if (payload.find_first_of(std::string_view("\x0B\x1C", 2)) != std::string_view::npos) {
    return make_error(ErrorCode::kInvalidArgument, "HL7 message contains an MLLP framing byte");
  }
  std::string out;
  out.reserve(payload.size() + 3);
  out += kMllpStart;
  out += payload;
  out += kMllpEnd;
  out += kMllpTrailer;
  return out;
}

}  // namespace dirgw::hl7
