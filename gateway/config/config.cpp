#include "config/config.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

namespace dirgw::config {

std::string ConfigError::to_string(const std::string& file) const {
  std::string out = file;
  if (line > 0) {
    // Appended piecewise: g++ 12 at -O3 reports a false -Wrestrict on `":" + std::to_string()`.
    out += ':';
    out += std::to_string(line);
  }
  out += ": ";
  if (!key.empty()) out += key + ": ";
  out += message;
  return out;
}

std::optional<Duration> parse_duration(const std::string& text) {
  std::size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0 || i > 12) return std::nullopt;
  long long n = std::stoll(text.substr(0, i));
  std::string unit = text.substr(i);
  long long ms = 0;
  if (unit == "ms")
    ms = n;
  else if (unit == "s")
    ms = n * 1000;
  else if (unit == "m")
    ms = n * 60'000;
  else if (unit == "h")
    ms = n * 3'600'000;
  else if (unit == "d")
    ms = n * 86'400'000;
  else
    return std::nullopt;
  return Duration(ms);
}

std::optional<std::uint64_t> parse_size(const std::string& text) {
  std::size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0 || i > 15) return std::nullopt;
  std::uint64_t n = std::stoull(text.substr(0, i));
  static const std::map<std::string, std::uint64_t> kUnits = {{"", 1},
                                                              {"B", 1},
                                                              {"KB", 1000},
                                                              {"MB", 1000 * 1000},
                                                              {"GB", 1000'000'000ull},
                                                              {"TB", 1000'000'000'000ull},
                                                              {"KiB", 1ull << 10},
                                                              {"MiB", 1ull << 20},
                                                              {"GiB", 1ull << 30},
                                                              {"TiB", 1ull << 40}};
  auto it = kUnits.find(text.substr(i));
  if (it == kUnits.end()) return std::nullopt;
  return n * it->second;
}

namespace {

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

 private:
  std::vector<ConfigError>& errors_;
};

bool valid_ae_title(const std::string& ae) {
  if (ae.empty() || ae.size() > 16) return false;
  for (char c : ae)
    if (c == '\\' || static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e)
      return false;
  return ae.find_first_not_of(' ') != std::string::npos;
}

