// What each synthetic modality is: its SOP class, default geometry and pixel format. The one table
// that says "a CT is 20 slices of 512x512 signed 16-bit" lives in profile.cpp.
#pragma once

#include <optional>
#include <string_view>

namespace dirgw::synth {

enum class Modality { kCT, kMR, kCR, kUS, kDX, kSC };

struct Profile {
  Modality modality;
  std::string_view cli_name;        // as given to --modality and used in file names
  std::string_view dicom_modality;  // (0008,0060); SC is "OT", as there is no "SC" defined term
  int uid_code;                     // 1..6, one UID component so modalities never share UIDs
  const char* sop_class_uid;
  int default_instances;
  int default_rows;
  int default_cols;
  int default_frames;  // > 1 only for multi-frame IODs
  bool multi_frame;
  int samples_per_pixel;
  int bits_allocated;
  int bits_stored;
  bool is_signed;
  std::string_view photometric;
};

std::optional<Profile> find_profile(std::string_view cli_name);  // case-insensitive
const Profile& profile_for(Modality modality);

}  // namespace dirgw::synth
