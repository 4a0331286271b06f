// DICOMDIR media trees (a CD or USB export copied into a watched folder): only the files the
// DICOMDIR references are taken, and only inside the tree. The DICOMDIR is read with DCMTK's
// DcmDicomDir from our own pre-scanned spool copy; a referenced file is reached component by
// component under the tree's descriptor, each component matched against the names readdir
// gives (so no name taken from the file is ever joined into a path) and opened with O_NOFOLLOW.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "common/files.h"
#include "common/result.h"
#include "ingest/folder/settle.h"

namespace dirgw::ingest::folder {

inline constexpr std::size_t kMaxDicomdirRecords = 100000;
inline constexpr std::size_t kMaxTreeEntries = 100000;
inline constexpr int kMaxTreeDepth = 16;
// The detail of a tree refused for its size (reason code tree_limits).
inline constexpr const char* kTreeLimitsDetail = "more than 100000 entries or 16 levels";

// A referenced file: its Referenced File ID split into components ("DICOM", "IMG001").
using FileId = std::vector<std::string>;

// The Referenced File IDs of every record of the DICOMDIR at `own_copy` (a file of ours that
// has passed the pre-scan). kBadDicom when DCMTK cannot read it as a DICOMDIR; kRefused when a
// file ID has a component that is not a plain name ("..", empty, a '/').
Result<std::vector<FileId>> dicomdir_references(const std::filesystem::path& own_copy);

// Splits a Referenced File ID value ("DICOM\IMG001") and checks each component.
Result<FileId> split_file_id(const std::string& value);

// The entry of `dirfd` whose name matches `component` (exactly, else ignoring ASCII case, else as
// an ISO 9660 name: "IM000001;1" or "IM000001." for IM000001, as a CD shows them when mounted
// without name mapping), as readdir spells it; kNotFound when there is none.
Result<std::string> find_entry(int dirfd, const std::string& component);

// Opens the regular file `id` names under tree_fd.
Result<UniqueFd> open_reference(int tree_fd, const FileId& id);

// Files, total size and newest modification time of the tree (symbolic links are counted, never
// followed), for the settle rule. kRefused beyond kMaxTreeEntries or 16 levels.
Result<FileStamp> tree_stamp(int tree_fd);

}  // namespace dirgw::ingest::folder
