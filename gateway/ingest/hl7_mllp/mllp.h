// MLLP framing (HL7 v2 Minimal Lower Layer Protocol): a message travels as
// <VT 0x0B> payload <FS 0x1C><CR 0x0D> (the CR may be missing: some senders omit it, and a payload
// is whole at its FS; some write LF or CR LF instead). The decoder is a streaming state machine:
// feed it whatever the socket gave, in pieces of any size, and it yields complete payloads and
// framing errors in stream order. Memory is bounded by max_message_bytes whatever the peer sends.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace dirgw::hl7 {

inline constexpr char kMllpStart = '\x0B';
inline constexpr char kMllpEnd = '\x1C';
inline constexpr char kMllpTrailer = '\x0D';
inline constexpr std::size_t kDefaultMaxMessageBytes = std::size_t{1} << 20;

enum class MllpError {
  kDataBeforeStart,  // bytes outside a frame (before 0x0B); they are dropped
  kUnexpectedStart,  // 0x0B inside a frame: the partial frame is dropped, a new one begins
  kTooLarge,         // payload beyond max_message_bytes: dropped up to the frame's end
};
std::string_view describe(MllpError error);

struct MllpEvent {
  enum class Kind { kMessage, kError };
  Kind kind = Kind::kMessage;
  std::string message;                            // kMessage: the payload, without framing
  MllpError error = MllpError::kDataBeforeStart;  // kError
  std::size_t bytes = 0;  // kError: how many bytes were dropped (at least the bytes seen so far)
};

class MllpDecoder {
 public:
  explicit MllpDecoder(std::size_t max_message_bytes = kDefaultMaxMessageBytes);

  // Appends to `out`, in stream order, every payload completed and every framing error detected by
  // these bytes.
  void feed(std::string_view bytes, std::vector<MllpEvent>& out);
  std::vector<MllpEvent> feed(std::string_view bytes);

  // True between frames with nothing buffered (after an end block too, whether or not its CR has
  // come): the peer may close the connection here without losing part of a message.
  bool idle() const {
    return state_ == State::kIdle || state_ == State::kEnd || state_ == State::kEndCr;
  }
  std::size_t buffered() const { return buffer_.size(); }

 private:
  enum class State { kIdle, kJunk, kMessage, kEnd, kEndCr, kDiscard, kDiscardEnd };

  void start_frame();
  void error(MllpError e, std::size_t bytes, std::vector<MllpEvent>& out);

  std::size_t max_;
  State state_ = State::kIdle;
  std::string buffer_;
  std::size_t junk_ = 0;
};

// Frames one payload. kInvalidArgument if it contains 0x0B or 0x1C (it could not be decoded) or is
// larger than max_message_bytes.
Result<std::string> mllp_encode(std::string_view payload,
                                std::size_t max_message_bytes = kDefaultMaxMessageBytes);

}  // namespace dirgw::hl7
