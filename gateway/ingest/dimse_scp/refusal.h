// Why the front door refused someone, as the code stored in refusals.reason_code and written to
// the audit trail: decisions and reports compare these, never the words shown to people.
#pragma once

namespace dirgw::ingest::refusal {
inline constexpr const char* kCallerUnknown = "caller-unknown";          // AE not admitted
inline constexpr const char* kCallerAddress = "caller-address";          // AE from another address
inline constexpr const char* kCallerCertificate = "caller-certificate";  // wrong/no certificate
inline constexpr const char* kCalledAe = "called-ae";                    // not our AE title
inline constexpr const char* kBusy = "too-many-associations";
inline constexpr const char* kTlsHandshake = "tls-handshake";  // no TLS, bad certificate, old TLS
inline constexpr const char* kAcseTimeout = "acse-timeout";    // no association request in time
inline constexpr const char* kStopping = "stopping";           // the daemon is shutting down
inline constexpr const char* kObjectTooLarge = "object-too-large";
// The spool's free space fell under its floor while an object was being received: cut off.
inline constexpr const char* kSpoolFull = "spool-full";
inline constexpr const char* kStoreRefused = "store-refused";  // a C-STORE answered with a failure
// DCMTK failed to receive a command or data set (odd PDV fragment, unparseable command,
// malformed PDU, connection lost): the association is aborted, nothing is answered.
inline constexpr const char* kReceiveFailed = "receive-failed";
// A watched folder's entry moved to rejected/ (the folder's own code is in the reason).
inline constexpr const char* kFolderRejected = "folder-rejected";
inline constexpr const char* kOther = "other";
}  // namespace dirgw::ingest::refusal
