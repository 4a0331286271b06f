#include "config/dicom_ingest.h"

#include <algorithm>
#include <array>
#include <string_view>

#include "common/uid.h"

namespace dirgw::config {

namespace {

struct NamedSyntax {
  std::string_view name, uid;
  bool offered_by_default;
};

// Every transfer syntax DCMTK 3.6.7 can at least parse, in the order offered by default when a
// sender proposes several in one presentation context (the sender's own order wins: see
// docs/ingest-dicom.md). Explicit VR Big Endian is retired (PS3.5 since 2004) and not offered
// unless listed: senders that know it also propose a little-endian syntax.
constexpr std::array kSyntaxes = {
    NamedSyntax{"explicit-vr-little-endian", "1.2.840.10008.1.2.1", true},
    NamedSyntax{"implicit-vr-little-endian", "1.2.840.10008.1.2", true},
    NamedSyntax{"deflated-explicit-vr-little-endian", "1.2.840.10008.1.2.1.99", true},
    NamedSyntax{"jpeg-baseline", "1.2.840.10008.1.2.4.50", true},
    NamedSyntax{"jpeg-extended", "1.2.840.10008.1.2.4.51", true},
    NamedSyntax{"jpeg-lossless", "1.2.840.10008.1.2.4.57", true},
    NamedSyntax{"jpeg-lossless-sv1", "1.2.840.10008.1.2.4.70", true},
    NamedSyntax{"jpeg-ls-lossless", "1.2.840.10008.1.2.4.80", true},
    NamedSyntax{"jpeg-ls-near-lossless", "1.2.840.10008.1.2.4.81", true},
    NamedSyntax{"jpeg-2000-lossless", "1.2.840.10008.1.2.4.90", true},
    NamedSyntax{"jpeg-2000", "1.2.840.10008.1.2.4.91", true},
    NamedSyntax{"rle-lossless", "1.2.840.10008.1.2.5", true},
    NamedSyntax{"mpeg2-main-profile", "1.2.840.10008.1.2.4.100", true},
    NamedSyntax{"mpeg2-high-level", "1.2.840.10008.1.2.4.101", true},
    NamedSyntax{"mpeg4-avc-high-4.1", "1.2.840.10008.1.2.4.102", true},
    NamedSyntax{"mpeg4-avc-high-4.1-bd", "1.2.840.10008.1.2.4.103", true},
    NamedSyntax{"mpeg4-avc-high-4.2-2d", "1.2.840.10008.1.2.4.104", true},
    NamedSyntax{"mpeg4-avc-high-4.2-3d", "1.2.840.10008.1.2.4.105", true},
    NamedSyntax{"mpeg4-avc-stereo-4.2", "1.2.840.10008.1.2.4.106", true},
    NamedSyntax{"hevc-main-5.1", "1.2.840.10008.1.2.4.107", true},
    NamedSyntax{"hevc-main10-5.1", "1.2.840.10008.1.2.4.108", true},
    NamedSyntax{"explicit-vr-big-endian", "1.2.840.10008.1.2.2", false},
};

int line_of(const YAML::Node& n) { return n.IsDefined() ? n.Mark().line + 1 : 0; }

std::string known_names() {
  std::string out;
  for (const auto& s : kSyntaxes) out += (out.empty() ? "" : ", ") + std::string(s.name);
  return out;
}

void read_syntaxes(const YAML::Node& list, const std::string& key, DicomIngest& d,
                   std::vector<ConfigError>& errors) {
  if (!list.IsDefined() || list.IsNull()) return;
  if (!list.IsSequence() || list.size() == 0) {
    errors.push_back(
        {key, line_of(list),
         "must be a non-empty list of transfer syntax names or UIDs (" + known_names() + ")"});
    return;
  }
  std::vector<std::string> out;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string ik = key + "[" + std::to_string(i) + "]";
    const std::string v = list[i].IsScalar() ? list[i].Scalar() : std::string();
    const auto* found = std::find_if(kSyntaxes.begin(), kSyntaxes.end(), [&](const NamedSyntax& s) {
      return s.name == v || s.uid == v;
    });
    if (found == kSyntaxes.end()) {
      errors.push_back(
          {ik, line_of(list[i]),
           "unknown transfer syntax '" + v + "' (allowed: " + known_names() + ", or their UIDs)"});
      continue;
    }
    if (std::find(out.begin(), out.end(), found->uid) == out.end()) out.emplace_back(found->uid);
  }
  d.transfer_syntaxes = std::move(out);
}

void read_sop_classes(const YAML::Node& list, const std::string& key, DicomIngest& d,
                      std::vector<ConfigError>& errors) {
  if (!list.IsDefined() || list.IsNull()) return;
  if (!list.IsSequence()) {
    errors.push_back({key, line_of(list), "must be a list of SOP Class UIDs"});
    return;
  }
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string ik = key + "[" + std::to_string(i) + "]";
    const std::string v = list[i].IsScalar() ? list[i].Scalar() : std::string();
    if (!uid_syntax_ok(v))
      errors.push_back({ik, line_of(list[i]),
                        "must be a UID (digits and dots, at most 64 characters), not '" + v + "'"});
    else
      d.extra_sop_classes.push_back(v);
  }
}

}  // namespace

std::vector<std::string> default_storage_transfer_syntaxes() {
  std::vector<std::string> out;
  for (const auto& s : kSyntaxes)
    if (s.offered_by_default) out.emplace_back(s.uid);
  return out;
}

void read_dicom_negotiation(const YAML::Node& m, const std::string& path, DicomIngest& d,
                            std::vector<ConfigError>& errors) {
  const std::string prefix = path.empty() ? "" : path + ".";
  read_syntaxes(m["transfer_syntaxes"], prefix + "transfer_syntaxes", d, errors);
  read_sop_classes(m["extra_sop_classes"], prefix + "extra_sop_classes", d, errors);
}

}  // namespace dirgw::config
