// Logging facade: structured lines to journald (when stderr is the journal) or stderr.
// Patient values never reach it: they travel as Phi<T>, which prints "[redacted]".
// Refer to a patient with phi_tag() (a keyed HMAC), to a study with its UID.
#pragma once

#include <initializer_list>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

namespace dirgw::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

struct Field {
  std::string_view key;
  std::string value;
};

// Where lines go: stderr in logfmt, or journald with upper-cased fields.
void init(Level min_level, bool prefer_journal);
void set_level(Level min_level);
Level parse_level(std::string_view name, Level fallback);

void write(Level level, std::string_view message, std::initializer_list<Field> fields);

inline void debug(std::string_view m, std::initializer_list<Field> f = {}) {
  write(Level::kDebug, m, f);
}
inline void info(std::string_view m, std::initializer_list<Field> f = {}) {
  write(Level::kInfo, m, f);
}
inline void warn(std::string_view m, std::initializer_list<Field> f = {}) {
  write(Level::kWarn, m, f);
}
inline void error(std::string_view m, std::initializer_list<Field> f = {}) {
  write(Level::kError, m, f);
}

// Sets the key for phi_tag(); the daemon loads it from its state directory.
void set_phi_key(std::string key);
// A keyed HMAC of a patient value, for correlating log lines without revealing it.
std::string phi_tag(std::string_view value);

}  // namespace dirgw::log

namespace dirgw {

// A patient value. Printing it shows "[redacted]"; reveal() is for code that must use it
// (policy, coercion), never for logs.
template <typename T>
class Phi {
 public:
  explicit Phi(T value) : value_(std::move(value)) {}
  const T& reveal() const { return value_; }
  friend std::ostream& operator<<(std::ostream& os, const Phi&) { return os << "[redacted]"; }

 private:
  T value_;
};

}  // namespace dirgw
