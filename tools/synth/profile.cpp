#include "profile.h"

#include <array>
#include <cstdlib>

#include "dcmtk/dcmdata/dcuid.h"

namespace dirgw::synth {
namespace {

// Rows x columns follow the usual hardware: CR/DX a 35x43 cm portrait plate, US a 640x480 scan
// converter output (so 480 rows of 640 columns).
const std::array<Profile, 6> kProfiles = {{
    {Modality::kCT, "CT", "CT", 1, UID_CTImageStorage, 20, 512, 512, 1, false, 1, 16, 16, true,
     "MONOCHROME2"},
    {Modality::kMR, "MR", "MR", 2, UID_MRImageStorage, 20, 256, 256, 1, false, 1, 16, 12, false,
     "MONOCHROME2"},
    {Modality::kCR, "CR", "CR", 3, UID_ComputedRadiographyImageStorage, 1, 2500, 2048, 1, false, 1,
     16, 12, false, "MONOCHROME2"},
    {Modality::kUS, "US", "US", 4, UID_UltrasoundMultiframeImageStorage, 1, 480, 640, 10, true, 1,
     8, 8, false, "MONOCHROME2"},
    {Modality::kDX, "DX", "DX", 5, UID_DigitalXRayImageStorageForPresentation, 1, 2500, 2048, 1,
     false, 1, 16, 12, false, "MONOCHROME2"},
    {Modality::kSC, "SC", "OT", 6, UID_SecondaryCaptureImageStorage, 1, 512, 512, 1, false, 3, 8, 8,
     false, "RGB"},
}};

char upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

}  // namespace

std::optional<Profile> find_profile(std::string_view cli_name) {
  for (const Profile& p : kProfiles) {
    if (p.cli_name.size() != cli_name.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < cli_name.size(); ++i)
      same = same && upper(cli_name[i]) == p.cli_name[i];
    if (same) return p;
  }
  return std::nullopt;
}

const Profile& profile_for(Modality modality) {
  for (const Profile& p : kProfiles) {
    if (p.modality == modality) return p;
  }
  std::abort();  // every enumerator has a row above
}

}  // namespace dirgw::synth