bool valid_ipv4(const std::string& s) {
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

void read_dicom(Reader& r, const YAML::Node& n, const std::string& path, DicomIngest& d) {
  r.map(n, path,
        [&](const YAML::Node& m, const std::string& p) {
          r.boolean(m, p, "enabled", d.enabled);
          r.scalar(m, p, "ae_title",
                   [&](const YAML::Node& v, const std::string& k, const std::string& s) {
                     if (!valid_ae_title(s))
                       r.error(k, v,
                               "must be 1 to 16 printable ASCII characters without backslash");
                     else
                       d.ae_title = s;
                   });
          r.scalar(
              m, p, "bind", [&](const YAML::Node& v, const std::string& k, const std::string& s) {
                if (!valid_ipv4(s))
                  r.error(k, v,
                          "must be an IPv4 address such as 0.0.0.0 or 127.0.0.1, not '" + s + "'");
                else
                  d.bind = s;
              });
          r.integer(m, p, "port", d.port, 1, 65535);
          r.integer(m, p, "max_associations", d.max_associations, 1, 256);
          r.integer(m, p, "max_pdu", d.max_pdu, 4096, 131072);
          r.duration(m, p, "acse_timeout", d.acse_timeout, Duration(1000), Duration(600'000));
          r.duration(m, p, "dimse_timeout", d.dimse_timeout, Duration(1000), Duration(3'600'000));
          r.size(m, p, "max_object_size", d.max_object_size, 1024, 64ull << 30);
          YAML::Node callers = m["allowed_callers"];
          std::string key = Reader::join(p, "allowed_callers");
          if (callers.IsDefined() && !callers.IsNull()) {
            if (!callers.IsSequence()) {
              r.error(key, callers, "must be a list of calling AE titles, e.g. [PACS1, MODALITY2]");
            } else {
              for (std::size_t i = 0; i < callers.size(); ++i) {
                auto ik = key + "[" + std::to_string(i) + "]";
                if (!callers[i].IsScalar() ||
                    (callers[i].Scalar() != "*" && !valid_ae_title(callers[i].Scalar())))
                  r.error(ik, callers[i], "must be an AE title (1 to 16 characters) or \"*\"");
                else
                  d.allowed_callers.push_back(callers[i].Scalar());
              }
            }
          }
          if (d.enabled && d.allowed_callers.empty())
            r.error(key, callers.IsDefined() ? callers : m,
                    "must list at least one calling AE title (\"*\" admits any caller)");
        },
        {"enabled", "ae_title", "bind", "port", "allowed_callers", "max_associations", "max_pdu",
         "acse_timeout", "dimse_timeout", "max_object_size"});
}

// Parses "0x0029" or "0029" (hex) into a number within [lo, hi]; nullopt otherwise.
std::optional<int> parse_hex(const std::string& text, int lo, int hi) {
  std::string h = text.rfind("0x", 0) == 0 || text.rfind("0X", 0) == 0 ? text.substr(2) : text;
  if (h.empty() || h.size() > 4 ||
      h.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
    return std::nullopt;
  const int v = std::stoi(h, nullptr, 16);
  if (v < lo || v > hi) return std::nullopt;
  return v;
}

void read_safe_private(Reader& r, const YAML::Node& n, const std::string& k, Deidentify& d) {
  r.map(n, k,
        [&](const YAML::Node& m, const std::string& p) {
          SafePrivate sp;
          r.scalar(
              m, p, "group", [&](const YAML::Node& v, const std::string& vk, const std::string& s) {
                auto g = parse_hex(s, 0, 0xFFFF);
                if (!g || (*g != 0 && (*g % 2 == 0 || *g < 9)))
                  r.error(
                      vk, v,
                      "must be an odd group number such as 0x0029 (or 0 for any), not '" + s + "'");
                else
                  sp.group = *g;
              });
          r.string(m, p, "creator", sp.creator, 64);
          if (sp.creator.empty()) r.error(Reader::join(p, "creator"), m, "is required");
          r.scalar(m, p, "element",
                   [&](const YAML::Node& v, const std::string& vk, const std::string& s) {
                     auto e = parse_hex(s, 0, 0xFF);
                     if (!e)
                       r.error(
                           vk, v,
                           "must be the low byte of the element, 0x00 to 0xFF, not '" + s + "'");
                     else
                       sp.element = *e;
                   });
          d.safe_private.push_back(sp);
        },
        {"group", "creator", "element"});
}

void read_burned_in_allow(Reader& r, const YAML::Node& n, const std::string& k, Deidentify& d) {
  r.map(n, k,
        [&](const YAML::Node& m, const std::string& p) {
          BurnedInAllow b;
          r.string(m, p, "sop_class_uid", b.sop_class_uid, 64);
          r.string(m, p, "modality", b.modality, 16);
          r.string(m, p, "manufacturer", b.manufacturer, 64);
          r.string(m, p, "model", b.model, 64);
          r.boolean(m, p, "allow_marked_yes", b.allow_marked_yes);
          if (b.sop_class_uid.empty() && b.modality.empty() && b.manufacturer.empty() &&
              b.model.empty())
            r.error(k, n, "must name at least one of sop_class_uid, modality, manufacturer, model");
          d.burned_in_allow.push_back(std::move(b));
        },
        {"sop_class_uid", "modality", "manufacturer", "model", "allow_marked_yes"});
}

// One option name of PS3.15 Table E.1-1's columns, as written in the configuration.
bool apply_deid_option(const std::string& o, Deidentify& d, std::string& conflict) {
  if (o == "retain_uids")
    d.retain_uids = true;
  else if (o == "retain_device_identity")
    d.retain_device_identity = true;
  else if (o == "retain_institution_identity")
    d.retain_institution_identity = true;
  else if (o == "retain_patient_characteristics")
    d.retain_patient_characteristics = true;
  else if (o == "clean_descriptors")
    d.clean_descriptors = true;
  else if (o == "clean_structured_content")
    d.clean_structured_content = true;
  else if (o == "clean_graphics")
    d.clean_graphics = true;
  else if (o == "retain_longitudinal_full_dates" || o == "retain_longitudinal_modified_dates") {
    const std::string dates = o == "retain_longitudinal_full_dates" ? "full" : "modified";
    if (d.dates != "remove" && d.dates != dates)
      conflict =
          "retain_longitudinal_full_dates and retain_longitudinal_modified_dates exclude "
          "each other";
    d.dates = dates;
  } else {
    return false;
  }
  return true;
}

void read_deidentify(Reader& r, const YAML::Node& m, const std::string& p, Deidentify& d) {
  d.enabled = true;
  r.boolean(m, p, "enabled", d.enabled);
  r.scalar(m, p, "profile", [&](const YAML::Node& v, const std::string& k, const std::string& s) {
    if (s != "basic")
      r.error(k, v,
              "must be basic (the PS3.15 Basic Application Level Confidentiality Profile), not '" +
                  s + "'");
  });
  r.list(m, p, "options", "option names", [&](const YAML::Node& v, const std::string& k) {
    std::string conflict;
    if (!v.IsScalar() || !apply_deid_option(v.Scalar(), d, conflict))
      r.error(k, v,
              "unknown option (allowed: retain_uids, retain_device_identity, "
              "retain_institution_identity, retain_patient_characteristics, "
              "retain_longitudinal_full_dates, retain_longitudinal_modified_dates, "
              "clean_descriptors, clean_structured_content, clean_graphics; Retain Safe Private "
              "is the safe_private list)");
    else if (!conflict.empty())
      r.error(k, v, conflict);
  });
  r.list(m, p, "descriptor_allow_list", "reviewed descriptor values",
         [&](const YAML::Node& v, const std::string& k) {
           if (!v.IsScalar() || v.Scalar().empty() || v.Scalar().size() > 64)
             r.error(k, v, "must be a descriptor value of 1 to 64 characters");
           else
             d.descriptor_allow_list.push_back(v.Scalar());
         });
  if (!d.descriptor_allow_list.empty() && !d.clean_descriptors)
    r.error(Reader::join(p, "descriptor_allow_list"), m, "needs the clean_descriptors option");
  r.list(m, p, "safe_private", "{group, creator, element} entries",
         [&](const YAML::Node& v, const std::string& k) { read_safe_private(r, v, k, d); });
  r.list(m, p, "burned_in_allow", "rules",
         [&](const YAML::Node& v, const std::string& k) { read_burned_in_allow(r, v, k, d); });
}

void read_destination(Reader& r, const YAML::Node& n, const std::string& path, Destination& d) {
  r.map(
      n, path,
      [&](const YAML::Node& m, const std::string& p) {
        r.scalar(
            m, p, "name", [&](const YAML::Node& v, const std::string& k, const std::string& s) {
              bool ok = !s.empty() && s.size() <= 32;
              for (char c : s)
                ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_');
              if (!ok)
                r.error(k, v, "must be 1 to 32 letters, digits, '-' or '_'");
              else
                d.name = s;
            });
        if (d.name.empty() && !m["name"].IsDefined())
          r.error(Reader::join(p, "name"), m, "is required");
        r.scalar(
            m, p, "type", [&](const YAML::Node& v, const std::string& k, const std::string& s) {
              if (s != "stow-rs")
                r.error(k, v,
                        "must be stow-rs (dicom C-STORE destinations are not built yet), not '" +
                            s + "'");
              else
                d.type = s;
            });
        r.scalar(m, p, "url", [&](const YAML::Node& v, const std::string& k, const std::string& s) {
          if (s.rfind("http://", 0) != 0 && s.rfind("https://", 0) != 0)
            r.error(k, v, "must be an http:// or https:// URL of the DICOMweb service");
          else if (s.size() > 2048 || s.find_first_of(" \t\r\n") != std::string::npos)
            r.error(k, v, "is not a usable URL");
          else
            d.url = s;
        });
        if (!m["url"].IsDefined()) r.error(Reader::join(p, "url"), m, "is required");
        r.scalar(m, p, "withdrawal_notify_url",
                 [&](const YAML::Node& v, const std::string& k, const std::string& s) {
                   if (s.rfind("http://", 0) != 0 && s.rfind("https://", 0) != 0)
                     r.error(k, v, "must be an http:// or https:// URL");
                   else
                     d.withdrawal_notify_url = s;
                 });
        r.scalar(m, p, "consent",
                 [&](const YAML::Node& v, const std::string& k, const std::string& s) {
                   if (s != "opt-in" && s != "opt-out")
                     r.error(k, v, "must be opt-in or opt-out, not '" + s + "'");
                   else
                     d.consent_mode = s;
                 });
        if (m["auth"].IsDefined() && !m["auth"].IsNull())
          r.map(m["auth"], Reader::join(p, "auth"),
                [&](const YAML::Node& a, const std::string& ap) {
                  r.path(a, ap, "ca", d.auth.ca);
                  r.path(a, ap, "client_cert", d.auth.client_cert);
                  r.path(a, ap, "client_key", d.auth.client_key);
                  r.path(a, ap, "bearer_token_file", d.auth.bearer_token_file);
                  r.boolean(a, ap, "verify_peer", d.auth.verify_peer);
                  if (d.auth.client_cert.empty() != d.auth.client_key.empty())
                    r.error(ap, a, "client_cert and client_key go together");
                },
                {"ca", "client_cert", "client_key", "bearer_token_file", "verify_peer"});
        if (m["batch"].IsDefined() && !m["batch"].IsNull())
          r.map(m["batch"], Reader::join(p, "batch"),
                [&](const YAML::Node& b, const std::string& bp) {
                  r.integer(b, bp, "max_instances", d.batch_max_instances, 1, 1000);
                  r.size(b, bp, "max_bytes", d.batch_max_bytes, 1024, 4ull << 30);
                },
                {"max_instances", "max_bytes"});
        if (m["timeouts"].IsDefined() && !m["timeouts"].IsNull())
          r.map(m["timeouts"], Reader::join(p, "timeouts"),
                [&](const YAML::Node& t, const std::string& tp) {
                  r.duration(t, tp, "connect", d.connect_timeout, Duration(100), Duration(300'000));
                  r.duration(t, tp, "request", d.request_timeout, Duration(1000),
                             Duration(86'400'000));
                },
                {"connect", "request"});
        if (m["retry"].IsDefined() && !m["retry"].IsNull())
          r.map(m["retry"], Reader::join(p, "retry"),
                [&](const YAML::Node& t, const std::string& tp) {
                  r.duration(t, tp, "initial", d.retry_initial, Duration(10), Duration(86'400'000));
                  r.duration(t, tp, "max", d.retry_max, Duration(10), Duration(7 * 86'400'000LL));
                  r.duration(t, tp, "give_up_after", d.give_up_after, Duration(1000),
                             Duration(365 * 86'400'000LL));
                  if (d.retry_max < d.retry_initial)
                    r.error(tp, t, "max must not be less than initial");
                },
                {"initial", "max", "give_up_after"});
        if (m["circuit"].IsDefined() && !m["circuit"].IsNull())
          r.map(m["circuit"], Reader::join(p, "circuit"),
                [&](const YAML::Node& t, const std::string& tp) {
                  r.integer(t, tp, "failures", d.circuit_failures, 1, 1000);
                  r.duration(t, tp, "cooldown", d.circuit_cooldown, Duration(100),
                             Duration(86'400'000));
                },
                {"failures", "cooldown"});
        if (m["deidentify"].IsDefined() && !m["deidentify"].IsNull())
          r.map(m["deidentify"], Reader::join(p, "deidentify"),
                [&](const YAML::Node& dn, const std::string& dp) {
                  read_deidentify(r, dn, dp, d.deidentify);
                },
                {"enabled", "profile", "options", "descriptor_allow_list", "safe_private",
                 "burned_in_allow"});
      },
      {"name", "type", "url", "consent", "withdrawal_notify_url", "auth", "batch", "timeouts",
       "retry", "circuit", "deidentify"});
}

void read_hl7(Reader& r, const YAML::Node& h, const std::string& hp, Hl7Ingest& hl) {
  r.boolean(h, hp, "enabled", hl.enabled);
  r.scalar(h, hp, "bind", [&](const YAML::Node& v, const std::string& k, const std::string& s) {
    if (!valid_ipv4(s))
      r.error(k, v, "must be an IPv4 address, not '" + s + "'");
    else
      hl.bind = s;
  });
  r.integer(h, hp, "port", hl.port, 1, 65535);
  r.string(h, hp, "consent_field", hl.consent_field, 32);
  r.string(h, hp, "consent_withdraw_value", hl.consent_withdraw_value, 16);
  r.string(h, hp, "consent_grant_value", hl.consent_grant_value, 16);
  r.integer(h, hp, "max_connections", hl.max_connections, 1, 256);
}

void read_ingest(Reader& r, const YAML::Node& i, const std::string& ip, Ingest& in) {
  if (i["dicom"].IsDefined()) read_dicom(r, i["dicom"], Reader::join(ip, "dicom"), in.dicom);
  read_folders(i, ip, in.folders, r.errors());
  if (i["hl7"].IsDefined() && !i["hl7"].IsNull())
    r.map(i["hl7"], Reader::join(ip, "hl7"),
          [&](const YAML::Node& h, const std::string& hp) { read_hl7(r, h, hp, in.hl7); },
          {"enabled", "bind", "port", "consent_field", "consent_withdraw_value",
           "consent_grant_value", "max_connections"});
  r.scalar(i, ip, "new_versions",
           [&](const YAML::Node& v, const std::string& k, const std::string& s) {
             if (s != "send" && s != "hold")
               r.error(k, v, "must be send or hold, not '" + s + "'");
             else
               in.new_versions = s;
           });
}

bool tag_shape(const std::string& tag) {
  const auto hex = [](const std::string& h) {
    return h.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
  };
  return tag.size() == 11 && tag[0] == '(' && tag[5] == ',' && tag[10] == ')' &&
         hex(tag.substr(1, 4)) && hex(tag.substr(6, 4));
}

void read_coercion(Reader& r, const YAML::Node& cn, const std::string& cp, Coercion& co) {
  r.string(cn, cp, "institution_name", co.institution_name, 64);
  r.string(cn, cp, "issuer_of_patient_id", co.issuer_of_patient_id, 64);
  r.boolean(cn, cp, "fill_health_number_from_mrn", co.fill_health_number_from_mrn);
  const YAML::Node set = cn["set"];
  const std::string sk = Reader::join(cp, "set");
  if (!set.IsDefined() || set.IsNull()) return;
  if (!set.IsMap()) {
    r.error(sk, set, "must map \"(gggg,eeee)\" tags to values");
    return;
  }
  for (const auto& kv : set) {
    const auto tag = kv.first.as<std::string>();
    if (!tag_shape(tag) || !kv.second.IsScalar())
      r.error(sk + "." + tag, kv.first, "must be a tag written (gggg,eeee) with a single value");
    else
      co.set.emplace_back(tag, kv.second.Scalar());
  }
}

void read_policy(Reader& r, const YAML::Node& pn, const std::string& pp, Policy& po) {
  r.duration(pn, pp, "stable_age", po.stable_age, Duration(0), Duration(86'400'000));
  r.string(pn, pp, "health_number_issuer", po.health_number_issuer, 64);
  if (pn["validation"].IsDefined() && !pn["validation"].IsNull())
    r.map(pn["validation"], Reader::join(pp, "validation"),
          [&](const YAML::Node& vn, const std::string& vp) {
            r.scalar(vn, vp, "profile",
                     [&](const YAML::Node& v, const std::string& k, const std::string& s) {
                       if (s != "ontario-dir" && s != "none")
                         r.error(k, v, "must be ontario-dir or none, not '" + s + "'");
                       else
                         po.validation_profile = s;
                     });
          },
          {"profile"});
  if (pn["coercion"].IsDefined() && !pn["coercion"].IsNull())
    r.map(
        pn["coercion"], Reader::join(pp, "coercion"),
        [&](const YAML::Node& cn, const std::string& cp) { read_coercion(r, cn, cp, po.coercion); },
        {"institution_name", "issuer_of_patient_id", "fill_health_number_from_mrn", "set"});
}

void read_audit_syslog(Reader& r, const YAML::Node& sn, const std::string& sp, AuditSyslog& a) {
  r.boolean(sn, sp, "enabled", a.enabled);
  r.string(sn, sp, "host", a.host, 253);
  r.integer(sn, sp, "port", a.port, 1, 65535);
  r.path(sn, sp, "ca", a.ca);
  r.path(sn, sp, "client_cert", a.client_cert);
  r.path(sn, sp, "client_key", a.client_key);
  r.boolean(sn, sp, "verify_peer", a.verify_peer);
  if (a.enabled && a.host.empty())
    r.error(Reader::join(sp, "host"), sn, "is required when enabled");
}

void read_metrics(Reader& r, const YAML::Node& mn, const std::string& mp, Metrics& me) {
  r.boolean(mn, mp, "enabled", me.enabled);
  r.scalar(mn, mp, "bind", [&](const YAML::Node& v, const std::string& k, const std::string& s) {
    if (!valid_ipv4(s))
      r.error(k, v, "must be an IPv4 address such as 127.0.0.1, not '" + s + "'");
    else
      me.bind = s;
  });
  r.integer(mn, mp, "port", me.port, 0, 65535);
}

void read_destinations(Reader& r, const YAML::Node& m, std::vector<Destination>& out) {
  YAML::Node dests = m["destinations"];
  if (!dests.IsDefined() || dests.IsNull()) {
    r.error("destinations", m, "is required: list at least one destination");
    return;
  }
  if (!dests.IsSequence()) {
    r.error("destinations", dests, "must be a list of destinations");
    return;
  }
  std::set<std::string> names;
  for (std::size_t i = 0; i < dests.size(); ++i) {
    Destination d;
    std::string dp = "destinations[" + std::to_string(i) + "]";
    read_destination(r, dests[i], dp, d);
    if (!d.name.empty() && !names.insert(d.name).second)
      r.error(dp + ".name", dests[i]["name"], "duplicates another destination's name");
    out.push_back(std::move(d));
  }
  if (dests.size() == 0) r.error("destinations", dests, "must list at least one destination");
}

// One function per top-level section; each section's reader lists the keys it allows.
void read_root(Reader& r, const YAML::Node& root, Config& c) {
  r.map(root, "",
        [&](const YAML::Node& m, const std::string& p) {
          if (m["facility"].IsDefined())
            r.map(m["facility"], "facility",
                  [&](const YAML::Node& f, const std::string& fp) {
                    r.string(f, fp, "name", c.facility_name, 64);
                    r.string(f, fp, "id", c.facility_id, 64);
                  },
                  {"name", "id"});
          r.path(m, p, "state_dir", c.state_dir);
          r.path(m, p, "control_socket", c.control_socket);
          if (c.control_socket.string().size() > 100)
            r.error("control_socket", m["control_socket"],
                    "must be at most 100 characters (a Unix socket path)");
          if (m["log"].IsDefined())
            r.map(m["log"], "log",
                  [&](const YAML::Node& l, const std::string& lp) {
                    r.scalar(l, lp, "level",
                             [&](const YAML::Node& v, const std::string& k, const std::string& s) {
                               if (s != "debug" && s != "info" && s != "warn" && s != "error")
                                 r.error(k, v, "must be one of debug, info, warn, error");
                               else
                                 c.log_level = s;
                             });
                  },
                  {"level"});
          if (m["ingest"].IsDefined())
            r.map(m["ingest"], "ingest",
                  [&](const YAML::Node& i, const std::string& ip) {
                    read_ingest(r, i, ip, c.ingest);
                  },
                  {"dicom", "hl7", "new_versions", "folders"});
          if (m["policy"].IsDefined())
            r.map(m["policy"], "policy",
                  [&](const YAML::Node& pn, const std::string& pp) {
                    read_policy(r, pn, pp, c.policy);
                  },
                  {"stable_age", "health_number_issuer", "validation", "coercion"});
          if (m["retention"].IsDefined())
            r.map(m["retention"], "retention",
                  [&](const YAML::Node& rn, const std::string& rp) {
                    r.size(rn, rp, "spool_floor", c.retention.spool_floor, 0, 1ull << 50);
                  },
                  {"spool_floor"});
          if (m["audit"].IsDefined() && !m["audit"].IsNull())
            r.map(m["audit"], "audit",
                  [&](const YAML::Node& an, const std::string& ap) {
                    if (an["syslog"].IsDefined() && !an["syslog"].IsNull())
                      r.map(an["syslog"], Reader::join(ap, "syslog"),
                            [&](const YAML::Node& sn, const std::string& sp) {
                              read_audit_syslog(r, sn, sp, c.audit_syslog);
                            },
                            {"enabled", "host", "port", "ca", "client_cert", "client_key",
                             "verify_peer"});
                  },
                  {"syslog"});
          if (m["metrics"].IsDefined() && !m["metrics"].IsNull())
            r.map(m["metrics"], "metrics",
                  [&](const YAML::Node& mn, const std::string& mp) {
                    read_metrics(r, mn, mp, c.metrics);
                  },
                  {"enabled", "bind", "port"});
          if (m["deidentification"].IsDefined() && !m["deidentification"].IsNull())
            r.map(m["deidentification"], "deidentification",
                  [&](const YAML::Node& dn, const std::string& dp) {
                    r.path(dn, dp, "key_file", c.deid_key_file);
                  },
                  {"key_file"});
          read_destinations(r, m, c.destinations);
        },
        {"facility", "state_dir", "control_socket", "log", "ingest", "policy", "destinations",
         "retention", "metrics", "audit", "deidentification"});
}

}  // namespace

LoadResult load_string(const std::string& yaml, const std::filesystem::path& source) {
  LoadResult result;
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    result.errors.push_back({"", e.mark.line + 1, "not valid YAML: " + e.msg});
    return result;
  }
  if (!root.IsDefined() || root.IsNull()) {
    result.errors.push_back({"", 0, "the file is empty"});
    return result;
  }
  Config c;
  c.source = source;
  Reader reader(result.errors);
  try {
    read_root(reader, root, c);
  } catch (const YAML::Exception& e) {
    result.errors.push_back({"", e.mark.line + 1, "cannot read: " + e.msg});
  }
  if (result.errors.empty()) result.config = std::move(c);
  return result;
}

LoadResult load_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) {
    LoadResult r;
    r.errors.push_back({"", 0, "cannot open the configuration file"});
    return r;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return load_string(ss.str(), path);
}

}  // namespace dirgw::config
