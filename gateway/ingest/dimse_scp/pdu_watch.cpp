#include "ingest/dimse_scp/pdu_watch.h"

#include <algorithm>

#include "ingest/prescan/prescan.h"

namespace dirgw::ingest {

namespace {

constexpr std::uint8_t kAssociateAc = 0x02;
constexpr std::uint8_t kPDataTf = 0x04;
constexpr std::uint64_t kMaxAcceptBody = 64 * 1024;
// Command fields whose data set DcmSCU parses in memory (DCMTK 3.6.7's sendFINDRequest reads a
// pending answer's identifier, sendMOVERequest any announced data set; C-GET answers' data sets
// are not read, and C-STORE sub-operations go to a file and through the pre-scan). This mirrors
// DcmSCU's code: a DCMTK upgrade must be checked against it (a data set DcmSCU starts to read
// that is not held here is parsed unchecked; one held that it does not read waits for nothing).
constexpr std::uint16_t kCFindRsp = 0x8020;
constexpr std::uint16_t kCMoveRsp = 0x8021;
constexpr std::uint16_t kNoDataSet = 0x0101;

std::uint32_t be32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}
std::uint16_t be16(const unsigned char* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
std::uint32_t le32(const unsigned char* p) {
  return std::uint32_t{p[0]} | (std::uint32_t{p[1]} << 8) | (std::uint32_t{p[2]} << 16) |
         (std::uint32_t{p[3]} << 24);
}
std::uint16_t le16(const unsigned char* p) {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
const unsigned char* bytes(const std::string& s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// The accepted presentation contexts of an A-ASSOCIATE-AC body (PS3.8 9.3.3): id -> syntax.
void read_accept(const std::string& body, std::map<std::uint8_t, std::string>& out) {
  std::size_t at = 68;  // protocol version, reserved, two AE titles, reserved
  while (at + 4 <= body.size()) {
    const std::uint8_t type = static_cast<std::uint8_t>(body[at]);
    const std::size_t length = be16(bytes(body) + at + 2);
    if (at + 4 + length > body.size()) return;
    if (type == 0x21 && length >= 4 && body[at + 6] == 0) {  // result 0: acceptance
      const auto id = static_cast<std::uint8_t>(body[at + 4]);
      std::size_t sub = at + 8;
      while (sub + 4 <= at + 4 + length) {
        const std::size_t sl = be16(bytes(body) + sub + 2);
        if (sub + 4 + sl > at + 4 + length) break;
        if (static_cast<std::uint8_t>(body[sub]) == 0x40) {
          std::string ts = body.substr(sub + 4, sl);
          while (!ts.empty() && (ts.back() == '\0' || ts.back() == ' ')) ts.pop_back();
          out[id] = ts;
        }
        sub += 4 + sl;
      }
    }
    at += 4 + length;
  }
}

}  // namespace

// Something other than the rest of a held data set: let it through only when none of the data
// set came (what DCMTK has not been handed it cannot parse), else refuse the stream.
Result<void> PduWatch::interrupted() {
  if (!held_.empty())
    return trip("DIMSE data set in an answer interrupted before its end: connection closed");
  holding_ = false;
  return {};
}

Result<void> PduWatch::trip(std::string why) {
  tripped_ = true;
  holding_ = false;
  why_ = std::move(why);
  return make_error(ErrorCode::kRefused, why_);
}

void PduWatch::start_pdu_body() {
  pdu_type_ = header_[0];
  pdu_left_ = be32(header_ + 2);
  header_have_ = 0;
  accept_.clear();
  if (pdu_left_ == 0)
    end_pdu_body();
  else
    state_ = pdu_type_ == kPDataTf ? State::kPdvHeader : State::kPduBody;
}

void PduWatch::end_pdu_body() {
  if (check_answers_ && pdu_type_ == kAssociateAc && !accept_.empty())
    read_accept(accept_, syntax_);
  accept_.clear();
  state_ = State::kPduHeader;
}

Result<void> PduWatch::take_pdv_header() {
  header_have_ = 0;
  const std::uint32_t item_length = be32(header_);
  // An item shorter than its own context ID and control header, or longer than what is left of
  // its PDU: not framing we can follow; DCMTK refuses it.
  if (item_length < 2 || item_length - 2 > pdu_left_) {
    if (holding_)
      if (auto r = interrupted(); !r) return r;
    state_ = State::kGaveUp;
    return {};
  }
  pdv_left_ = item_length - 2;
  pdv_context_ = header_[4];
  pdv_command_ = (header_[5] & 0x01) != 0;
  pdv_last_ = (header_[5] & 0x02) != 0;
  if (pdv_command_) {
    // A command where the data set was announced: with none of it sent, there is nothing to
    // hold (DCMTK refuses the command); with some sent, DCMTK would parse that part first.
    if (holding_) {
      if (auto r = interrupted(); !r) return r;
    }
    // Counted when announced: the fragment's bytes never reach DCMTK.
    command_bytes_ += pdv_left_;
    if (command_bytes_ > max_command_bytes_)
      return trip("DIMSE command set longer than " + std::to_string(max_command_bytes_) +
                  " bytes (" + std::to_string(command_bytes_) +
                  " announced): connection closed before it was parsed");
  } else if (holding_ && held_.size() + pdv_left_ > kMaxInMemoryDataSet) {
    return trip("DIMSE data set larger than " + std::to_string(kMaxInMemoryDataSet >> 20) +
                " MiB in an answer: connection closed before it was parsed");
  }
  state_ = State::kPdvData;
  return {};
}

void PduWatch::take_command() {
  std::uint16_t field = 0, status = 0, data_set = kNoDataSet;
  for (std::size_t at = 0; at + 8 <= command_.size();) {
    const unsigned char* p = bytes(command_) + at;
    const std::uint16_t group = le16(p), element = le16(p + 2);
    const std::uint32_t length = le32(p + 4);
    if (length > command_.size() - at - 8) break;
    if (group == 0x0000 && length == 2) {
      const std::uint16_t v = le16(p + 8);
      if (element == 0x0100) field = v;
      if (element == 0x0900) status = v;
      if (element == 0x0800) data_set = v;
    }
    at += 8 + length;
  }
  const bool pending = status == 0xFF00 || status == 0xFF01;
  holding_ = data_set != kNoDataSet && ((field == kCFindRsp && pending) || field == kCMoveRsp);
  held_.clear();
}

Result<void> PduWatch::finish_pdv() {
  if (pdv_command_ && pdv_last_) {  // the next message's command starts afresh
    if (check_answers_) take_command();
    command_bytes_ = 0;
    command_.clear();
  } else if (!pdv_command_ && pdv_last_ && holding_) {
    const auto ts = syntax_.find(pdv_context_);
    if (ts == syntax_.end())
      return trip("DIMSE data set on a presentation context the peer did not accept");
    auto scan = prescan_dataset(held_, ts->second, PrescanLimits{});
    if (!scan) return trip("DIMSE data set refused before it was parsed: " + scan.error().detail);
    holding_ = false;
    held_.clear();
  }
  state_ = pdu_left_ == 0 ? State::kPduHeader : State::kPdvHeader;
  return {};
}

Result<void> PduWatch::feed(const unsigned char* data, std::size_t size) {
  if (tripped_) return make_error(ErrorCode::kRefused, why_);
  std::size_t i = 0;
  while (i < size && state_ != State::kGaveUp) {
    switch (state_) {
      case State::kPduHeader:
        header_[header_have_++] = data[i++];
        if (header_have_ == 6) {
          start_pdu_body();
          if (holding_ && pdu_type_ != kPDataTf)
            if (auto r = interrupted(); !r) return r;
        }
        break;
      case State::kPduBody: {
        const std::size_t n =
            static_cast<std::size_t>(std::min<std::uint64_t>(pdu_left_, size - i));
        if (check_answers_ && pdu_type_ == kAssociateAc && accept_.size() + n <= kMaxAcceptBody)
          accept_.append(reinterpret_cast<const char*>(data + i), n);
        i += n;
        pdu_left_ -= n;
        if (pdu_left_ == 0) end_pdu_body();
        break;
      }
      case State::kPdvHeader:
        header_[header_have_++] = data[i++];
        --pdu_left_;
        if (header_have_ == 6) {
          if (auto r = take_pdv_header(); !r) return r;
          if (state_ == State::kPdvData && pdv_left_ == 0)
            if (auto r = finish_pdv(); !r) return r;
        } else if (pdu_left_ == 0) {  // a PDU ending inside an item header
          if (holding_)
            if (auto r = interrupted(); !r) return r;
          state_ = State::kGaveUp;
        }
        break;
      case State::kPdvData: {
        const std::size_t n =
            static_cast<std::size_t>(std::min<std::uint64_t>(pdv_left_, size - i));
        const char* p = reinterpret_cast<const char*>(data + i);
        if (pdv_command_ && check_answers_) command_.append(p, n);
        if (!pdv_command_ && holding_) held_.append(p, n);
        i += n;
        pdv_left_ -= n;
        pdu_left_ -= n;
        if (pdv_left_ == 0)
          if (auto r = finish_pdv(); !r) return r;
        break;
      }
      case State::kGaveUp:
        break;
    }
  }
  return {};
}

}  // namespace dirgw::ingest
