// Watched transport connections: the connection DCMTK would use (TLS, or its plain TCP), wrapped
// so that the bytes read from the peer pass a PduWatch (pdu_watch.h) before DCMTK sees them.
// When the watch trips, the read fails as a broken connection would, and the reason is kept for
// the thread that was reading (take_watch_verdict), which is the association's own. The SCP
// uses WatchedLayer; the DIMSE sender's and the pull client's layers, which make their own
// connections, wrap them with watch_connection: a destination's or a PACS's answers are command
// sets DCMTK parses too.
#pragma once

#include <optional>
#include <string>

// clang-format off
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmnet/dcmlayer.h"
#include "dcmtk/ofstd/ofcond.h"
// clang-format on

namespace dirgw::ingest {

class WatchedLayer final : public DcmTransportLayer {
 public:
  // inner: the TLS layer, or nullptr for plain TCP. Not owned; must outlive this layer.
  explicit WatchedLayer(DcmTransportLayer* inner) : inner_(inner) {}
  DcmTransportConnection* createConnection(DcmNativeSocketType socket, OFBool secure) override;

 private:
  DcmTransportLayer* inner_;
};

// Takes over `inner` (may be nullptr: then nullptr) and returns the watched connection. With
// check_answers (a connection we opened), the data sets DCMTK's DcmSCU parses in memory are
// pre-scanned first (pdu_watch.h).
DcmTransportConnection* watch_connection(DcmNativeSocketType socket, DcmTransportConnection* inner,
                                         bool check_answers = false);

// Why the last connection read on this thread was refused by its watch, once; nullopt if none.
std::optional<std::string> take_watch_verdict();

// The reason for a failed DIMSE call: the watch's, when it cut the connection, else DCMTK's.
std::string dimse_failure_text(const OFCondition& cond);

}  // namespace dirgw::ingest
