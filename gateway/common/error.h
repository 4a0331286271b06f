// One table of error codes for the whole gateway: a name, a message and whether a retry can help.
// Expected failures travel as values (Result<T>); exceptions stay inside the thin wrappers
// around DCMTK, libcurl, SQLite and yaml-cpp.
#pragma once

#include <string>
#include <string_view>

namespace dirgw {

// X(name, retryable, message)
#define DIRGW_ERROR_CODES(X)                                                 \
  X(kOk, false, "ok")                                                        \
  X(kInvalidArgument, false, "invalid argument")                             \
  X(kConfig, false, "configuration error")                                   \
  X(kIo, true, "input/output error")                                         \
  X(kDiskFull, true, "not enough disk space")                                \
  X(kNotFound, false, "not found")                                           \
  X(kCatalog, true, "catalog error")                                         \
  X(kCatalogSchema, false, "catalog schema is newer than this program")      \
  X(kBadDicom, false, "not a valid DICOM object")                            \
  X(kPrescanRejected, false, "object refused by the structural pre-scan")    \
  X(kNetwork, true, "network error")                                         \
  X(kTimeout, true, "time-out")                                              \
  X(kTls, true, "TLS error")                                                 \
  X(kHttpTransient, true, "repository answered with a transient HTTP error") \
  X(kHttpPermanent, false, "repository refused the request")                 \
  X(kProtocol, false, "malformed answer from peer")                          \
  X(kRefused, false, "request refused")                                      \
  X(kUnavailable, true, "service unavailable")                               \
  X(kInternal, false, "internal error")

enum class ErrorCode {
#define DIRGW_X(name, retryable, message) name,
  DIRGW_ERROR_CODES(DIRGW_X)
#undef DIRGW_X
};

std::string_view error_name(ErrorCode code);
std::string_view error_message(ErrorCode code);
bool error_retryable(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string detail;  // never carries patient data

  bool retryable() const { return error_retryable(code); }
  // "<message>: <detail>"
  std::string to_string() const;
};

}  // namespace dirgw
