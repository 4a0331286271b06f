// Opening what a watched folder holds without being led outside it: every entry is looked at
// with fstatat(AT_SYMLINK_NOFOLLOW) under the folder's own descriptor and opened with openat and
// O_NOFOLLOW (O_NONBLOCK, so a fifo swapped in after the look cannot block us); what is not a
// regular file or a directory is refused and never opened. Names come from readdir, never from
// file contents.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/files.h"
#include "common/result.h"
#include "ingest/folder/settle.h"

namespace dirgw::ingest::folder {

enum class EntryKind { kRegular, kDirectory, kSymlink, kFifo, kSocket, kDevice, kGone };

struct EntryInfo {
  EntryKind kind = EntryKind::kGone;
  FileStamp stamp;
};

// Never follows a symbolic link; kGone when the entry vanished.
EntryInfo look_at(int dirfd, const std::string& name);

// The reason code for refusing an entry of this kind ("symlink", "fifo", ...).
std::string_view kind_reason(EntryKind kind);

// A single path component we are willing to open: not empty, not "." or "..", no '/' or NUL.
bool plain_component(std::string_view name);

// The names in dirfd (without "." and ".."); kRefused beyond `max` names.
Result<std::vector<std::string>> list_names(int dirfd, std::size_t max);

// Removes the entry `name` under dirfd: a file, or a directory and everything in it (never
// following a symbolic link). Gone already is not an error.
Result<void> remove_at(int dirfd, const std::string& name, int depth = 0);

// Opens a regular file under dirfd for reading. kNotFound when it is gone; kRefused (with the
// kind's reason code as detail) when it is anything but a regular file.
Result<UniqueFd> open_file_at(int dirfd, const std::string& name);
// Opens a directory under dirfd (never through a symbolic link).
Result<UniqueFd> open_dir_at(int dirfd, const std::string& name);

}  // namespace dirgw::ingest::folder
