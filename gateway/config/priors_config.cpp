#include "config/priors_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "config/config.h"
#include "config/reader.h"

namespace dirgw::config {

namespace {

using detail::modality_code;
using detail::Reader;
using std::chrono::milliseconds;

// A list of strings that must pass `ok`; `what` says what one item is allowed to be.
void strings(Reader& r, const YAML::Node& m, const std::string& p, const char* key,
             const char* what, bool (*ok)(const std::string&), std::vector<std::string>& out) {
  r.list(m, p, key, "values", [&](const YAML::Node& n, const std::string& k) {
    const std::string v = n.IsScalar() ? n.Scalar() : "";
    if (!ok(v))
      r.error(k, n, std::string("must be ") + what + ", not '" + v.substr(0, 64) + "'");
    else
      out.push_back(v);
  });
}

void read_group(Reader& r, const YAML::Node& g, const std::string& k, PriorsConfig& c) {
  r.map(g, k,
        [&](const YAML::Node& n, const std::string& np) {
          PriorsRelevanceGroup group;
          r.string(n, np, "name", group.name, 64);
          if (!n["name"].IsDefined() || group.name.empty())
            r.error(Reader::join(np, "name"), n, "missing: the group's name (e.g. chest)");
          for (const auto& other : c.relevance)
            if (!group.name.empty() && other.name == group.name)
              r.error(Reader::join(np, "name"), n["name"], "'" + group.name + "' is used twice");
          strings(r, n, np, "procedures",
                  "a procedure code such as CPT4:71250 or 71250 (1-64 characters)", procedure_code,
                  group.procedures);
          strings(r, n, np, "body_parts",
                  "a Body Part Examined value such as CHEST (capital letters, digits, _)",
                  body_part_value, group.body_parts);
          strings(
              r, n, np, "descriptions", "a Study Description keyword of 1 to 64 characters",
              +[](const std::string& v) { return !v.empty() && v.size() <= 64; },
              group.descriptions);
          if (group.procedures.empty() && group.body_parts.empty())
            r.error(np, n, "needs procedures or body_parts: what ordered exam the group is for");
          c.relevance.push_back(std::move(group));
        },
        {"name", "procedures", "body_parts", "descriptions"});
}

void read_relevance(Reader& r, const YAML::Node& m, const std::string& p, PriorsConfig& c) {
  r.scalar(m, p, "unmapped", [&](const YAML::Node& n, const std::string& k, const std::string& v) {
    if (v == "all" || v == "none")
      c.relevance_unmapped_all = v == "all";
    else
      r.error(k, n, "must be all or none, not '" + v + "'");
  });
  r.list(m, p, "groups", "groups ({name, procedures, body_parts, descriptions})",
         [&](const YAML::Node& g, const std::string& k) { read_group(r, g, k, c); });
}

void read_rules(Reader& r, const YAML::Node& m, const std::string& p, PriorsConfig& c) {
  r.list(m, p, "modalities", "modality codes such as CT or MR",
         [&](const YAML::Node& n, const std::string& k) {
           const std::string v = n.IsScalar() ? n.Scalar() : "";
           if (!modality_code(v))
             r.error(k, n, "must be a modality code (capital letters and digits, e.g. CT)");
           else
             c.modalities.push_back(v);
         });
  r.integer(m, p, "years", c.years, 1, 100);
  r.integer(m, p, "max_studies", c.max_studies, 1, 1000);
  r.list(m, p, "skip_institutions", "Institution Name values (this facility's)",
         [&](const YAML::Node& n, const std::string& k) {
           const std::string v = n.IsScalar() ? n.Scalar() : "";
           if (v.empty() || v.size() > 64)
             r.error(k, n, "must be an Institution Name of 1 to 64 characters (LO)");
           else
             c.skip_institutions.push_back(v);
         });
  if (m["relevance"].IsDefined() && !m["relevance"].IsNull())
    r.map(m["relevance"], Reader::join(p, "relevance"),
          [&](const YAML::Node& n, const std::string& np) { read_relevance(r, n, np, c); },
          {"unmapped", "groups"});
}

void read_pacs(Reader& r, const YAML::Node& m, const std::string& p, PriorsConfig& c) {
  r.ae_title(m, p, "ae_title", c.pacs_ae_title);
  if (!m["ae_title"].IsDefined())
    r.error(Reader::join(p, "ae_title"), m, "missing: the PACS's AE title");
  r.ae_title(m, p, "calling_ae", c.pacs_calling_ae);
  r.string(m, p, "host", c.pacs_host, 253);
  if (!m["host"].IsDefined()) r.error(Reader::join(p, "host"), m, "missing: the PACS's address");
  r.integer(m, p, "port", c.pacs_port, 1, 65535);
}

void read_body(Reader& r, const YAML::Node& m, const std::string& p,
               const std::vector<Destination>& destinations, PriorsConfig& c) {
  r.boolean(m, p, "enabled", c.enabled);
  r.string(m, p, "repository", c.repository, 64);
  r.string(m, p, "url", c.url, 2048);
  if (!c.url.empty() && c.url.rfind("http://", 0) != 0 && c.url.rfind("https://", 0) != 0)
    r.error(Reader::join(p, "url"), m["url"], "must start with http:// or https://");
  r.path(m, p, "ca", c.ca);
  r.path(m, p, "client_cert", c.client_cert);
  r.path(m, p, "client_key", c.client_key);
  r.path(m, p, "bearer_token_file", c.bearer_token_file);
  r.boolean(m, p, "verify_peer", c.verify_peer);
  if (!c.repository.empty()) {
    if (!c.url.empty())
      r.error(Reader::join(p, "url"), m["url"],
              "give either repository (a destination's name) or url, not both");
    const auto it = std::find_if(destinations.begin(), destinations.end(),
                                 [&](const Destination& d) { return d.name == c.repository; });
    if (it == destinations.end() || it->type != "stow-rs")
      r.error(Reader::join(p, "repository"), m["repository"],
              "must name a destination of type stow-rs (its url and auth are used), not '" +
                  c.repository + "'");
  } else if (c.enabled && c.url.empty()) {
    r.error(Reader::join(p, "repository"), m,
            "missing: a stow-rs destination's name, or url: the repository's DICOMweb root");
  }
  if (m["local_pacs"].IsDefined() && !m["local_pacs"].IsNull())
    r.map(m["local_pacs"], Reader::join(p, "local_pacs"),
          [&](const YAML::Node& n, const std::string& np) { read_pacs(r, n, np, c); },
          {"ae_title", "calling_ae", "host", "port"});
  else if (c.enabled)
    r.error(Reader::join(p, "local_pacs"), m,
            "missing: the local PACS to store into ({ae_title, host, port})");
  r.string(m, p, "mrn_issuer", c.mrn_issuer, 64);
  r.string(m, p, "mrn_type", c.mrn_type, 16);
  r.string(m, p, "health_number_issuer", c.health_number_issuer, 64);
  if (m["rules"].IsDefined() && !m["rules"].IsNull())
    r.map(m["rules"], Reader::join(p, "rules"),
          [&](const YAML::Node& n, const std::string& np) { read_rules(r, n, np, c); },
          {"modalities", "years", "max_studies", "skip_institutions", "relevance"});
  if (m["triggers"].IsDefined() && !m["triggers"].IsNull())
    r.map(m["triggers"], Reader::join(p, "triggers"),
          [&](const YAML::Node& n, const std::string& np) {
            r.boolean(n, np, "orders", c.on_orders);
            r.boolean(n, np, "scheduling", c.on_scheduling);
            r.boolean(n, np, "arrivals", c.on_arrivals);
          },
          {"orders", "scheduling", "arrivals"});
  r.string(m, p, "series_description_prefix", c.series_description_prefix, 16);
  r.duration(m, p, "timeout", c.timeout, std::chrono::seconds(1), std::chrono::hours(1));
  r.integer(m, p, "max_attempts", c.max_attempts, 1, 1000);
  if (m["retry"].IsDefined() && !m["retry"].IsNull())
    r.map(m["retry"], Reader::join(p, "retry"),
          [&](const YAML::Node& rn, const std::string& rp) {
            r.duration(rn, rp, "initial", c.retry_initial, milliseconds(100),
                       std::chrono::hours(24));
            r.duration(rn, rp, "max", c.retry_max, std::chrono::seconds(1),
                       std::chrono::hours(24 * 7));
          },
          {"initial", "max"});
}

}  // namespace

bool procedure_code(const std::string& v) {
  if (v.empty() || v.size() > 64 || v.front() == ':' || v.back() == ':' || v.front() == ' ' ||
      v.back() == ' ')
    return false;
  return std::all_of(v.begin(), v.end(), [](char c) { return c >= ' ' && c <= '~' && c != '\\'; });
}

bool body_part_value(const std::string& v) { return modality_code(v); }

void read_priors(const YAML::Node& root, const std::vector<Destination>& destinations,
                 PriorsConfig& out, std::vector<ConfigError>& errors) {
  Reader r(errors);
  const YAML::Node m = root["priors"];
  if (!m.IsDefined() || m.IsNull()) return;
  r.map(m, "priors",
        [&](const YAML::Node& n, const std::string& p) { read_body(r, n, p, destinations, out); },
        {"enabled", "repository", "url", "ca", "client_cert", "client_key", "bearer_token_file",
         "verify_peer", "local_pacs", "mrn_issuer", "mrn_type", "health_number_issuer", "rules",
         "triggers", "series_description_prefix", "timeout", "max_attempts", "retry"});
}

}  // namespace dirgw::config
