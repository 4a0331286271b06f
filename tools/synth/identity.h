// Who and what the synthetic files describe: the made-up patient, the study and every UID, all
// derived from (seed, patient index, modality, study UID) so that a run can be repeated exactly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "options.h"

namespace dirgw::synth {

// Fixed root; components after it are plain decimal numbers, so no leading zeros can appear.
inline constexpr std::string_view kUidRoot = "1.2.826.0.1.3680043.10.1011";
inline constexpr std::string_view kPatientIdIssuer = "LGH-MRN";
inline constexpr std::string_view kHealthNumberIssuer = "ON";
inline constexpr std::string_view kInstitutionName = "Lakeside General (synthetic)";

// Digits and dots, at most 64 chars, no empty component, no component with a leading zero.
bool is_valid_uid(std::string_view uid);

// Check digit over the first nine digits of an Ontario health number: Luhn, doubling the
// 1st, 3rd, 5th, 7th and 9th digits. Requires exactly nine ASCII digits.
int luhn_check_digit(std::string_view nine_digits);
bool is_valid_health_number(std::string_view ten_digits);

struct Patient {
  std::string family_name;  // UTF-8
  std::string given_name;   // UTF-8; a few carry Latin-1 letters (é, ë) on purpose
  std::string middle_initial;
  std::string name_utf8;    // DICOM PN layout: Family^Given^Middle
  std::string name_latin1;  // the same, as stored under ISO_IR 100
  std::string patient_id;   // "MRN" + 7 digits, unique per (seed, patient index)
  std::optional<std::string> health_number;
  std::string birth_date;  // YYYYMMDD
  std::string sex;         // M, F or O
};

Patient make_patient(std::uint32_t seed, std::uint32_t patient_index, const HealthNumber& hn);

struct Study {
  std::string uid;
  std::string accession;
  std::string study_id;
  std::string date;  // YYYYMMDD
  int time_of_day_s = 0;
  std::string description;
  std::string referring_physician;
  std::string operator_name;
  std::string patient_age;  // e.g. "047Y"
};

// Study-level values are derived from the study UID alone, so that separate runs joined with the
// same --study-uid (say CT then MR) agree on accession, date and description.
Study make_study(const Options& options, const Patient& patient);

class SeriesUids {
 public:
  SeriesUids(std::uint32_t seed, std::uint32_t patient_index, int uid_code,
             std::string_view study_uid);
  const std::string& series() const { return series_; }
  const std::string& frame_of_reference() const { return frame_of_reference_; }
  std::string instance(int instance_number) const;

 private:
  std::string suffix_;  // seed.patient.modality.studyhash
  std::string series_;
  std::string frame_of_reference_;
};

std::string utf8_to_latin1(std::string_view utf8);

}  // namespace dirgw::synth
