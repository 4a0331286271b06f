#include "ingest/folder/dicomdir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>

// clang-format off
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcdicdir.h"
#include "dcmtk/dcmdata/dcdirrec.h"
// clang-format on

#include "common/dcmtk_guard.h"
#include "ingest/folder/safe_open.h"

namespace dirgw::ingest::folder {

namespace {

// Calls fn(name, d_type) for each entry of dirfd (the descriptor itself stays open).
template <typename Fn>
Result<void> each_entry(int dirfd, Fn&& fn) {
  const int dup = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup < 0) return make_error(ErrorCode::kIo, "open directory: " + errno_text(errno));
  DIR* d = ::fdopendir(dup);
  if (d == nullptr) {
    ::close(dup);
    return make_error(ErrorCode::kIo, "fdopendir: " + errno_text(errno));
  }
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (!fn(name)) break;
  }
  ::closedir(d);
  return {};
}

bool same_ignoring_case(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x >= 'a' && x <= 'z' ? x - 32 : x) == (y >= 'a' && y <= 'z' ? y - 32 : y);
         });
}

// An ISO 9660 name as a CD mounted without name mapping (or copied byte for byte) shows it:
// "IM000001;1" (a version number) or "IM000001." (the empty extension), each of which the
// DICOMDIR writes as IM000001. The bare name; the name itself when it has neither form.
std::string without_iso9660_suffix(const std::string& name) {
  std::string out = name;
  const auto semi = out.rfind(';');
  if (semi != std::string::npos && semi + 1 < out.size() &&
      out.find_first_not_of("0123456789", semi + 1) == std::string::npos)
    out.erase(semi);
  if (out.size() > 1 && out.back() == '.') out.pop_back();
  return out;
}

// Collects file IDs of a record and its children (iteratively: depth costs heap, not stack).
Result<std::vector<FileId>> collect(DcmDirectoryRecord& root) {
  std::vector<FileId> out;
  std::vector<DcmDirectoryRecord*> todo{&root};
  std::size_t records = 0;
  while (!todo.empty()) {
    DcmDirectoryRecord* rec = todo.back();
    todo.pop_back();
    if (++records > kMaxDicomdirRecords)
      return make_error(ErrorCode::kRefused, "more than 100000 DICOMDIR records");
    OFString value;
    if (rec != &root && rec->findAndGetOFStringArray(DCM_ReferencedFileID, value).good() &&
        !value.empty()) {
      auto id = split_file_id(value.c_str());
      if (!id) return id.error();
      out.push_back(std::move(*id));
    }
    for (unsigned long i = rec->cardSub(); i > 0; --i) todo.push_back(rec->getSub(i - 1));
  }
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace

Result<FileId> split_file_id(const std::string& value) {
  FileId id;
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = value.find('\\', start);
    std::string part = value.substr(start, end == std::string::npos ? end : end - start);
    while (!part.empty() && part.back() == ' ') part.pop_back();  // DICOM padding
    if (!plain_component(part) || part.size() > 64)
      return make_error(ErrorCode::kRefused,
                        "a Referenced File ID (0004,1500) is not a plain "
                        "relative name");
    id.push_back(std::move(part));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (id.size() > 8)
    return make_error(ErrorCode::kRefused, "a Referenced File ID (0004,1500) is too deep");
  return id;
}

Result<std::vector<FileId>> dicomdir_references(const std::filesystem::path& own_copy) {
  std::unique_ptr<DcmDicomDir> dir;
  Result<std::vector<FileId>> refs = std::vector<FileId>{};
  const OFCondition cond = dcmtk_guard([&]() -> OFCondition {
    dir = std::make_unique<DcmDicomDir>(own_copy.c_str());
    if (dir->error().bad()) return dir->error();
    refs = collect(dir->getRootRecord());
    return EC_Normal;
  });
  if (cond.bad())
    return make_error(ErrorCode::kBadDicom, "DICOMDIR cannot be read: " + std::string(cond.text()));
  return refs;
}

Result<std::string> find_entry(int dirfd, const std::string& component) {
  std::string exact, folded, iso9660;
  auto r = each_entry(dirfd, [&](const std::string& name) {
    if (name == component) {
      exact = name;
      return false;
    }
    if (folded.empty() && same_ignoring_case(name, component)) folded = name;
    if (iso9660.empty() && same_ignoring_case(without_iso9660_suffix(name), component))
      iso9660 = name;
    return true;
  });
  if (!r) return r.error();
  if (!exact.empty()) return exact;
  if (!folded.empty()) return folded;
  if (!iso9660.empty()) return iso9660;
  return make_error(ErrorCode::kNotFound, "a referenced file is missing from the tree");
}

Result<UniqueFd> open_reference(int tree_fd, const FileId& id) {
  UniqueFd current;
  int at = tree_fd;
  for (std::size_t i = 0; i < id.size(); ++i) {
    auto name = find_entry(at, id[i]);
    if (!name) return name.error();
    if (i + 1 == id.size()) return open_file_at(at, *name);
    auto next = open_dir_at(at, *name);
    if (!next) return next.error();
    current = std::move(*next);
    at = current.get();
  }
  return make_error(ErrorCode::kRefused, "empty Referenced File ID");
}

Result<FileStamp> tree_stamp(int tree_fd) {
  FileStamp total;
  total.files = 0;
  std::vector<std::pair<UniqueFd, int>> todo;  // (directory, depth)
  todo.emplace_back(UniqueFd(::openat(tree_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)), 0);
  std::size_t entries = 0;
  while (!todo.empty()) {
    // Not a structured binding: clang 14 cannot capture one in the lambda below.
    UniqueFd dir = std::move(todo.back().first);
    const int depth = todo.back().second;
    todo.pop_back();
    if (!dir.valid()) return make_error(ErrorCode::kIo, "open directory: " + errno_text(errno));
    Result<void> inner;
    auto r = each_entry(dir.get(), [&](const std::string& name) {
      if (++entries > kMaxTreeEntries || depth > kMaxTreeDepth) {
        inner = make_error(ErrorCode::kRefused, "tree_limits");
        return false;
      }
      const EntryInfo info = look_at(dir.get(), name);
      ++total.files;
      total.size += info.stamp.size;
      total.mtime_ns = std::max(total.mtime_ns, info.stamp.mtime_ns);
      if (info.kind == EntryKind::kDirectory)
        todo.emplace_back(UniqueFd(::openat(dir.get(), name.c_str(),
                                            O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)),
                          depth + 1);
      return true;
    });
    if (!r) return r.error();
    if (!inner) return inner.error();
  }
  return total;
}

}  // namespace dirgw::ingest::folder
