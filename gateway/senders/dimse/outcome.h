// What a DIMSE answer means for an instance, as pure functions: the C-STORE response status
// (PS3.4 B.2.3, PS3.7 C) and an A-ASSOCIATE-RJ (PS3.8 9.3.4). The failure codes share their
// table with STOW-RS's FailureReason (dicomweb::classify_failure_reason): one meaning per code.
// Only codes go into reasons, never the peer's ErrorComment (it may echo patient data).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "senders/sender.h"

namespace dirgw::senders::dimse {

struct Verdict {
  InstanceStatus status;
  std::string reason;  // empty for plain success
};

// 0x0000 -> accepted; warnings (0x0001, 0xB000, 0xB006, 0xB007, any 0xBxxx) -> accepted, with the
// warning kept in the reason; 0xA7xx, 0x0110, 0x0210, 0x0213 -> retry; 0xA9xx, 0xCxxx, 0x01xx
// refusals -> permanent; 0xFE00 (cancel) and unknown codes -> retry.
Verdict classify_store_status(std::uint16_t status);

// The three fields of an A-ASSOCIATE-RJ PDU, as coded on the wire (PS3.8 Table 9-21).
struct AssociateReject {
  int result = 0;  // 1 rejected-permanent, 2 rejected-transient
  int source = 0;  // 1 service user, 2 provider (ACSE), 3 provider (presentation)
  int reason = 0;  // meaning depends on source
};

// Configuration mismatches (called or calling AE title not recognised, application context or
// protocol version not supported) are permanent whatever the result field says: trying again
// will not help until a person changes a configuration. "No reason given", "temporary
// congestion" and "local limit exceeded" are transient; other codes follow the result field.
// The reason names the fields and, for AE titles, which title to check.
Verdict classify_reject(const AssociateReject& rj, std::string_view called_ae,
                        std::string_view calling_ae);

// "0xA700"
std::string hex_status(std::uint16_t status);

}  // namespace dirgw::senders::dimse
