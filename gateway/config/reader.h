// Internal to dirgw_config: the YAML walker every section reader uses (key + line in every
// error), shared by config.cpp (root and ingest/policy sections), destinations.cpp and
// ingest_door.cpp. Not part of the config module's interface.
#pragma once

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"

namespace dirgw::config::detail {

// Walks a YAML mapping, records which keys were read, and reports every problem with its
// key path and line.
class Reader {
 public:
  explicit Reader(std::vector<ConfigError>& errors) : errors_(errors) {}
  std::vector<ConfigError>& errors() { return errors_; }

  void error(const std::string& key, const YAML::Node& node, std::string message) {
    int line = node.IsDefined() ? node.Mark().line + 1 : 0;
    errors_.push_back({key, line, std::move(message)});
  }

  // Calls fn for a child map; reports unknown keys in it afterwards.
  void map(const YAML::Node& parent, const std::string& path,
           const std::function<void(const YAML::Node&, const std::string&)>& fn,
           const std::set<std::string>& allowed) {
    if (!parent.IsMap()) {
      error(path, parent, "must be a mapping");
      return;
    }
    for (const auto& kv : parent) {
      auto k = kv.first.as<std::string>();
      if (!allowed.count(k)) {
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
        error(join(path, k), kv.first, "unknown key (allowed here: " + list + ")");
      }
    }
    fn(parent, path);
  }

  static std::string join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }

  template <typename Fn>
  void scalar(const YAML::Node& parent, const std::string& path, const char* key, Fn&& fn) {
    YAML::Node n = parent[key];
    if (!n.IsDefined() || n.IsNull()) return;
    if (!n.IsScalar()) {
      error(join(path, key), n, "must be a single value");
      return;
    }
    fn(n, join(path, key), n.Scalar());
  }

  void string(const YAML::Node& p, const std::string& path, const char* key, std::string& out,
              std::size_t max_len = 256) {
    scalar(p, path, key, [&](const YAML::Node& n, const std::string& k, const std::string& v) {
      if (v.size() > max_len)
        error(k, n, "too long (at most " + std::to_string(max_len) + " characters)");
      else
        out = v;
    });
  }

  void boolean(const YAML::Node& p, const std::string& path, const char* key, bool& out) {
    scalar(p, path, key, [&](const YAML::Node& n, const std::string& k, const std::string& v) {
      if (v == "true" || v == "yes" || v == "on")
        out = true;
      else if (v == "false" || v == "no" || v == "off")
        out = false;
      else
        error(k, n, "must be true or false, not '" + v + "'");
    });
  }

  template <typename Int>
  void integer(const YAML::Node& p, const std::string& path, const char* key, Int& out,
               long long lo, long long hi) {
    scalar(p, path, key, [&](const YAML::Node& n, const std::string& k, const std::string& v) {
      bool digits = !v.empty() && v.size() < 19;
      for (char c : v) digits = digits && std::isdigit(static_cast<unsigned char>(c));
      long long x = digits ? std::stoll(v) : -1;
      if (!digits || x < lo || x > hi)
        error(k, n,
              "must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi) +
                  ", not '" + v + "'");
      else
        out = static_cast<Int>(x);
    });
  }

  // A decimal number such as 0.5 or 2 (no exponent, no sign).
  void number(const YAML::Node& p, const std::string& path, const char* key, double& out, double lo,
              double hi) {
    scalar(p, path, key, [&](const YAML::Node& n, const std::string& k, const std::string& v) {
      double x = -1;
      bool ok = !v.empty() && v.size() < 32 && v.find_first_not_of("0123456789.") == v.npos;
      if (ok) {
        const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
        ok = ec == std::errc() && end == v.data() + v.size();
      }
      if (!ok || x < lo || x > hi)
        error(k, n,
              "must be a number from " + format_number(lo) + " to " + format_number(hi) +
                  ", not '" + v + "'");
      else
        out = x;
    });
  }
  static std::string format_number(double x) {
    std::string s = std::to_string(x);
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  }

  void duration(const YAML::Node& p, const std::string& path, const char* key, Duration& out,
                Duration lo, Duration hi) {
    scalar(p, path, key, [&](const YAML::Node& n, const std::string& k, const std::string& v) {
      auto d = parse_duration(v);
      if (!d)
        error(k, n, "must be a duration such as 250ms, 30s, 5m, 1h or 7d, not '" + v + "'");
      else if (*d < lo || *d > hi)
        error(k, n,
              "must be between " + std::to_string(lo.count()) + "ms and " +
                  std::to_string(hi.count()) + "ms");
      else
        out = *d;
    });
  }

