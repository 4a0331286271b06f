// Forwarding audit messages to an audit repository as syslog (IHE ATNA): the RFC 5424 message
// and the RFC 5425 octet-counting frame used over TLS. Pure formatting; the transport, and the
// backlog (the trail itself, read from the last forwarded seq), belong to the caller.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "audit/audit.h"
#include "common/result.h"

namespace dirgw::audit {

struct SyslogContext {
  std::string hostname;                // HOSTNAME; "-" when empty
  std::string app_name = "dirgwd";     // APP-NAME
  std::string procid;                  // PROCID, e.g. the pid; "-" when empty
  std::string msgid = "IHE+RFC-3881";  // MSGID that ATNA (ITI-20) prescribes
  // SD-ID of the chain values ([dirgw@32473 seq=.. prev=.. hash=..]), which make the repository
  // hold an off-box copy of the chain. 32473 is the enterprise number reserved for
  // documentation (RFC 5612): a deployment with its own IANA number should use it.
  std::string sd_id = "dirgw@32473";
  int facility = 10;  // security/authorization (authpriv)
};

// "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] BOM MSG": PRI from the facility and the
// outcome (notice for success, warning for failure), TIMESTAMP the event's own time (a message
// sent late from the backlog still says when the event happened), MSG the audit XML in UTF-8.
std::string rfc5424_message(const Event& e, std::string_view xml, const SyslogContext& ctx);

// RFC 5425 framing: "MSG-LEN SP SYSLOG-MSG", the length in octets.
std::string octet_counted(std::string_view message);

// The receiving side (a test repository, or a relay): removes the complete frames at the front of
// `buffer` and returns them, leaving a partial frame in place. A malformed length, or one over
// `max_frame`, is an error (the stream cannot be resynchronised).
Result<std::vector<std::string>> take_frames(std::string& buffer,
                                             std::size_t max_frame = 1024 * 1024);

}  // namespace dirgw::audit
