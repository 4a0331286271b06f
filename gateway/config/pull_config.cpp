#include "config/pull_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "config/config.h"
#include "config/reader.h"

namespace dirgw::config {

namespace {

using detail::Reader;
using std::chrono::milliseconds;

bool valid_source_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
}

bool valid_host(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == ':';
  });
}

// Whether our SCP admits `ae` as a calling AE (allowed_callers, "*" or a caller binding).
bool admitted(const DicomIngest& d, const std::string& ae) {
  for (const auto& a : d.allowed_callers)
    if (a == "*" || a == ae) return true;
  for (const auto& b : d.callers)
    if (b.ae_title == ae) return true;
  return false;
}

void read_modalities(Reader& r, const YAML::Node& m, const std::string& p, PullSource& s) {
  r.list(m, p, "modalities", "modality codes such as CT or MR",
         [&](const YAML::Node& n, const std::string& k) {
           const std::string v = n.IsScalar() ? n.Scalar() : "";
           const bool ok =
               !v.empty() && v.size() <= 16 && std::all_of(v.begin(), v.end(), [](char c) {
                 return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
               });
           if (!ok)
             r.error(k, n, "must be a modality code (capital letters and digits, e.g. CT)");
           else
             s.modalities.push_back(v);
         });
}

// A PACS's name and address (ingest.pull and report.pacs): name, ae_title, host, port,
// calling_ae; `name_hint` says what the missing name is for.
void read_address(Reader& r, const YAML::Node& m, const std::string& p, PullSource& s,
                  const std::string& name_hint) {
  r.scalar(m, p, "name", [&](const YAML::Node& n, const std::string& k, const std::string& v) {
    if (!valid_source_name(v))
      r.error(k, n, "must be 1 to 64 letters, digits, '.', '-' or '_', not '" + v + "'");
    else
      s.name = v;
  });
  if (s.name.empty() && !m["name"].IsDefined())
    r.error(Reader::join(p, "name"), m, "missing: " + name_hint);
  r.ae_title(m, p, "ae_title", s.ae_title);
  if (!m["ae_title"].IsDefined())
    r.error(Reader::join(p, "ae_title"), m, "missing: the PACS's AE title");
  r.scalar(m, p, "host", [&](const YAML::Node& n, const std::string& k, const std::string& v) {
    if (!valid_host(v))
      r.error(k, n, "must be a host name or an IP address, not '" + v + "'");
    else
      s.host = v;
  });
  if (!m["host"].IsDefined()) r.error(Reader::join(p, "host"), m, "missing: the PACS's address");
  r.integer(m, p, "port", s.port, 1, 65535);
  r.ae_title(m, p, "calling_ae", s.calling_ae);
}

void read_one(Reader& r, const YAML::Node& m, const std::string& p, PullSource& s) {
  read_address(r, m, p, s, "a short name shown in status (e.g. old-pacs)");
  r.ae_title(m, p, "move_destination", s.move_destination);
  r.scalar(m, p, "retrieve", [&](const YAML::Node& n, const std::string& k, const std::string& v) {
    if (v != "move" && v != "get")
      r.error(k, n, "must be move or get, not '" + v + "'");
    else
      s.retrieve = v;
  });
  if (s.retrieve == "get" && m["move_destination"].IsDefined())
    r.error(Reader::join(p, "move_destination"), m["move_destination"],
            "is for retrieve: move (with get the objects come back on our association)");
  r.duration(m, p, "every", s.every, std::chrono::seconds(1), std::chrono::hours(24 * 7));
  r.duration(m, p, "look_back", s.look_back, std::chrono::hours(1), std::chrono::hours(24 * 366));
  r.duration(m, p, "timeout", s.timeout, std::chrono::seconds(1), std::chrono::hours(1));
  read_modalities(r, m, p, s);
  if (m["retry"].IsDefined() && !m["retry"].IsNull())
    r.map(m["retry"], Reader::join(p, "retry"),
          [&](const YAML::Node& rn, const std::string& rp) {
            r.duration(rn, rp, "initial", s.retry_initial, milliseconds(100),
                       std::chrono::hours(24));
            r.duration(rn, rp, "max", s.retry_max, std::chrono::seconds(1),
                       std::chrono::hours(24 * 7));
          },
          {"initial", "max"});
}

}  // namespace

