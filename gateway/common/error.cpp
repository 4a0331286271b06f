#include "common/error.h"

namespace dirgw {

namespace {
struct Entry {
  std::string_view name;
  bool retryable;
  std::string_view message;
};
constexpr Entry kTable[] = {
#define DIRGW_X(name, retryable, message) {#name, retryable, message},
    DIRGW_ERROR_CODES(DIRGW_X)
#undef DIRGW_X
};
const Entry& entry(ErrorCode code) { return kTable[static_cast<int>(code)]; }
}  // namespace

std::string_view error_name(ErrorCode code) { return entry(code).name.substr(1); }
std::string_view error_message(ErrorCode code) { return entry(code).message; }
bool error_retryable(ErrorCode code) { return entry(code).retryable; }

std::string Error::to_string() const {
  std::string out(error_message(code));
  if (!detail.empty()) {
    out += ": ";
    out += detail;
  }
  return out;
}

}  // namespace dirgw
