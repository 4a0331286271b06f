#include "config/config.h"

#include "config/dicom_ingest.h"
#include "config/reader.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "config/reader.h"
#include "policy/validate/finding_codes.h"
#include "scheduler/windows.h"

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

std::string format_duration(Duration d) {
  const long long ms = d.count();
  for (const auto& [unit, size] : {std::pair<const char*, long long>{"d", 86'400'000},
                                   {"h", 3'600'000},
                                   {"m", 60'000},
                                   {"s", 1000}})
    if (ms != 0 && ms % size == 0) return std::to_string(ms / size) + unit;
  return std::to_string(ms) + "ms";
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

using detail::Reader;
using detail::valid_ae_title;
using detail::valid_hl7_field_path;
using detail::valid_ipv4;

void read_dicom(Reader& r, const YAML::Node& n, const std::string& path, DicomIngest& d) {
  r.map(n, path,
        [&](const YAML::Node& m, const std::string& p) {
          r.boolean(m, p, "enabled", d.enabled);
          r.ae_title(m, p, "ae_title", d.ae_title);
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
          r.integer(m, p, "max_items", d.max_items, 1000, 50'000'000);
          detail::read_dicom_door(r, m, p, d);
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
          read_dicom_negotiation(m, p, d, r.errors());
          if (d.enabled && d.allowed_callers.empty() && d.callers.empty())
            r.error(key, callers.IsDefined() ? callers : m,
                    "must list at least one calling AE title (\"*\" admits any caller)");
        },
        {"enabled", "ae_title", "bind", "port", "allowed_callers", "max_associations", "max_pdu",
         "acse_timeout", "dimse_timeout", "max_object_size", "max_items", "tls", "callers",
         "stop_grace", "transfer_syntaxes", "extra_sop_classes"});
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
  detail::read_hl7_door(r, h, hp, hl);
  detail::read_hl7_reports(r, h, hp, hl.reports);
  if (hl.reports.enabled && !hl.enabled)
    r.error(Reader::join(hp, "reports.enabled"), h["reports"]["enabled"],
            "needs ingest.hl7.enabled: true (reports arrive on the HL7 listener)");
}

void read_ingest(Reader& r, const YAML::Node& i, const std::string& ip, Ingest& in) {
  if (i["dicom"].IsDefined()) read_dicom(r, i["dicom"], Reader::join(ip, "dicom"), in.dicom);
  read_folders(i, ip, in.folders, r.errors());
  read_pull(i, ip, in.dicom, in.pull, r.errors());
  if (i["hl7"].IsDefined() && !i["hl7"].IsNull())
    r.map(i["hl7"], Reader::join(ip, "hl7"),
          [&](const YAML::Node& h, const std::string& hp) { read_hl7(r, h, hp, in.hl7); },
          {"enabled", "bind", "port", "consent_field", "consent_withdraw_value",
           "consent_grant_value", "max_connections", "idle_timeout", "message_timeout", "reports",
           "max_message_size", "processing_ids"});
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

void read_validation_adjustments(Reader& r, const YAML::Node& vn, const std::string& vp,
                                 ValidationAdjustments& out) {
  r.list(
      vn, vp, "allow_modalities", "modality codes", [&](const YAML::Node& v, const std::string& k) {
        if (!v.IsScalar() || !detail::modality_code(v.Scalar()))
          r.error(k, v, "must be a modality code such as OP or SEG (upper case, 1-16 characters)");
        else
          out.allow_modalities.push_back(v.Scalar());
      });
  // Left at the sentinel when absent or refused (the limit is at most 4 GiB).
  std::uint64_t limit = UINT64_MAX;
  r.size(vn, vp, "max_private_value", limit, 0, std::uint64_t{1} << 32);
  if (limit != UINT64_MAX) out.max_private_value = limit;
  r.list(
      vn, vp, "accept_findings", "finding codes", [&](const YAML::Node& v, const std::string& k) {
        // "code" or "code (gggg,eeee)".
        const std::string entry = v.IsScalar() ? v.Scalar() : "";
        const auto space = entry.find(' ');
        std::string tag = space == std::string::npos ? "" : entry.substr(space + 1);
        for (char& ch : tag) ch = static_cast<char>(std::toupper(ch));  // as findings write it
        const auto* code = policy::find_finding_code(entry.substr(0, space));
        if (code == nullptr || (space != std::string::npos && !tag_shape(tag)))
          r.error(k, v,
                  "must be a validation finding code (docs/validation.md), such as "
                  "charset.unknown, or a code and a tag, such as \"attribute.missing "
                  "(0008,0050)\"");
        else if (!code->acceptable)
          r.error(k, v,
                  "'" + std::string(code->code) +
                      "' cannot be accepted: an object with it is always quarantined "
                      "(docs/validation.md)");
        else if (code->needs_tag && tag.empty())
          r.error(k, v,
                  "'" + std::string(code->code) +
                      "' is accepted only for a named attribute, e.g. \"" +
                      std::string(code->code) + " (0008,0050)\"");
        else
          out.accept_findings.push_back(tag.empty() ? entry : std::string(code->code) + " " + tag);
      });
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
            read_validation_adjustments(r, vn, vp, po.validation);
          },
          {"profile", "allow_modalities", "max_private_value", "accept_findings"});
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

// report: { folder: /var/lib/dirgw/reports, at: "01:00" } (docs/report.md).
void read_report(Reader& r, const YAML::Node& n, const std::string& p, Report& out) {
  r.path(n, p, "folder", out.folder);
  r.scalar(n, p, "at", [&](const YAML::Node& v, const std::string& k, const std::string& s) {
    const bool shape = s.size() == 5 && s[2] == ':' &&
                       std::isdigit(static_cast<unsigned char>(s[0])) &&
                       std::isdigit(static_cast<unsigned char>(s[1])) &&
                       std::isdigit(static_cast<unsigned char>(s[3])) &&
                       std::isdigit(static_cast<unsigned char>(s[4]));
    const int h = shape ? (s[0] - '0') * 10 + (s[1] - '0') : -1;
    const int m = shape ? (s[3] - '0') * 10 + (s[4] - '0') : -1;
    if (h < 0 || h > 23 || m < 0 || m > 59)
      r.error(k, v, "must be a time of day HH:MM from 00:00 to 23:59, not '" + s + "'");
    else
      out.at_minute = h * 60 + m;
  });
}

void read_timezone(Reader& r, const YAML::Node& f, const std::string& fp, std::string& out) {
  r.scalar(f, fp, "timezone", [&](const YAML::Node& v, const std::string& k, const std::string& s) {
    // Any window will do: make() is what resolves the zone in the system tzdb.
    auto set = scheduler::WindowSet::make({scheduler::Window{0x7f, 0, 1440}}, s);
    if (!set)
      r.error(k, v, set.error().detail);
    else
      out = s;
  });
}

void read_stat_attribute(Reader& r, const YAML::Node& n, const std::string& k, Priority& pr) {
  r.map(n, k,
        [&](const YAML::Node& m, const std::string& p) {
          StatAttribute a;
          r.scalar(m, p, "tag",
                   [&](const YAML::Node& v, const std::string& vk, const std::string& s) {
                     if (!tag_shape(s))
                       r.error(vk, v, "must be a tag written (gggg,eeee), e.g. (0040,1003)");
                     else
                       a.tag = s;
                   });
          r.list(m, p, "values", "values", [&](const YAML::Node& v, const std::string& vk) {
            if (!v.IsScalar() || v.Scalar().empty() || v.Scalar().size() > 64)
              r.error(vk, v, "must be a value of 1 to 64 characters");
            else
              a.values.push_back(v.Scalar());
          });
          if (!m["tag"].IsDefined()) r.error(Reader::join(p, "tag"), m, "is required");
          if (a.values.empty())
            r.error(Reader::join(p, "values"), m, "must list at least one value");
          pr.stat_attributes.push_back(std::move(a));
        },
        {"tag", "values"});
}

void read_hl7_orders(Reader& r, const YAML::Node& n, const std::string& p, Hl7Orders& o) {
  r.boolean(n, p, "enabled", o.enabled);
  for (auto [key, out] : {std::pair{"accession_fields", &o.accession_fields},
                          std::pair{"priority_fields", &o.priority_fields}}) {
    if (!n[key].IsDefined() || n[key].IsNull()) continue;
    out->clear();
    r.list(n, p, key, "HL7 field paths such as OBR-18",
           [&, out = out](const YAML::Node& v, const std::string& k) {
             if (!v.IsScalar() || !valid_hl7_field_path(v.Scalar()))
               r.error(k, v,
                       "must be an HL7 field path SEG-FIELD[.COMPONENT], e.g. OBR-18 or ORC-7.6");
             else
               out->push_back(v.Scalar());
           });
    if (n[key].IsSequence() && n[key].size() == 0)
      r.error(Reader::join(p, key), n[key], "must list at least one field");
  }
  if (n["stat_values"].IsDefined() && !n["stat_values"].IsNull()) {
    o.stat_values.clear();
    r.list(n, p, "stat_values", "priority codes", [&](const YAML::Node& v, const std::string& k) {
      if (!v.IsScalar() || v.Scalar().empty() || v.Scalar().size() > 16)
        r.error(k, v, "must be a priority code of 1 to 16 characters (HL7 table 0027: S, A, ...)");
      else
        o.stat_values.push_back(v.Scalar());
    });
    if (n["stat_values"].IsSequence() && n["stat_values"].size() == 0)
      r.error(Reader::join(p, "stat_values"), n["stat_values"], "must list at least one value");
  }
}

void read_priority(Reader& r, const YAML::Node& pn, const std::string& pp, Priority& pr) {
  if (pn["hl7_orders"].IsDefined() && !pn["hl7_orders"].IsNull())
    r.map(
        pn["hl7_orders"], Reader::join(pp, "hl7_orders"),
        [&](const YAML::Node& n, const std::string& p) { read_hl7_orders(r, n, p, pr.hl7_orders); },
        {"enabled", "accession_fields", "priority_fields", "stat_values"});
  r.list(pn, pp, "stat_attributes", "{tag, values} rules",
         [&](const YAML::Node& v, const std::string& k) { read_stat_attribute(r, v, k, pr); });
  r.list(pn, pp, "stat_calling_aes", "calling AE titles",
         [&](const YAML::Node& v, const std::string& k) {
           if (!v.IsScalar() || !valid_ae_title(v.Scalar()))
             r.error(k, v, "must be an AE title (1 to 16 characters)");
           else
             pr.stat_calling_aes.push_back(v.Scalar());
         });
}

// Over 80 lines: the list of top-level sections, each handed to its reader with its allowed
// keys; one place to see the whole file's shape.
// One function per top-level section; each section's reader lists the keys it allows.
void read_root(Reader& r, const YAML::Node& root, Config& c) {
  r.map(root, "",
        [&](const YAML::Node& m, const std::string& p) {
          if (m["facility"].IsDefined())
            r.map(m["facility"], "facility",
                  [&](const YAML::Node& f, const std::string& fp) {
                    r.string(f, fp, "name", c.facility_name, 64);
                    r.string(f, fp, "id", c.facility_id, 64);
                    read_timezone(r, f, fp, c.timezone);
                  },
                  {"name", "id", "timezone"});
          if (m["forwarding"].IsDefined() && !m["forwarding"].IsNull())
            r.map(m["forwarding"], "forwarding",
                  [&](const YAML::Node& fw, const std::string& fwp) {
                    detail::read_bandwidth(r, fw, fwp, "bandwidth", c.forwarding_bandwidth);
                  },
                  {"bandwidth"});
          if (m["priority"].IsDefined() && !m["priority"].IsNull())
            r.map(m["priority"], "priority",
                  [&](const YAML::Node& pn, const std::string& pp) {
                    read_priority(r, pn, pp, c.priority);
                  },
                  {"stat_attributes", "stat_calling_aes", "hl7_orders"});
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
                  {"dicom", "hl7", "new_versions", "folders", "pull"});
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
                    r.duration(rn, rp, "keep_after_verified", c.retention.keep_after_verified,
                               Duration(0), Duration(3650 * 86'400'000LL));
                    r.integer(rn, rp, "report_days", c.retention.report_days, 0, 36500);
                  },
                  {"spool_floor", "keep_after_verified", "report_days"});
          if (m["codecs"].IsDefined() && !m["codecs"].IsNull())
            r.map(m["codecs"], "codecs",
                  [&](const YAML::Node& cn, const std::string& cp) {
                    r.duration(cn, cp, "timeout", c.codecs.timeout, Duration(100),
                               Duration(86'400'000LL));
                    r.size(cn, cp, "memory_limit", c.codecs.memory_limit, 256ull << 20, 1ull << 40);
                  },
                  {"timeout", "memory_limit"});
          if (m["report"].IsDefined() && !m["report"].IsNull())
            r.map(m["report"], "report",
                  [&](const YAML::Node& rn, const std::string& rp) {
                    read_report(r, rn, rp, c.report);
                    read_report_pacs(rn, rp, c.ingest.pull, c.ingest.dicom, c.report.pacs,
                                     r.errors());
                  },
                  {"folder", "at", "pacs"});
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
          detail::read_destinations(r, m, c.destinations);
          read_priors(m, c.destinations, c.priors, r.errors());
          for (std::size_t i = 0; i < c.destinations.size(); ++i)
            if (c.destinations[i].require_report.enabled && !c.ingest.hl7.reports.enabled)
              r.error("destinations[" + std::to_string(i) + "].require_report",
                      m["destinations"][i]["require_report"],
                      "needs ingest.hl7.reports.enabled: true (the reports it waits for come "
                      "over HL7)");
        },
        {"facility", "state_dir", "control_socket", "log", "ingest", "policy", "destinations",
         "retention", "metrics", "audit", "deidentification", "forwarding", "priority", "priors",
         "report", "codecs"});
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

namespace detail {

// An HL7 field path as the order reader takes it: SEG-FIELD[.COMPONENT[.SUBCOMPONENT]], e.g.
// OBR-18, ORC-7.6 (hl7::Path accepts more; a configuration needs no more).
bool valid_hl7_field_path(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size() && i < 3 &&
         (std::isupper(static_cast<unsigned char>(s[i])) ||
          std::isdigit(static_cast<unsigned char>(s[i]))))
    ++i;
  if (i != 3 || i >= s.size() || s[i] != '-') return false;
  int numbers = 0;
  for (++i; i <= s.size(); ++i) {
    std::size_t start = i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    if (i == start || i - start > 3 || s[start] == '0') return false;
    ++numbers;
    if (i == s.size()) break;
    if (s[i] != '.') return false;
  }
  return numbers >= 1 && numbers <= 3;
}

}  // namespace detail

}  // namespace dirgw::config