void read_pull(const YAML::Node& ingest, const std::string& ingest_key, const DicomIngest& dicom,
               std::vector<PullSource>& out, std::vector<ConfigError>& errors) {
  Reader r(errors);
  const YAML::Node list = ingest["pull"];
  if (!list.IsDefined() || list.IsNull()) return;
  r.list(ingest, ingest_key, "pull", "PACS to poll ({name, ae_title, host, port, every, ...})",
         [&](const YAML::Node& item, const std::string& k) {
           PullSource s;
           r.map(item, k, [&](const YAML::Node& m, const std::string& p) { read_one(r, m, p, s); },
                 {"name", "ae_title", "host", "port", "calling_ae", "move_destination", "every",
                  "look_back", "modalities", "retry", "timeout", "retrieve"});
           if (!item.IsMap()) return;
           for (const auto& other : out)
             if (!s.name.empty() && s.name == other.name)
               r.error(k + ".name", item["name"], "the name '" + s.name + "' is used twice");
           if (s.retrieve == "get") {
             // C-GET: nothing calls us back; our AE title is still needed.
             if (!dicom.enabled && s.calling_ae.empty())
               r.error(k + ".calling_ae", item,
                       "is required with retrieve: get when ingest.dicom is off (our AE title)");
           } else if (!dicom.enabled)
             r.error(k, item,
                     "needs ingest.dicom enabled: the PACS sends what we ask for to our DICOM "
                     "receiver (C-MOVE)");
           else if (!s.ae_title.empty() && !admitted(dicom, s.ae_title))
             r.error(k + ".ae_title", item["ae_title"],
                     "the PACS '" + s.ae_title +
                         "' calls our receiver back to send the studies: add it to "
                         "ingest.dicom.allowed_callers");
           out.push_back(std::move(s));
         });
}

namespace {

void read_report_peer(Reader& r, const YAML::Node& m, const std::string& p,
                      const std::vector<PullSource>& pulls, PullSource& s) {
  if (m["pull"].IsDefined()) {
    for (const char* k : {"name", "ae_title", "host", "port", "calling_ae", "timeout"})
      if (m[k].IsDefined())
        r.error(Reader::join(p, k), m[k],
                "comes from the pull source with pull: (give either pull: or name/ae_title/host)");
    r.scalar(m, p, "pull", [&](const YAML::Node& n, const std::string& k, const std::string& v) {
      auto it = std::find_if(pulls.begin(), pulls.end(),
                             [&](const PullSource& ps) { return ps.name == v; });
      if (it == pulls.end())
        r.error(k, n, "no ingest.pull source is named '" + v.substr(0, 64) + "'");
      else
        s = *it;
    });
    return;
  }
  s.timeout = std::chrono::seconds(30);
  read_address(r, m, p, s, "a short name shown in the report, or pull:");
  r.duration(m, p, "timeout", s.timeout, std::chrono::seconds(1), std::chrono::minutes(10));
}

}  // namespace

void read_report_pacs(const YAML::Node& report, const std::string& report_key,
                      const std::vector<PullSource>& pulls, const DicomIngest& dicom,
                      std::vector<PullSource>& out, std::vector<ConfigError>& errors) {
  Reader r(errors);
  r.list(report, report_key, "pacs",
         "PACS to count ({pull: NAME} or {name, ae_title, host, port, calling_ae, timeout})",
         [&](const YAML::Node& item, const std::string& k) {
           PullSource s;
           r.map(item, k,
                 [&](const YAML::Node& m, const std::string& p) {
                   read_report_peer(r, m, p, pulls, s);
                 },
                 {"pull", "name", "ae_title", "host", "port", "calling_ae", "timeout"});
           if (!item.IsMap() || s.name.empty()) return;
           for (const auto& other : out)
             if (s.name == other.name)
               r.error(k, item, "the PACS '" + s.name + "' is counted twice");
           if (s.calling_ae.empty() && !dicom.enabled)
             r.error(Reader::join(k, "calling_ae"), item,
                     "is required when ingest.dicom is off (our AE title for the C-FIND)");
           if (s.calling_ae.empty()) s.calling_ae = dicom.ae_title;
           s.retrieve = "move";  // only C-FIND is used; no intake is needed
           out.push_back(std::move(s));
         });
}

}  // namespace dirgw::config
