// Pseudonyms: keyed UIDs ("2.25." + decimal), the Patient ID pseudonym, the per-patient date
// shift of the Modified Dates option, and device pseudonyms. All from Key::mac, so the same input
// and key give the same pseudonym on every run; the mapping itself is never stored.
#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdio>

#include "common/uid.h"
#include "dcmtk/config/osconfig.h"  // must come first among the DCMTK headers
#include "dcmtk/dcmdata/dcitem.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "policy/deid/deid_internal.h"

namespace dirgw::policy::deid {

namespace {

constexpr std::string_view kWellKnownRoot = "1.2.840.10008.";
constexpr int kMaxShiftDays = 1826;  // about five years

std::string upper_hex(const std::uint8_t* data, std::size_t n) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 0xF]);
  }
  return out;
}

// Shifts one DA value, or the date part of one DT value, by `days`. nullopt: not a date.
std::optional<std::string> shift_date(std::string_view v, int days, bool datetime) {
  using namespace std::chrono;
  std::size_t digits = 0;
  while (digits < v.size() && digits < 8 && std::isdigit(static_cast<unsigned char>(v[digits]))) {
    ++digits;
  }
  if (datetime ? (digits != 4 && digits != 6 && digits != 8) : digits != 8) return std::nullopt;
  if (!datetime && v.size() != 8) return std::nullopt;
  const int y = std::stoi(std::string(v.substr(0, 4)));
  const unsigned m =
      digits >= 6 ? static_cast<unsigned>(std::stoi(std::string(v.substr(4, 2)))) : 1;
  const unsigned d =
      digits >= 8 ? static_cast<unsigned>(std::stoi(std::string(v.substr(6, 2)))) : 1;
  const year_month_day ymd{year{y}, month{m}, day{d}};
  if (!ymd.ok()) return std::nullopt;
  const year_month_day shifted{sys_days{ymd} + std::chrono::days{days}};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d%02u%02u", static_cast<int>(shifted.year()),
                static_cast<unsigned>(shifted.month()), static_cast<unsigned>(shifted.day()));
  return std::string(buf, digits) + std::string(v.substr(digits));
}

}  // namespace

namespace detail {

Result<void> Deidentifier::replace_uids(DcmItem& item, DcmElement* e) {
  std::vector<std::string> values = split_values(read_text(e));
  for (std::string& v : values) {
    v = v.empty() ? pseudonymize_uid(key_, "dirgw:empty:" + tag_text(e->getTag()))
                  : pseudonymize_uid(key_, v);
  }
  return put(item, e, EVR_UI, join_values(values));
}

Result<char> Deidentifier::shift_dates(DcmItem& item, DcmElement* e, const TableRow& row, DcmEVR vr,
                                       std::vector<Frame>& children, const std::string& path) {
  std::vector<std::string> values = split_values(read_text(e));
  for (std::string& v : values) {
    if (v.empty()) continue;
    std::optional<std::string> s = shift_date(v, shift_days_, vr == EVR_DT);
    if (!s) return apply_basic(item, e, row, children, path);  // not a date: no cleaning
    v = *s;
  }
  dates_modified_ = true;
  if (auto r = put(item, e, vr, join_values(values)); !r) return r.error();
  return 'C';
}

Result<char> Deidentifier::device_pseudonym(DcmItem& item, DcmElement* e, DcmEVR vr) {
  const std::string old = read_text(e);
  if (old.empty()) return 'K';
  const auto mac = key_.mac("device", old);
  std::string pseudonym = "D" + upper_hex(mac.data(), 16);
  pseudonym.resize(std::min(pseudonym.size(), max_length(vr)));
  if (auto r = put(item, e, vr, pseudonym); !r) return r.error();
  return 'C';
}

}  // namespace detail

using detail::starts_with;

// A UID the DICOM standard registered (a SOP class, a transfer syntax, a well-known frame of
// reference...): the same for every patient, kept. A device that builds its *instance* UIDs under
// the standard's root (appending a serial number or a date to it) does not make them registered:
// those are replaced like any other.
bool registered_uid(std::string_view u) {
  if (!starts_with(u, kWellKnownRoot)) return false;
  if (starts_with(u, "1.2.840.10008.1.4.")) return true;  // well-known frames of reference
  return dcmFindNameOfUID(std::string(u).c_str()) != nullptr;
}

std::string pseudonymize_uid(const Key& key, std::string_view uid) {
  const std::string_view u = trim_dicom(uid);
  if (registered_uid(u)) return std::string(u);
  const auto mac = key.mac("uid", u);
  std::array<std::uint8_t, 16> first{};
  std::copy_n(mac.begin(), 16, first.begin());
  return "2.25." + uid_decimal(first);
}

std::string pseudonymize_patient_id(const Key& key, std::string_view patient_id,
                                    std::string_view issuer) {
  std::string v(trim_dicom(issuer));
  v.push_back('\0');
  v.append(trim_dicom(patient_id));
  const auto mac = key.mac("patient", v);
  return "P" + upper_hex(mac.data(), 12);
}

int date_shift_days(const Key& key, std::string_view patient_id, std::string_view issuer) {
  std::string v(trim_dicom(issuer));
  v.push_back('\0');
  v.append(trim_dicom(patient_id));
  const auto mac = key.mac("date-shift", v);
  const std::uint32_t n = (std::uint32_t{mac[0]} << 24) | (std::uint32_t{mac[1]} << 16) |
                          (std::uint32_t{mac[2]} << 8) | mac[3];
  return -static_cast<int>(1 + n % kMaxShiftDays);
}

}  // namespace dirgw::policy::deid
