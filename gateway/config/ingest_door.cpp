// The front door's connection settings: DICOM TLS, caller bindings, the bounded stop, and the
// HL7 listener's time-outs. Read here so that config.cpp's readers only list the keys.
#include <string>

#include "config/reader.h"

namespace dirgw::config::detail {

namespace {

// "10.0.0.5" or "10.0.0.0/24".
bool valid_network(const std::string& s) {
  const auto slash = s.find('/');
  if (slash == std::string::npos) return valid_ipv4(s);
  const std::string prefix = s.substr(slash + 1);
  if (prefix.empty() || prefix.size() > 2 ||
      prefix.find_first_not_of("0123456789") != std::string::npos)
    return false;
  return valid_ipv4(s.substr(0, slash)) && std::stoi(prefix) <= 32;
}

// "CN=pacs1,O=Lakeside": one or more attribute=value pairs, printable ASCII.
bool valid_subject(const std::string& s) {
  if (s.empty() || s.size() > 512 || s.find('=') == std::string::npos) return false;
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) return false;
  return true;
}

void read_tls(Reader& r, const YAML::Node& n, const std::string& path, DicomTls& t) {
  r.map(n, path,
        [&](const YAML::Node& m, const std::string& p) {
          t.enabled = true;
          r.boolean(m, p, "enabled", t.enabled);
          r.path(m, p, "certificate", t.certificate);
          r.path(m, p, "private_key", t.private_key);
          r.path(m, p, "ca", t.ca);
          r.boolean(m, p, "require_client_certificate", t.require_client_certificate);
          if (!t.enabled) return;
          if (!m["certificate"].IsDefined())
            r.error(Reader::join(p, "certificate"), m,
                    "is required with TLS: the SCP's certificate chain (PEM)");
          if (!m["private_key"].IsDefined())
            r.error(Reader::join(p, "private_key"), m,
                    "is required with TLS: the certificate's private key (PEM, mode 0600)");
          if (t.require_client_certificate && !m["ca"].IsDefined())
            r.error(Reader::join(p, "ca"), m,
                    "is required when require_client_certificate is true: the CA bundle that "
                    "client certificates must chain to");
        },
        {"enabled", "certificate", "private_key", "ca", "require_client_certificate"});
}

void read_caller(Reader& r, const YAML::Node& n, const std::string& path, bool tls,
                 CallerBinding& c) {
  r.map(n, path,
        [&](const YAML::Node& m, const std::string& p) {
          r.ae_title(m, p, "ae_title", c.ae_title);
          if (!m["ae_title"].IsDefined())
            r.error(Reader::join(p, "ae_title"), m, "is required: the calling AE title bound");
          r.list(m, p, "addresses", "IPv4 addresses or networks, e.g. [10.0.0.5, 10.1.0.0/16]",
                 [&](const YAML::Node& v, const std::string& k) {
                   if (!v.IsScalar() || !valid_network(v.Scalar()))
                     r.error(k, v,
                             "must be an IPv4 address or network such as 10.0.0.5 or "
                             "10.1.0.0/16");
                   else
                     c.networks.push_back(v.Scalar());
                 });
          r.list(m, p, "subjects", "certificate subjects, e.g. [\"CN=pacs1,O=Lakeside\"]",
                 [&](const YAML::Node& v, const std::string& k) {
                   if (!v.IsScalar() || !valid_subject(v.Scalar()))
                     r.error(k, v, "must be a certificate subject such as \"CN=pacs1,O=Lakeside\"");
                   else
                     c.subjects.push_back(v.Scalar());
                 });
          if (m["subjects"].IsDefined() && !tls)
            r.error(Reader::join(p, "subjects"), m["subjects"],
                    "needs ingest.dicom.tls: a certificate subject is known only over TLS");
        },
        {"ae_title", "addresses", "subjects"});
}

}  // namespace

void read_dicom_door(Reader& r, const YAML::Node& m, const std::string& p, DicomIngest& d) {
  if (m["tls"].IsDefined() && !m["tls"].IsNull())
    read_tls(r, m["tls"], Reader::join(p, "tls"), d.tls);
  r.list(m, p, "callers", "bindings, e.g. [{ae_title: PACS1, addresses: [10.0.0.5]}]",
         [&](const YAML::Node& v, const std::string& k) {
           CallerBinding c;
           read_caller(r, v, k, d.tls.enabled, c);
           if (!c.ae_title.empty()) d.callers.push_back(std::move(c));
         });
  r.duration(m, p, "stop_grace", d.stop_grace, Duration(0), Duration(300'000));
}

void read_hl7_door(Reader& r, const YAML::Node& m, const std::string& p, Hl7Ingest& h) {
  r.duration(m, p, "idle_timeout", h.idle_timeout, Duration(1000), Duration(86'400'000));
  r.duration(m, p, "message_timeout", h.message_timeout, Duration(1000), Duration(3'600'000));
  r.size(m, p, "max_message_size", h.max_message_size, 64 * 1024, std::uint64_t{64} << 20);
  if (m["processing_ids"].IsDefined()) {
    h.processing_ids.clear();
    r.list(m, p, "processing_ids", "MSH-11 processing IDs, e.g. [P] or [P, T]",
           [&](const YAML::Node& v, const std::string& k) {
             if (!v.IsScalar() || (v.Scalar() != "P" && v.Scalar() != "T" && v.Scalar() != "D"))
               r.error(k, v, "must be P (production), T (training/test) or D (debugging)");
             else
               h.processing_ids.push_back(v.Scalar());
           });
    if (h.processing_ids.empty())
      r.error(Reader::join(p, "processing_ids"), m["processing_ids"],
              "must name at least one processing ID, e.g. [P]");
  }
}

}  // namespace dirgw::config::detail
