// What a DIMSE peer sends, watched before DCMTK parses it (docs/hostile-input.md).
//
// DCMTK parses every DIMSE command set itself, fragment by fragment as the P-DATA-TF PDUs
// arrive, with no limit on its size and a recursive reader: a command set of sequences nested
// 16,384 deep (512 KiB) overflows a thread's 8 MiB stack and ends dirgwd, before any code of
// ours sees the message and from any host that reaches the port under an allowed AE title. No
// command of PS3.7 needs more than a few hundred bytes. So every DIMSE connection feeds the bytes
// it reads through a PduWatch first: a command set longer than the limit ends the connection
// before DCMTK reads more of it. At 16 KiB it can nest at most 1,024 deep, which DCMTK reads
// within a fraction of the stack.
//
// On a connection we opened (`check_answers`), the data sets that DCMTK's DcmSCU will parse in
// memory (the identifier of a pending C-FIND answer, the data set of a C-MOVE or C-GET answer)
// are held back whole and pre-scanned (ingest/prescan, prescan_dataset) in the transfer syntax
// the peer accepted for their presentation context (read from its A-ASSOCIATE-AC), and only then
// handed on: holding() says when the connection must read ahead. A refused one trips the watch.
//
// The watch only follows the PDU framing (PS3.8 9.3): a PDU header of 6 bytes, and in a
// P-DATA-TF PDU its presentation data value items (a 4-byte length, the context ID, the message
// control header). A framing it cannot follow (an item running past its PDU) is DCMTK's to
// refuse: the watch stops watching and lets the bytes through.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "common/result.h"

namespace dirgw::ingest {

// The largest data set DCMTK is let parse in memory from a peer: held here, or received by
// checked_receive.h.
inline constexpr std::size_t kMaxInMemoryDataSet = 64u << 20;

class PduWatch {
 public:
  static constexpr std::size_t kDefaultMaxCommandBytes = 16 * 1024;

  explicit PduWatch(std::size_t max_command_bytes = kDefaultMaxCommandBytes,
                    bool check_answers = false)
      : max_command_bytes_(max_command_bytes), check_answers_(check_answers) {}

  // Takes the next bytes read from the peer. An error (the reason, in our words) once they break
  // a limit; the watch then stays tripped.
  Result<void> feed(const unsigned char* data, std::size_t size);

  bool tripped() const { return tripped_; }
  bool watching() const { return state_ != State::kGaveUp; }
  // A data set is being held for its pre-scan: what was read since must not reach DCMTK yet.
  bool holding() const { return holding_; }

 private:
  enum class State { kPduHeader, kPduBody, kPdvHeader, kPdvData, kGaveUp };

  void start_pdu_body();
  void end_pdu_body();
  Result<void> take_pdv_header();
  Result<void> finish_pdv();
  void take_command();
  Result<void> trip(std::string why);
  Result<void> interrupted();

  std::size_t max_command_bytes_;
  bool check_answers_;
  State state_ = State::kPduHeader;
  unsigned char header_[6] = {};
  std::size_t header_have_ = 0;
  std::uint8_t pdu_type_ = 0;
  std::uint64_t pdu_left_ = 0;  // bytes of the current PDU's body still to come
  std::uint64_t pdv_left_ = 0;  // bytes of the current PDV item's data still to come
  std::uint8_t pdv_context_ = 0;
  bool pdv_command_ = false;
  bool pdv_last_ = false;
  std::uint64_t command_bytes_ = 0;             // of the command set being received
  std::string command_;                         // its bytes (check_answers_ only; within the limit)
  std::string accept_;                          // an A-ASSOCIATE-AC's body (check_answers_ only)
  std::map<std::uint8_t, std::string> syntax_;  // accepted context -> its transfer syntax
  bool holding_ = false;
  std::string held_;  // the held data set's bytes
  bool tripped_ = false;
  std::string why_;
};

}  // namespace dirgw::ingest
