// The destinations[] section: one reader per sub-block (auth, schedule, bandwidth, dimse,
// deidentify...), each listing the keys it allows.
#include <filesystem>
#include <map>
#include <set>

#include "common/files.h"
#include "config/reader.h"
#include "scheduler/windows.h"

namespace dirgw::config::detail {

namespace {

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
  else if (o == "retain_safe_private")
    d.safe_private_table = true;
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
              "clean_descriptors, clean_structured_content, clean_graphics, "
              "retain_safe_private; the site's own safe private attributes are the safe_private "
              "list)");
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

void read_oauth2(Reader& r, const YAML::Node& o, const std::string& op, Auth::OAuth2& a) {
  r.scalar(o, op, "token_url",
           [&](const YAML::Node& v, const std::string& k, const std::string& s) {
             if (s.rfind("https://", 0) != 0 && s.rfind("http://127.", 0) != 0 &&
                 s.rfind("http://localhost", 0) != 0 && s.rfind("http://[::1]", 0) != 0)
               r.error(k, v, "must be an https:// URL (http:// only to a loopback address)");
             else
               a.token_url = s;
           });
  r.string(o, op, "client_id", a.client_id, 256);
  r.path(o, op, "client_secret_file", a.client_secret_file);
  // A secret file that exists must be private now (a missing one is refused when dirgwd starts,
  // so that a configuration can be checked on another machine): not a symbolic link, no group
  // or other access (common/files.h).
  std::error_code ec;
  if (!a.client_secret_file.empty() &&
      std::filesystem::symlink_status(a.client_secret_file, ec).type() !=
          std::filesystem::file_type::not_found &&
      !ec)
    if (auto ok = check_private_file(a.client_secret_file, "client secret file"); !ok)
      r.error(Reader::join(op, "client_secret_file"), o["client_secret_file"], ok.error().detail);
  r.string(o, op, "scope", a.scope, 1024);
  for (const char* key : {"token_url", "client_id", "client_secret_file"})
    if (!o[key].IsDefined()) r.error(Reader::join(op, key), o, "is required");
}

void read_auth(Reader& r, const YAML::Node& a, const std::string& ap, Auth& auth) {
  r.path(a, ap, "ca", auth.ca);
  r.path(a, ap, "client_cert", auth.client_cert);
  r.path(a, ap, "client_key", auth.client_key);
  r.path(a, ap, "bearer_token_file", auth.bearer_token_file);
  r.boolean(a, ap, "verify_peer", auth.verify_peer);
  if (auth.client_cert.empty() != auth.client_key.empty())
    r.error(ap, a, "client_cert and client_key go together");
  if (a["oauth2"].IsDefined() && !a["oauth2"].IsNull()) {
    r.map(a["oauth2"], Reader::join(ap, "oauth2"),
          [&](const YAML::Node& o, const std::string& op) { read_oauth2(r, o, op, auth.oauth2); },
          {"token_url", "client_id", "client_secret_file", "scope"});
    if (a["bearer_token_file"].IsDefined())
      r.error(Reader::join(ap, "oauth2"), a["oauth2"],
              "excludes bearer_token_file: use one or the other");
  }
}

// retry.pacing: self-pacing after a 429/503 (docs/scaling.md).
void read_pacing(Reader& r, const YAML::Node& t, const std::string& tp, Destination::Pacing& p) {
  if (!t["pacing"].IsDefined() || t["pacing"].IsNull()) return;
  r.map(t["pacing"], Reader::join(tp, "pacing"),
        [&](const YAML::Node& n, const std::string& np) {
          r.boolean(n, np, "enabled", p.enabled);
          r.number(n, np, "decrease", p.decrease, 0.1, 0.95);
          r.number(n, np, "increase", p.increase, 0.01, 1000);
          r.duration(n, np, "release_after", p.release_after, Duration(1000), Duration(86'400'000));
        },
        {"enabled", "decrease", "increase", "release_after"});
}

void read_scheduling(Reader& r, const YAML::Node& m, const std::string& p, Destination& d) {
  if (m["schedule"].IsDefined() && !m["schedule"].IsNull())
    r.map(
        m["schedule"], Reader::join(p, "schedule"),
        [&](const YAML::Node& sn, const std::string& sp) {
          read_window_specs(r, sn, sp, "windows", d.schedule.windows);
          if (sn["windows"].IsDefined() && sn["windows"].IsSequence() && sn["windows"].size() == 0)
            r.error(Reader::join(sp, "windows"), sn["windows"],
                    "must list at least one window (leave schedule out to send at any time)");
          r.boolean(sn, sp, "stat_bypass", d.schedule.stat_bypass);
        },
        {"windows", "stat_bypass"});
  read_bandwidth(r, m, p, "bandwidth", d.bandwidth);
  if (d.type == "stow-rs") d.concurrency = kDefaultStowRsConcurrency;
  r.integer(m, p, "concurrency", d.concurrency, 1, 64);
  r.boolean(m, p, "send_while_receiving", d.send_while_receiving);
}

// "jpeg-ls-lossless" / "off", or {to, max_pixel_bytes}.
void read_transcode(Reader& r, const YAML::Node& m, const std::string& p, Transcode& t) {
  const YAML::Node n = m["transcode"];
  if (!n.IsDefined() || n.IsNull()) return;
  auto target = [&](const YAML::Node& v, const std::string& k, const std::string& s) {
    if (s == "jpeg-ls-lossless")
      t.to = s;
    else if (s == "off" || s == "none" || s == "false")
      t.to.clear();
    else
      r.error(k, v,
              "must be jpeg-ls-lossless or off, not '" + s + "' (transcoding is never lossy)");
  };
  if (n.IsScalar()) {
    r.scalar(m, p, "transcode", target);
    return;
  }
  r.map(n, Reader::join(p, "transcode"),
        [&](const YAML::Node& tn, const std::string& tp) {
          r.scalar(tn, tp, "to", target);
          if (!tn["to"].IsDefined()) r.error(Reader::join(tp, "to"), tn, "is required");
          r.size(tn, tp, "max_pixel_bytes", t.max_pixel_bytes, 1024, 1ull << 30);
          r.boolean(tn, tp, "syntax_parameter", t.syntax_parameter);
        },
        {"to", "max_pixel_bytes", "syntax_parameter"});
}

void read_dimse_block(Reader& r, const YAML::Node& m, const std::string& p, Destination& d) {
  const std::string key = Reader::join(p, "dimse");
  if (!m["dimse"].IsDefined() || m["dimse"].IsNull()) {
    r.error(key, m, "is required for type dimse ({ae_title, host, port})");
    return;
  }
  auto& x = d.dimse;
  r.map(m["dimse"], key,
        [&](const YAML::Node& n, const std::string& np) {
          r.ae_title(n, np, "ae_title", x.ae_title);
          r.ae_title(n, np, "calling_ae", x.calling_ae);
          r.string(n, np, "host", x.host, 253);
          r.integer(n, np, "port", x.port, 1, 65535);
          r.boolean(n, np, "tls", x.tls);
          r.path(n, np, "ca", x.ca);
          r.path(n, np, "client_cert", x.client_cert);
          r.path(n, np, "client_key", x.client_key);
          r.boolean(n, np, "verify_peer", x.verify_peer);
          r.boolean(n, np, "verify_hostname", x.verify_hostname);
          r.scalar(n, np, "decompress",
                   [&](const YAML::Node& v, const std::string& k, const std::string& s) {
                     if (s == "always" || s == "lossless" || s == "never")
                       x.decompress = s;
                     else
                       r.error(k, v, "must be always, lossless or never, not '" + s + "'");
                   });
          for (const char* k : {"ae_title", "host"})
            if (!n[k].IsDefined()) r.error(Reader::join(np, k), n, "is required");
          if (x.client_cert.empty() != x.client_key.empty())
            r.error(np, n, "client_cert and client_key go together");
          if (!x.tls && (!x.ca.empty() || !x.client_cert.empty()))
            r.error(Reader::join(np, "tls"), n, "must be true when ca or client_cert is given");
        },
        {"ae_title", "calling_ae", "host", "port", "tls", "ca", "client_cert", "client_key",
         "verify_peer", "verify_hostname", "decompress"});
  if (m["url"].IsDefined()) r.error(Reader::join(p, "url"), m["url"], "is for stow-rs only");
}

// verify: none | qido | storage-commitment, or {mode, delay, retry, max_resends, page_size,
// timeout}. qido for stow-rs only, storage-commitment for dimse only.
void read_verify(Reader& r, const YAML::Node& m, const std::string& p, Destination& d) {
  if (d.type == "dimse") d.verify.mode = "none";
  const YAML::Node n = m["verify"];
  if (!n.IsDefined() || n.IsNull()) return;
  const std::string key = Reader::join(p, "verify");
  auto mode = [&](const YAML::Node& v, const std::string& k, const std::string& s) {
    if (s != "qido" && s != "none" && s != "storage-commitment")
      r.error(k, v, "must be qido, storage-commitment or none, not '" + s + "'");
    else if (s == "qido" && d.type == "dimse")
      r.error(k, v, "qido needs a stow-rs destination; use storage-commitment or none for dimse");
    else if (s == "storage-commitment" && d.type != "dimse")
      r.error(k, v, "storage-commitment needs a dimse destination; use qido or none for stow-rs");
    else
      d.verify.mode = s;
  };
  if (n.IsScalar()) {
    r.scalar(m, p, "verify", mode);
    return;
  }
  auto& v = d.verify;
  r.map(n, key,
        [&](const YAML::Node& vn, const std::string& vp) {
          r.scalar(vn, vp, "mode", mode);
          r.duration(vn, vp, "delay", v.delay, Duration(0), Duration(7 * 86'400'000LL));
          r.duration(vn, vp, "retry", v.retry, Duration(100), Duration(86'400'000));
          r.integer(vn, vp, "max_resends", v.max_resends, 0, 100);
          r.integer(vn, vp, "page_size", v.page_size, 1, 10000);
          r.duration(vn, vp, "timeout", v.timeout, Duration(100), Duration(600'000));
        },
        {"mode", "delay", "retry", "max_resends", "page_size", "timeout"});
}

// require_report: true | false | {max_wait: 4h}. That reports are on is checked by the caller.
void read_require_report(Reader& r, const YAML::Node& m, const std::string& p, Destination& d) {
  const YAML::Node n = m["require_report"];
  if (!n.IsDefined() || n.IsNull()) return;
  if (n.IsScalar()) {
    r.boolean(m, p, "require_report", d.require_report.enabled);
    return;
  }
  r.map(n, Reader::join(p, "require_report"),
        [&](const YAML::Node& rn, const std::string& rp) {
          d.require_report.enabled = true;
          r.duration(rn, rp, "max_wait", d.require_report.max_wait, Duration(1000),
                     Duration(30 * 86'400'000LL));
        },
        {"max_wait"});
}

// Over 80 lines: a flat list of a destination's keys, one reader call each (the nested blocks
// have readers of their own); splitting it would only scatter the list.
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
        r.scalar(m, p, "type",
                 [&](const YAML::Node& v, const std::string& k, const std::string& s) {
                   if (s != "stow-rs" && s != "dimse")
                     r.error(k, v, "must be stow-rs or dimse, not '" + s + "'");
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
        if (d.type == "stow-rs" && !m["url"].IsDefined())
          r.error(Reader::join(p, "url"), m, "is required");
        if (d.type == "dimse") read_dimse_block(r, m, p, d);
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
        r.scalar(m, p, "big_endian",
                 [&](const YAML::Node& v, const std::string& k, const std::string& s) {
                   if (s != "send" && s != "convert" && s != "refuse")
                     r.error(k, v, "must be send, convert or refuse, not '" + s + "'");
                   else
                     d.big_endian = s;
                 });
        r.scalar(m, p, "un_elements",
                 [&](const YAML::Node& v, const std::string& k, const std::string& s) {
                   if (s != "decode" && s != "send")
                     r.error(k, v, "must be decode or send, not '" + s + "'");
                   else
                     d.un_elements = s;
                 });
        if (m["auth"].IsDefined() && !m["auth"].IsNull())
          r.map(m["auth"], Reader::join(p, "auth"),
                [&](const YAML::Node& a, const std::string& ap) { read_auth(r, a, ap, d.auth); },
                {"ca", "client_cert", "client_key", "bearer_token_file", "verify_peer", "oauth2"});
        read_scheduling(r, m, p, d);
        read_transcode(r, m, p, d.transcode);
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
                  r.duration(t, tp, "retry_after_max", d.retry_after_max, Duration(1000),
                             Duration(86'400'000));
                  if (d.retry_max < d.retry_initial)
                    r.error(tp, t, "max must not be less than initial");
                  read_pacing(r, t, tp, d.pacing);
                },
                {"initial", "max", "give_up_after", "retry_after_max", "pacing"});
        if (m["circuit"].IsDefined() && !m["circuit"].IsNull())
          r.map(m["circuit"], Reader::join(p, "circuit"),
                [&](const YAML::Node& t, const std::string& tp) {
                  r.integer(t, tp, "failures", d.circuit_failures, 1, 1000);
                  r.duration(t, tp, "cooldown", d.circuit_cooldown, Duration(100),
                             Duration(86'400'000));
                },
                {"failures", "cooldown"});
        read_verify(r, m, p, d);
        read_require_report(r, m, p, d);
        if (m["deidentify"].IsDefined() && !m["deidentify"].IsNull())
          r.map(m["deidentify"], Reader::join(p, "deidentify"),
                [&](const YAML::Node& dn, const std::string& dp) {
                  read_deidentify(r, dn, dp, d.deidentify);
                },
                {"enabled", "profile", "options", "descriptor_allow_list", "safe_private",
                 "burned_in_allow"});
      },
      {"name",
       "type",
       "url",
       "consent",
       "big_endian",
       "un_elements",
       "withdrawal_notify_url",
       "auth",
       "batch",
       "timeouts",
       "retry",
       "circuit",
       "deidentify",
       "schedule",
       "bandwidth",
       "concurrency",
       "dimse",
       "transcode",
       "verify",
       "require_report",
       "send_while_receiving"});
}

}  // namespace

