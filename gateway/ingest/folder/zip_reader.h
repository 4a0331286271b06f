// Zip archives dropped into a watched folder, read with libarchive (Debian's libarchive; never a
// zip parser of our own). What we add on top are the rules: entry names are checked (no absolute
// path, no "..", no drive letter) even though they are never used as paths, only regular-file
// entries are read (a symbolic link or hard link entry refuses the archive), and the entry
// count, the total uncompressed size and the compression ratio are capped, using the sizes the
// archive declares before anything is inflated and the bytes actually produced while inflating,
// so a 1 KB -> 1 GB bomb is refused at once with bounded memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace dirgw::ingest::folder {

struct ZipLimits {
  std::uint64_t max_entries = 20000;
  std::uint64_t max_total = 8ull << 30;    // uncompressed bytes of all entries together
  std::uint64_t max_entry = 2ull << 30;    // uncompressed bytes of one entry
  std::uint64_t max_ratio = 200;           // uncompressed / archive size
  std::uint64_t ratio_slack = 1ull << 20;  // small archives may inflate this much regardless
};

// Why an archive is refused: a reason code and words for people (never an entry's name).
struct Refusal {
  std::string reason, detail;
};

// nullopt when the entry name is acceptable; otherwise what is wrong with it.
std::optional<std::string> entry_name_problem(std::string_view name);

// True for an entry whose last component is DICOMDIR (the index of a media tree: not an object).
bool is_dicomdir_name(std::string_view name);

// True for what an operating system leaves in an export, never an object nor something a person
// put there: Windows' Thumbs.db, ehthumbs.db and desktop.ini, macOS's .DS_Store, AppleDouble
// "._" files and the __MACOSX folder of a Finder zip (any component), any case. Skipped in
// trees and zips, as hidden names are; a unit of nothing else has no DICOM object.
bool is_litter_name(std::string_view name);

// Receives the regular-file entries in archive order.
class ZipVisitor {
 public:
  virtual ~ZipVisitor() = default;
  virtual Result<void> begin(std::size_t index, std::string_view name) = 0;
  virtual Result<void> data(const char* bytes, std::size_t n) = 0;
  virtual Result<void> end() = 0;
};

struct ZipWalk {
  std::optional<Refusal> refusal;  // the archive broke a rule or is not a readable zip
  std::optional<Error> error;      // the visitor failed (spool, catalog): try again later
  std::size_t entries = 0;
};

// Walks the zip open on fd (archive_size bytes) or held in memory.
ZipWalk walk_zip_fd(int fd, std::uint64_t archive_size, const ZipLimits& limits, ZipVisitor& v);
ZipWalk walk_zip_memory(const void* bytes, std::size_t size, const ZipLimits& limits,
                        ZipVisitor& v);

// A zip's first four bytes: "PK\3\4" (or "PK\5\6" for an empty archive).
bool looks_like_zip(std::string_view head);

}  // namespace dirgw::ingest::folder