  void size(const YAML::Node& p, const std::string& path, const char* key, std::uint64_t& out,
            std::uint64_t lo, std::uint64_t hi) {
    scalar(p, path, key, [&](const YAML::Node& n, const std::string& k, const std::string& v) {
      auto s = parse_size(v);
      if (!s)
        error(k, n, "must be a size such as 512KiB, 64MiB or 5GiB, not '" + v + "'");
      else if (*s < lo || *s > hi)
        error(k, n,
              "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + " bytes");
      else
        out = *s;
    });
  }

  // A list: fn(item, "key[i]") for each item; an error when the value is not a list.
  void list(const YAML::Node& p, const std::string& path, const char* key, const char* what,
            const std::function<void(const YAML::Node&, const std::string&)>& fn) {
    YAML::Node n = p[key];
    if (!n.IsDefined() || n.IsNull()) return;
    if (!n.IsSequence()) {
      error(join(path, key), n, std::string("must be a list of ") + what);
      return;
    }
    for (std::size_t i = 0; i < n.size(); ++i)
      fn(n[i], join(path, key) + "[" + std::to_string(i) + "]");
  }

  void path(const YAML::Node& p, const std::string& path, const char* key,
            std::filesystem::path& out) {
    scalar(p, path, key, [&](const YAML::Node& n, const std::string& k, const std::string& v) {
      if (v.empty() || v[0] != '/')
        error(k, n, "must be an absolute path, not '" + v + "'");
      else if (v.find('\0') != std::string::npos || v.size() > 4096)
        error(k, n, "is not a usable path");
      else
        out = v;
    });
  }

  // An AE title: 1 to 16 printable ASCII characters, no backslash (PS3.5 6.2, AE).
  void ae_title(const YAML::Node& p, const std::string& path, const char* key, std::string& out);

 private:
  std::vector<ConfigError>& errors_;
};

inline bool valid_ae_title(const std::string& ae) {
  if (ae.empty() || ae.size() > 16) return false;
  for (char c : ae)
    if (c == '\\' || static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e)
      return false;
  return ae.find_first_not_of(' ') != std::string::npos;
}

inline void Reader::ae_title(const YAML::Node& p, const std::string& path, const char* key,
                             std::string& out) {
  scalar(p, path, key, [&](const YAML::Node& n, const std::string& k, const std::string& v) {
    if (!valid_ae_title(v))
      error(k, n, "must be 1 to 16 printable ASCII characters without backslash");
    else
      out = v;
  });
}

inline bool valid_ipv4(const std::string& s) {
  int parts = 0;
  std::size_t i = 0;
  while (i <= s.size()) {
    std::size_t j = s.find('.', i);
    if (j == std::string::npos) j = s.size();
    std::string p = s.substr(i, j - i);
    if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string::npos)
      return false;
    if (std::stoi(p) > 255) return false;
    ++parts;
    i = j + 1;
  }
  return parts == 4;
}

// A Modality (0008,0060) or Body Part Examined code: 1-16 upper-case letters, digits or '_'.
inline bool modality_code(const std::string& v) {
  return !v.empty() && v.size() <= 16 && std::all_of(v.begin(), v.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// ingest.dicom's connection keys (tls, callers, stop_grace) and ingest.hl7's time-outs
// (idle_timeout, message_timeout): ingest_door.cpp.
void read_dicom_door(Reader& r, const YAML::Node& m, const std::string& path, DicomIngest& d);
void read_hl7_door(Reader& r, const YAML::Node& m, const std::string& path, Hl7Ingest& h);
// An HL7 field path SEG-FIELD[.COMPONENT[.SUBCOMPONENT]], e.g. OBR-18, ORC-7.6 (config.cpp).
bool valid_hl7_field_path(const std::string& s);
// ingest.hl7.reports (hl7_reports_config.cpp).
void read_hl7_reports(Reader& r, const YAML::Node& m, const std::string& path, Hl7Reports& out);
// A list of upload-window specs, each checked for syntax (destinations.cpp).
void read_window_specs(Reader& r, const YAML::Node& n, const std::string& p, const char* key,
                       std::vector<std::string>& out);
// A bandwidth cap: "2MiB" or {max, office_hours, office_hours_max} (destinations.cpp).
void read_bandwidth(Reader& r, const YAML::Node& m, const std::string& p, const char* key,
                    Bandwidth& b);
// Reads destinations[] (destinations.cpp).
void read_destinations(Reader& r, const YAML::Node& m, std::vector<Destination>& out);

}  // namespace dirgw::config::detail