void read_window_specs(Reader& r, const YAML::Node& n, const std::string& p, const char* key,
                       std::vector<std::string>& out) {
  r.list(n, p, key, "windows such as \"Mon-Fri 19:00-07:00\"",
         [&](const YAML::Node& v, const std::string& k) {
           if (!v.IsScalar()) {
             r.error(k, v, "must be a window such as \"Mon-Fri 19:00-07:00\"");
             return;
           }
           if (auto w = scheduler::parse_window(v.Scalar()); !w)
             r.error(k, v, w.error().detail);
           else
             out.push_back(v.Scalar());
         });
}

// "2MiB" (a cap in bytes per second) or {max, office_hours, office_hours_max}.
void read_bandwidth(Reader& r, const YAML::Node& m, const std::string& p, const char* key,
                    Bandwidth& b) {
  const YAML::Node n = m[key];
  if (!n.IsDefined() || n.IsNull()) return;
  if (n.IsScalar()) {
    r.size(m, p, key, b.max, 1024, 1ull << 40);
    return;
  }
  r.map(n, Reader::join(p, key),
        [&](const YAML::Node& bn, const std::string& bp) {
          r.size(bn, bp, "max", b.max, 1024, 1ull << 40);
          r.size(bn, bp, "office_hours_max", b.office_hours_max, 1024, 1ull << 40);
          read_window_specs(r, bn, bp, "office_hours", b.office_hours);
          if (bn["office_hours_max"].IsDefined() && b.office_hours.empty())
            r.error(Reader::join(bp, "office_hours"), bn, "is required with office_hours_max");
        },
        {"max", "office_hours", "office_hours_max"});
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

}  // namespace dirgw::config::detail
