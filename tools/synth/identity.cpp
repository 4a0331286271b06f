#include "identity.h"

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "rng.h"

namespace dirgw::synth {
namespace {

// Invented surnames that read as obviously synthetic in any log line.
constexpr std::array<std::string_view, 12> kFamilyNames = {
    "Testperson", "Synthfield", "Fakebury",   "Mockington", "Dummyvale",  "Samplewood",
    "Placeholm",  "Phantomley", "Fictorsson", "Madeupova",  "Notrealton", "Simulacre"};

constexpr std::array<std::string_view, 10> kFemaleNames = {
    "Alice", "Beatrix", "Chloé", "Dana", "Eloise", "Fatima", "Greta", "Hana", "Irène", "Joanna"};
constexpr std::array<std::string_view, 10> kMaleNames = {
    "Aaron", "Bruno", "Carlos", "Dmitri", "Émile", "Farid", "Gustav", "Hiro", "Ivan", "José"};
constexpr std::array<std::string_view, 4> kOtherNames = {"Alex", "Robin", "Sam", "Zoë"};

constexpr std::array<std::string_view, 6> kReferringPhysicians = {
    "Refdoc^Synthia",   "Fakemedic^Priya", "Mockdoctor^Owen",
    "Testclinic^Marta", "Samplegp^Kenji",  "Placeholder^Ruth"};
constexpr std::array<std::string_view, 4> kOperators = {"Techsynth^Jordan", "Techsynth^Lee",
                                                        "Radfake^Morgan", "Radfake^Quinn"};
constexpr std::array<std::string_view, 6> kStudyDescriptions = {
    "SYNTH ROUTINE IMAGING",   "SYNTH FOLLOW-UP",     "SYNTH ONCOLOGY STAGING",
    "SYNTH TRAUMA ASSESSMENT", "SYNTH PRE-OP WORKUP", "SYNTH SCREENING"};

std::string digits(std::uint64_t value, int width) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%0*llu", width, static_cast<unsigned long long>(value));
  return buf;
}

std::string format_date(std::chrono::year_month_day ymd) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d%02u%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buf;
}

std::chrono::year_month_day random_date(Rng& rng, std::chrono::year_month_day first,
                                        std::chrono::year_month_day last) {
  using std::chrono::sys_days;
  const auto span = (sys_days{last} - sys_days{first}).count() + 1;
  return std::chrono::year_month_day{
      sys_days{first} + std::chrono::days{rng.below(static_cast<std::uint32_t>(span))}};
}

std::chrono::year_month_day parse_date(std::string_view yyyymmdd) {
  const int y = std::atoi(std::string(yyyymmdd.substr(0, 4)).c_str());
  const unsigned m = static_cast<unsigned>(std::atoi(std::string(yyyymmdd.substr(4, 2)).c_str()));
  const unsigned d = static_cast<unsigned>(std::atoi(std::string(yyyymmdd.substr(6, 2)).c_str()));
  return std::chrono::year{y} / std::chrono::month{m} / std::chrono::day{d};
}

}  // namespace

