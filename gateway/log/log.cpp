#include "log/log.h"

#define SD_JOURNAL_SUPPRESS_LOCATION
#include <sys/stat.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/crypto.h"

namespace dirgw::log {

namespace {
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::atomic<bool> g_journal{false};
std::mutex g_mutex;
std::string g_phi_key = "unset";

const char* level_name(Level l) {
  switch (l) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

int syslog_priority(Level l) {
  switch (l) {
    case Level::kDebug:
      return 7;
    case Level::kInfo:
      return 6;
    case Level::kWarn:
      return 4;
    case Level::kError:
      return 3;
  }
  return 6;
}

// stderr is the journal when JOURNAL_STREAM names its device and inode (systemd sets it).
bool stderr_is_journal() {
  const char* js = std::getenv("JOURNAL_STREAM");
  if (js == nullptr) return false;
  unsigned long dev = 0, ino = 0;
  if (std::sscanf(js, "%lu:%lu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (fstat(STDERR_FILENO, &st) != 0) return false;
  return st.st_dev == dev && st.st_ino == ino;
}

void append_quoted(std::string& out, std::string_view v) {
  bool needs_quotes = v.empty();
  for (char c : v)
    if (c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x20)
      needs_quotes = true;
  if (!needs_quotes) {
    out += v;
    return;
  }
  out += '"';
  for (char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += '?';
    } else {
      out += c;
    }
  }
  out += '"';
}
}  // namespace

void init(Level min_level, bool prefer_journal) {
  set_level(min_level);
  g_journal = prefer_journal && stderr_is_journal();
}

void set_level(Level min_level) { g_level = static_cast<int>(min_level); }

Level parse_level(std::string_view name, Level fallback) {
  if (name == "debug") return Level::kDebug;
  if (name == "info") return Level::kInfo;
  if (name == "warn" || name == "warning") return Level::kWarn;
  if (name == "error") return Level::kError;
  return fallback;
}

void write(Level level, std::string_view message, std::initializer_list<Field> fields) {
  if (static_cast<int>(level) < g_level.load(std::memory_order_relaxed)) return;
  if (g_journal) {
    std::vector<std::string> storage;
    storage.reserve(fields.size() + 2);
    storage.push_back("MESSAGE=" + std::string(message));
    storage.push_back("PRIORITY=" + std::to_string(syslog_priority(level)));
    for (const auto& f : fields) {
      std::string key;
      for (char c : f.key) key += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c;
      storage.push_back("DIRGW_" + key + "=" + f.value);
    }
    std::vector<iovec> iov;
    iov.reserve(storage.size());
    for (auto& s : storage) iov.push_back({s.data(), s.size()});
    sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
    return;
  }
  std::string line = format_utc(std::chrono::system_clock::now());
  line += " level=";
  line += level_name(level);
  line += " msg=";
  append_quoted(line, message);
  for (const auto& f : fields) {
    line += ' ';
    line += f.key;
    line += '=';
    append_quoted(line, f.value);
  }
  line += '\n';
  std::lock_guard lock(g_mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

void set_phi_key(std::string key) {
  std::lock_guard lock(g_mutex);
  g_phi_key = std::move(key);
}

std::string phi_tag(std::string_view value) {
  std::string key;
  {
    std::lock_guard lock(g_mutex);
    key = g_phi_key;
  }
  return "p:" + hmac_tag(key, value);
}

}  // namespace dirgw::log
