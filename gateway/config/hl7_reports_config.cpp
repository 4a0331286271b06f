// ingest.hl7.reports: kept apart from config.cpp so that the report keys live with their reader.
#include "common/uid.h"
#include "config/reader.h"
#include "ingest/hl7_mllp/charsets.h"

namespace dirgw::config::detail {

namespace {

void one_of(Reader& r, const YAML::Node& m, const std::string& p, const char* key,
            std::initializer_list<const char*> allowed, std::string& out) {
  r.scalar(m, p, key, [&](const YAML::Node& v, const std::string& k, const std::string& s) {
    std::string list;
    for (const char* a : allowed) {
      if (s == a) {
        out = s;
        return;
      }
      list += std::string(list.empty() ? "" : " or ") + a;
    }
    r.error(k, v, "must be " + list + ", not '" + s + "'");
  });
}

}  // namespace

void read_hl7_reports(Reader& r, const YAML::Node& h, const std::string& hp, Hl7Reports& out) {
  if (!h["reports"].IsDefined() || h["reports"].IsNull()) return;
  r.map(h["reports"], Reader::join(hp, "reports"),
        [&](const YAML::Node& m, const std::string& p) {
          r.boolean(m, p, "enabled", out.enabled);
          r.scalar(m, p, "accession_field",
                   [&](const YAML::Node& v, const std::string& k, const std::string& s) {
                     if (s == "filler" || s == "placer" || valid_hl7_field_path(s))
                       out.accession_field = s;
                     else
                       r.error(k, v,
                               "must be filler, placer or an HL7 field path such as OBR-18, not '" +
                                   s + "'");
                   });
          one_of(r, m, p, "preliminary", {"hold", "send"}, out.preliminary);
          r.scalar(m, p, "uid_root",
                   [&](const YAML::Node& v, const std::string& k, const std::string& s) {
                     if (s.size() > 32 || !check_uid(s).empty())
                       r.error(k, v,
                               "must be a UID root of at most 32 characters (digits and dots, "
                               "no leading zero), e.g. 2.25 or 1.2.826.0.1.3680043.10.1011, not '" +
                                   s + "'");
                     else
                       out.uid_root = s;
                   });
          r.scalar(m, p, "default_charset",
                   [&](const YAML::Node& v, const std::string& k, const std::string& s) {
                     if (!s.empty() && hl7::hl7_charset_iconv_name(s) == nullptr)
                       r.error(k, v,
                               "must be an MSH-18 character set such as 8859/1, 8859/15, "
                               "UNICODE UTF-8 or WINDOWS-1252, not '" +
                                   s + "'");
                     else
                       out.default_charset = s;
                   });
          r.integer(m, p, "max_waiting", out.max_waiting, 1, 10'000'000);
          r.duration(m, p, "max_waiting_age", out.max_waiting_age, Duration(60'000),
                     Duration(366 * 86'400'000LL));
        },
        {"enabled", "accession_field", "preliminary", "uid_root", "default_charset", "max_waiting",
         "max_waiting_age"});
}

}  // namespace dirgw::config::detail