bool is_valid_uid(std::string_view uid) {
  if (uid.empty() || uid.size() > 64) return false;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = uid.find('.', start);
    const std::string_view part =
        uid.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (part.empty()) return false;
    if (part.size() > 1 && part[0] == '0') return false;
    for (char c : part) {
      if (c < '0' || c > '9') return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

int luhn_check_digit(std::string_view nine_digits) {
  if (nine_digits.size() != 9) std::abort();
  int sum = 0;
  for (std::size_t i = 0; i < 9; ++i) {
    int d = nine_digits[i] - '0';
    if (d < 0 || d > 9) std::abort();
    if (i % 2 == 0) {  // 1st, 3rd, ... digit: the rightmost payload digit is doubled, as in Luhn
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return (10 - sum % 10) % 10;
}

bool is_valid_health_number(std::string_view ten_digits) {
  if (ten_digits.size() != 10) return false;
  for (char c : ten_digits) {
    if (c < '0' || c > '9') return false;
  }
  return luhn_check_digit(ten_digits.substr(0, 9)) == ten_digits[9] - '0';
}

std::string utf8_to_latin1(std::string_view utf8) {
  std::string out;
  out.reserve(utf8.size());
  for (std::size_t i = 0; i < utf8.size(); ++i) {
    const auto c = static_cast<unsigned char>(utf8[i]);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else if ((c == 0xC2 || c == 0xC3) && i + 1 < utf8.size()) {
      const auto next = static_cast<unsigned char>(utf8[++i]);
      out.push_back(static_cast<char>(((c & 0x03) << 6) | (next & 0x3F)));
    } else {
      std::abort();  // only our own name lists come here, and they are Latin-1 representable
    }
  }
  return out;
}

Patient make_patient(std::uint32_t seed, std::uint32_t patient_index, const HealthNumber& hn) {
  Rng rng(combine(combine(0x5041544945ULL, seed), patient_index));
  Patient p;

  const std::uint32_t sex_draw = rng.below(100);
  const char sex = sex_draw < 48 ? 'F' : sex_draw < 96 ? 'M' : 'O';
  p.sex = std::string(1, sex);
  p.family_name = kFamilyNames[rng.below(kFamilyNames.size())];
  if (sex == 'F') {
    p.given_name = kFemaleNames[rng.below(kFemaleNames.size())];
  } else if (sex == 'M') {
    p.given_name = kMaleNames[rng.below(kMaleNames.size())];
  } else {
    p.given_name = kOtherNames[rng.below(kOtherNames.size())];
  }
  p.middle_initial = std::string(1, static_cast<char>('A' + rng.below(26)));
  p.name_utf8 = p.family_name + "^" + p.given_name + "^" + p.middle_initial;
  p.name_latin1 = utf8_to_latin1(p.name_utf8);

  // index * prime (coprime to the modulus) + per-seed offset is a bijection on the modulus, so
  // patient indexes of one seed never share an MRN or a health number.
  const std::uint64_t mrn_offset = mix64(seed ^ 0x4d524eULL) % 10000000ULL;
  p.patient_id =
      "MRN" + digits((mrn_offset + std::uint64_t{patient_index} * 7919ULL) % 10000000ULL, 7);

  switch (hn.mode) {
    case HealthNumber::Mode::kNone:
      break;
    case HealthNumber::Mode::kGiven:
      p.health_number = hn.given;
      break;
    case HealthNumber::Mode::kGenerate: {
      const std::uint64_t hn_offset = mix64(seed ^ 0x4f4850ULL) % 900000000ULL;
      const std::string body = digits(
          100000000ULL + (hn_offset + std::uint64_t{patient_index} * 7919ULL) % 900000000ULL, 9);
      p.health_number = body + std::to_string(luhn_check_digit(body));
      break;
    }
  }

  using namespace std::chrono;
  p.birth_date =
      format_date(random_date(rng, year{1932} / January / 1, year{2016} / December / 31));
  return p;
}

Study make_study(const Options& options, const Patient& patient) {
  Study s;
  s.uid = options.study_uid.value_or(std::string(kUidRoot) + ".1." + std::to_string(options.seed) +
                                     "." + std::to_string(options.patient_index) + "." +
                                     std::to_string(options.profile.uid_code));
  if (!is_valid_uid(s.uid)) std::abort();

  Rng rng(combine(0x5354554459ULL, hash_string(s.uid)));
  s.accession = options.accession.value_or("ACC" + digits(rng.below(100000000), 8));
  s.study_id = std::to_string(1 + rng.below(99999));
  s.description = kStudyDescriptions[rng.below(kStudyDescriptions.size())];
  s.referring_physician = kReferringPhysicians[rng.below(kReferringPhysicians.size())];
  s.operator_name = kOperators[rng.below(kOperators.size())];

  using namespace std::chrono;
  const year_month_day study_day =
      random_date(rng, year{2019} / January / 1, year{2024} / December / 31);
  s.date = format_date(study_day);
  s.time_of_day_s = 7 * 3600 + static_cast<int>(rng.below(13 * 3600));

  const year_month_day birth = parse_date(patient.birth_date);
  int age = static_cast<int>(study_day.year()) - static_cast<int>(birth.year());
  if (month_day{study_day.month(), study_day.day()} < month_day{birth.month(), birth.day()}) --age;
  if (age < 0) age = 0;
  s.patient_age = digits(static_cast<std::uint64_t>(age), 3) + "Y";
  return s;
}

SeriesUids::SeriesUids(std::uint32_t seed, std::uint32_t patient_index, int uid_code,
                       std::string_view study_uid)
    : suffix_(std::to_string(seed) + "." + std::to_string(patient_index) + "." +
              std::to_string(uid_code) + "." +
              std::to_string(hash_string(study_uid) % 100000000ULL)),
      series_(std::string(kUidRoot) + ".2." + suffix_),
      frame_of_reference_(std::string(kUidRoot) + ".4." + suffix_) {}

std::string SeriesUids::instance(int instance_number) const {
  std::string uid = std::string(kUidRoot) + ".3." + suffix_ + "." + std::to_string(instance_number);
  if (!is_valid_uid(uid)) std::abort();  // the ranges in options.h keep this within 64 chars
  return uid;
}

}  // namespace dirgw::synth
