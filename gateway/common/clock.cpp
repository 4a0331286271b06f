#include "common/clock.h"

#include <ctime>

namespace dirgw {

std::string format_utc(TimePoint t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string format_utc_ms(std::int64_t epoch_ms) {
  if (epoch_ms <= 0) return "-";
  return format_utc(from_epoch_ms(epoch_ms));
}

}  // namespace dirgw
