// Synthetic DICOM datasets for the policy tests: a valid CT image of a made-up patient that each
// test then breaks in one way. Values are synthetic (no real patient), but are treated as patient
// data all the same: tests check that no finding ever repeats them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdatset.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcxfer.h"

namespace dirgw::policy::test {

inline constexpr const char* kPatientId = "MRN000123";
inline constexpr const char* kMrnIssuer = "LGH-MRN";
inline constexpr const char* kHealthNumber = "1234567897";
inline constexpr const char* kPatientName = "SYNTHETIC^PATIENT";
inline constexpr const char* kAccession = "ACC0001";
inline constexpr const char* kStudyUid = "1.2.826.0.1.3680043.10.543.7";
inline constexpr const char* kSeriesUid = "1.2.826.0.1.3680043.10.543.7.1";
inline constexpr const char* kSopUid = "1.2.826.0.1.3680043.10.543.7.1.1";

struct ImageShape {
  std::uint16_t rows = 4;
  std::uint16_t columns = 4;
  std::uint16_t bits_allocated = 16;
  std::uint16_t samples_per_pixel = 1;
  int frames = 1;  // 0: no Number of Frames attribute
};

// A valid single-frame CT (with native pixel data of the right length).
std::unique_ptr<DcmDataset> valid_ct(const ImageShape& shape = {});

// Native pixel data of `bytes` bytes (a deterministic pattern), replacing any.
void put_native_pixels(DcmItem& ds, std::size_t bytes);
// Encapsulated pixel data: a Basic Offset Table of `bot_entries` entries and one fragment of
// `fragment_bytes` for each entry of `fragments`.
void put_encapsulated_pixels(DcmDataset& ds, E_TransferSyntax xfer, std::size_t fragments,
                             std::size_t fragment_bytes, std::size_t bot_entries);

// Replaces the health number item of Other Patient IDs Sequence.
void set_health_number(DcmItem& ds, std::string_view value, std::string_view issuer = "ON");

// Writes ds as a Part-10 file.
void save(DcmDataset& ds, const std::filesystem::path& path,
          E_TransferSyntax xfer = EXS_LittleEndianExplicit,
          E_EncodingType encoding = EET_ExplicitLength);

std::string read_all(const std::filesystem::path& path);

// A fresh directory under the test temp dir, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace dirgw::policy::test
