#include "ingest/dimse_scp/pdu_watch.h"

#include <algorithm>

namespace dirgw::ingest {

namespace {

constexpr std::uint8_t kPDataTf = 0x04;

std::uint32_t be32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

}  // namespace

void PduWatch::start_pdu_body() {
  pdu_type_ = header_[0];
  pdu_left_ = be32(header_ + 2);
  header_have_ = 0;
  if (pdu_left_ == 0)
    state_ = State::kPduHeader;
  else
    state_ = pdu_type_ == kPDataTf ? State::kPdvHeader : State::kPduBody;
}

Result<void> PduWatch::take_pdv_header() {
  header_have_ = 0;
  const std::uint32_t item_length = be32(header_);
  // An item shorter than its own context ID and control header, or longer than what is left of
  // its PDU: not framing we can follow; DCMTK refuses it.
  if (item_length < 2 || item_length - 2 > pdu_left_) {
    state_ = State::kGaveUp;
    return {};
  }
  pdv_left_ = item_length - 2;
  pdv_command_ = (header_[5] & 0x01) != 0;
  pdv_last_ = (header_[5] & 0x02) != 0;
  if (pdv_command_) {
    // Counted when announced: the fragment's bytes never reach DCMTK.
    command_bytes_ += pdv_left_;
    if (command_bytes_ > max_command_bytes_) {
      tripped_ = true;
      return make_error(ErrorCode::kRefused,
                        "DIMSE command set longer than " + std::to_string(max_command_bytes_) +
                            " bytes (" + std::to_string(command_bytes_) +
                            " announced): connection closed before it was parsed");
    }
  }
  state_ = State::kPdvData;
  return {};
}

void PduWatch::finish_pdv() {
  if (pdv_command_ && pdv_last_) command_bytes_ = 0;  // the next message's command starts afresh
  state_ = pdu_left_ == 0 ? State::kPduHeader : State::kPdvHeader;
}

Result<void> PduWatch::feed(const unsigned char* data, std::size_t size) {
  if (tripped_)
    return make_error(ErrorCode::kRefused, "DIMSE command set over the limit: connection closed");
  std::size_t i = 0;
  while (i < size && state_ != State::kGaveUp) {
    switch (state_) {
      case State::kPduHeader:
        header_[header_have_++] = data[i++];
        if (header_have_ == 6) start_pdu_body();
        break;
      case State::kPduBody: {
        const std::size_t n =
            static_cast<std::size_t>(std::min<std::uint64_t>(pdu_left_, size - i));
        i += n;
        pdu_left_ -= n;
        if (pdu_left_ == 0) state_ = State::kPduHeader;
        break;
      }
      case State::kPdvHeader:
        header_[header_have_++] = data[i++];
        --pdu_left_;
        if (header_have_ == 6) {
          if (auto r = take_pdv_header(); !r) return r;
          if (state_ == State::kPdvData && pdv_left_ == 0) finish_pdv();
        } else if (pdu_left_ == 0) {
          state_ = State::kGaveUp;  // a PDU ending inside an item header
        }
        break;
      case State::kPdvData: {
        const std::size_t n =
            static_cast<std::size_t>(std::min<std::uint64_t>(pdv_left_, size - i));
        i += n;
        pdv_left_ -= n;
        pdu_left_ -= n;
        if (pdv_left_ == 0) finish_pdv();
        break;
      }
      case State::kGaveUp:
        break;
    }
  }
  return {};
}

}  // namespace dirgw::ingest
