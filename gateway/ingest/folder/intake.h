// Takes one unit of a watched folder (a file: Part 10, a dataset without meta, or a zip of
// those; or a directory: a DICOMDIR media tree, or an export tree of such files without one)
// through the same intake as C-STORE: each object is copied into a spool temporary, pre-scanned,
// committed durably to the spool and handed to the ObjectSink (the catalog), which dedups by
// content, so a unit taken again after a crash adds nothing. The unit itself is not touched here:
// the watcher moves or deletes it only after every object of it is durable in spool and catalog.
#pragma once

#include <filesystem>
#include <optional>
#include <set>
#include <string>

#include "ingest/dimse_scp/scp.h"
#include "ingest/folder/settle.h"
#include "ingest/folder/zip_reader.h"
#include "ingest/prescan/prescan.h"
#include "ingest/spool/spool.h"

namespace dirgw::ingest::folder {

enum class UnitKind {
  kTaken,     // every object is durable in spool and catalog: move or delete the unit
  kRejected,  // something in it cannot be taken (reason): to rejected/ (good objects are kept)
  kRetry,     // our side failed (spool, catalog): leave it, try at the next rescan
  kGone,      // it vanished before we could open it
  kChanged,   // it changed while we read it: not settled after all
};

struct UnitResult {
  UnitKind kind = UnitKind::kTaken;
  std::string reason;  // a code: "not_dicom", "prescan", "zip_entry_path", "symlink", ...
  std::string detail;  // words for people; never a patient value nor a name from the data
  int stored = 0, duplicates = 0, skipped = 0;
  int meta_rewritten = 0;          // objects whose meta header was written again (raw_dataset.h)
  std::string first_meta_rewrite;  // why the first of them was: our words (MetaRepair::why)
};

class Intake {
 public:
  // source: "folder:<name>", recorded with every object.
  Intake(const Spool& spool, ObjectSink& sink, PrescanLimits limits, ZipLimits zip,
         std::string source)
      : spool_(spool), sink_(sink), limits_(limits), zip_(zip), source_(std::move(source)) {}

  UnitResult take_file(int dirfd, const std::string& name);
  // `settled`: the tree's stamp the settle rule accepted (tree_stamp); read again afterwards, a
  // tree that differs is left to settle again (kChanged) instead of being moved with an unread
  // file in it.
  UnitResult take_tree(int dirfd, const std::string& name, const FileStamp& settled);

  // One object whose bytes are in `temp` (a spool temporary of ours, consumed): wrapped in a
  // meta header when it has none, pre-scanned, committed, catalogued. Public for the zip visitor.
  UnitResult finish_object(const std::filesystem::path& temp);
  const Spool& spool() const { return spool_; }
  // The transfer syntaxes an object may be in (dirgwd: every one the receiver can be configured
  // to take, and explicit big endian); others are refused (`transfer_syntax`). Empty (the
  // default): whatever the pre-scan reads.
  void set_transfer_syntaxes(std::set<std::string, std::less<>> syntaxes) {
    syntaxes_ = std::move(syntaxes);
  }
  std::uint64_t max_object_size() const { return limits_.max_object_size; }

 private:
  UnitResult take_zip(int fd, std::uint64_t size);
  UnitResult take_opened(int fd);
  UnitResult take_media(int tree_fd, int index_fd);
  UnitResult take_export_tree(int dirfd, int depth, std::size_t& seen);

  const Spool& spool_;
  ObjectSink& sink_;
  PrescanLimits limits_;
  ZipLimits zip_;
  std::string source_;
  std::set<std::string, std::less<>> syntaxes_;
};

// Adds b's objects to a; the first refusal (or failure) wins.
void merge(UnitResult& a, const UnitResult& b);

}  // namespace dirgw::ingest::folder
