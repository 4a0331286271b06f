#include "ingest/folder/intake.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "ingest/folder/dicomdir.h"
#include "ingest/folder/raw_dataset.h"
#include "ingest/folder/safe_open.h"

namespace dirgw::ingest::folder {

namespace {

constexpr const char* kMediaStorageDirectory = "1.2.840.10008.1.3.10";

UnitResult rejected(std::string reason, std::string detail) {
  UnitResult r;
  r.kind = UnitKind::kRejected;
  r.reason = std::move(reason);
  r.detail = std::move(detail);
  return r;
}

UnitResult retry(const Error& e) {
  UnitResult r;
  r.kind = UnitKind::kRetry;
  r.reason = std::string(error_name(e.code));
  r.detail = e.to_string();
  return r;
}

// Changed while we read it: what was taken stays (the catalog dedups); the unit settles again.
UnitResult changed(const UnitResult& so_far) {
  return {UnitKind::kChanged, "changed",         "changed while being read",
          so_far.stored,      so_far.duplicates, so_far.skipped};
}

// A spool temporary being filled; removed unless handed on with release().
class TempFile {
 public:
  explicit TempFile(const Spool& spool) : spool_(spool), path_(spool.new_temp_path()) {}
  ~TempFile() {
    fd_.reset();
    if (!released_) spool_.discard_temp(path_);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  Result<void> open() {
    fd_.reset(::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640));
    if (!fd_.valid())
      return make_error(ErrorCode::kIo, "create spool temporary: " + errno_text(errno));
    return {};
  }
  Result<void> write(const char* p, std::size_t n) {
    size_ += n;
    while (n > 0) {
      const ssize_t w = ::write(fd_.get(), p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return make_error(ErrorCode::kIo, "write spool temporary: " + errno_text(errno));
      p += w;
      n -= static_cast<std::size_t>(w);
    }
    return {};
  }
  std::filesystem::path release() {
    fd_.reset();
    released_ = true;
    return path_;
  }
  std::uint64_t size() const { return size_; }

 private:
  const Spool& spool_;
  std::filesystem::path path_;
  UniqueFd fd_;
  std::uint64_t size_ = 0;
  bool released_ = false;
};

// Reads up to n bytes at offset; fewer only at the end of the file.
Result<std::string> read_at(int fd, std::uint64_t offset, std::size_t n) {
  std::string out(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, out.data() + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return make_error(ErrorCode::kIo, "read: " + errno_text(errno));
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  out.resize(got);
  return out;
}

// Copies fd (from `offset`) into t; kRefused "too_large" beyond max bytes.
Result<void> copy_into(int fd, std::uint64_t offset, TempFile& t, std::uint64_t max) {
  static thread_local char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::pread(fd, buf, sizeof buf, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return make_error(ErrorCode::kIo, "read: " + errno_text(errno));
    if (n == 0) return {};
    offset += static_cast<std::uint64_t>(n);
    if (t.size() + static_cast<std::uint64_t>(n) > max)
      return make_error(ErrorCode::kRefused, "too_large");
    if (auto r = t.write(buf, static_cast<std::size_t>(n)); !r) return r;
  }
}

// The stamp that says whether a file changed while we read it.
bool same_file(const struct stat& a, const struct stat& b) {
  return a.st_size == b.st_size && a.st_mtim.tv_sec == b.st_mtim.tv_sec &&
         a.st_mtim.tv_nsec == b.st_mtim.tv_nsec && a.st_ino == b.st_ino;
}

// Copies an open regular file into a spool temporary (refusal codes as UnitResult).
std::optional<UnitResult> copy_file(int fd, TempFile& t, std::uint64_t max) {
  if (auto r = t.open(); !r) return retry(r.error());
  if (auto r = copy_into(fd, 0, t, max); !r) {
    if (r.error().code == ErrorCode::kRefused)
      return rejected("too_large", "larger than max_object_size");
    return retry(r.error());
  }
  return std::nullopt;
}

// A zip entry's bytes go to a spool temporary; at its end the object is finished.
class ZipToSpool final : public ZipVisitor {
 public:
  explicit ZipToSpool(Intake& intake) : intake_(intake) {}
  Result<void> begin(std::size_t index, std::string_view) override {
    index_ = index;
    temp_ = std::make_unique<TempFile>(intake_.spool());
    return temp_->open();
  }
  Result<void> data(const char* bytes, std::size_t n) override {
    if (temp_->size() + n > intake_.max_object_size())
      return make_error(ErrorCode::kRefused, "too_large");
    return temp_->write(bytes, n);
  }
  Result<void> end() override {
    UnitResult r = intake_.finish_object(temp_->release());
    temp_.reset();
    if (r.kind == UnitKind::kRejected) r.detail += " (entry " + std::to_string(index_ + 1) + ")";
    merge(result, r);
    if (r.kind == UnitKind::kRetry) return make_error(ErrorCode::kIo, r.detail);
    return {};
  }
  UnitResult result;

 private:
  Intake& intake_;
  std::unique_ptr<TempFile> temp_;
  std::size_t index_ = 0;
};

}  // namespace

void merge(UnitResult& a, const UnitResult& b) {
  a.stored += b.stored;
  a.duplicates += b.duplicates;
  a.skipped += b.skipped;
  a.meta_rewritten += b.meta_rewritten;
  if (a.first_meta_rewrite.empty()) a.first_meta_rewrite = b.first_meta_rewrite;
  if (a.kind == UnitKind::kTaken && b.kind != UnitKind::kTaken) {
    a.kind = b.kind;
    a.reason = b.reason;
    a.detail = b.detail;
  }
}

UnitResult Intake::finish_object(const std::filesystem::path& temp) {
  struct Discard {
    const Spool& s;
    std::filesystem::path p;
    ~Discard() {
      if (!p.empty()) s.discard_temp(p);
    }
  } discard{spool_, temp};
  UniqueFd fd(::open(temp.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return retry(make_error(ErrorCode::kIo, "open spool temporary"));
  // The meta header and the start of the dataset: enough to wrap a dataset that has no meta
  // header, or to write again one that is incomplete or contradicts its dataset.
  auto head = read_at(fd.get(), 0, 64 * 1024);
  if (!head) return retry(head.error());
  const bool part10 = head->size() >= 132 && head->compare(128, 4, "DICM") == 0;
  if (!part10 && meta_without_preamble(*head)) {
    // Given the preamble and "DICM" it lacks, it is a Part-10 file like any other.
    TempFile whole(spool_);
    const std::string prefix = std::string(128, '\0') + "DICM";
    if (auto r = whole.open(); !r) return retry(r.error());
    if (auto r = whole.write(prefix.data(), prefix.size()); !r) return retry(r.error());
    if (auto r = copy_into(fd.get(), 0, whole, limits_.max_object_size); !r)
      return r.error().code == ErrorCode::kRefused
                 ? rejected("too_large", "larger than max_object_size")
                 : retry(r.error());
    fd.reset();
    spool_.discard_temp(temp);
    discard.p.clear();
    UnitResult out = finish_object(whole.release());
    if (out.meta_rewritten == 0) {
      out.meta_rewritten = 1;
      out.first_meta_rewrite = "no preamble and DICM before the meta header";
    }
    return out;
  }
  std::optional<RawUids> raw;
  std::optional<MetaRepair> repair;
  if (!part10) {
    raw = raw_dataset_uids(*head);
    if (!raw) return rejected("not_dicom", "neither a DICOM Part-10 file nor a dataset");
  } else if (const auto meta = read_meta_header(*head)) {
    if (meta->sop_class == kMediaStorageDirectory) {
      UnitResult index;
      index.skipped = 1;  // a DICOMDIR: an index, not an object (take_file says so when alone)
      return index;
    }
    repair = meta_repair(*head, *meta);
  }
  std::filesystem::path object = temp;
  UnitResult out;
  if (raw || repair) {
    TempFile wrapped(spool_);
    const std::string meta = raw ? part10_meta(*raw, transfer_syntax_of(raw->syntax))
                                 : part10_meta(repair->uids, repair->transfer_syntax);
    if (auto r = wrapped.open(); !r) return retry(r.error());
    if (auto r = wrapped.write(meta.data(), meta.size()); !r) return retry(r.error());
    if (auto r = copy_into(fd.get(), repair ? repair->dataset_offset : 0, wrapped,
                           limits_.max_object_size);
        !r)
      return r.error().code == ErrorCode::kRefused
                 ? rejected("too_large", "larger than max_object_size")
                 : retry(r.error());
    object = wrapped.release();
    spool_.discard_temp(temp);
    discard.p = object;
    if (repair) {
      out.meta_rewritten = 1;
      out.first_meta_rewrite = repair->why;
    }
  }
  auto scan = prescan_file(object, limits_);
  if (!scan) return rejected("prescan", scan.error().detail);
  // What the receiver would not take over C-STORE is not taken from a file either: the pre-scan
  // reads any JPEG-family syntax's structure, but nothing after it can read HTJ2K, JPEG XL or
  // JPEG 2000 Part 2 pixels (a made-up UID read as native pixel data). A standard UID is named;
  // any other is data.
  if (!syntaxes_.empty() && syntaxes_.count(scan->transfer_syntax) == 0) {
    const bool standard =
        scan->transfer_syntax.rfind("1.2.840.10008.", 0) == 0 && scan->transfer_syntax.size() <= 64;
    return rejected(
        "transfer_syntax",
        "the transfer syntax " +
            (standard ? scan->transfer_syntax + " " : std::string("(not a standard UID) ")) +
            "is not one dirgw can read (docs/ingest.md, Transfer syntaxes)");
  }
  discard.p.clear();  // commit consumes the temporary whatever happens
  auto stored = spool_.commit(object, limits_.max_object_size);
  if (!stored) return retry(stored.error());
  ReceivedObject received{std::move(*stored), std::move(*scan), "", source_};
  auto sunk = sink_.object_received(received);
  if (!sunk) return retry(sunk.error());
  (*sunk == SinkOutcome::kStored ? out.stored : out.duplicates) = 1;
  return out;
}

UnitResult Intake::take_file(int dirfd, const std::string& name) {
  auto fd = open_file_at(dirfd, name);
  if (!fd) {
    if (fd.error().code == ErrorCode::kNotFound) return {UnitKind::kGone, "gone", "", 0, 0, 0};
    if (fd.error().code == ErrorCode::kRefused)
      return rejected(fd.error().detail, "not a regular file");
    return retry(fd.error());
  }
  struct stat before {};
  if (::fstat(fd->get(), &before) != 0) return retry(make_error(ErrorCode::kIo, "fstat"));
  UnitResult r = take_opened(fd->get());
  // A DICOMDIR copied in by itself: its objects were left behind (a zip's or a tree's DICOMDIR
  // is an index beside its objects and skipped there).
  if (r.kind == UnitKind::kTaken && r.stored + r.duplicates == 0 && r.skipped > 0)
    r = rejected("dicomdir_alone",
                 "a DICOMDIR by itself, without the files it indexes: copy the whole media folder "
                 "(the DICOMDIR and the folders beside it) in as one directory");
  struct stat after {};
  if (::fstat(fd->get(), &after) != 0) return retry(make_error(ErrorCode::kIo, "fstat"));
  // Deleted while we read it: the open descriptor still read all of it, so what was stored stays;
  // there is nothing left to move or take again.
  if (after.st_nlink == 0 && r.kind != UnitKind::kRetry)
    return {UnitKind::kGone,
            "gone",
            r.kind == UnitKind::kTaken ? "deleted while being read; its objects are kept"
                                       : "deleted while being read (" + r.reason + ")",
            r.stored,
            r.duplicates,
            0};
  // Changed while we read it: the objects taken (if any) stay (the catalog dedups); the file
  // waits for the settle time again.
  if (!same_file(before, after) && r.kind != UnitKind::kRetry)
    return {UnitKind::kChanged, "changed", "changed while being read", r.stored, r.duplicates, 0};
  return r;
}

UnitResult Intake::take_opened(int fd) {
  auto head = read_at(fd, 0, 64 * 1024);
  if (!head) return retry(head.error());
  // Neither Part 10 nor a dataset nor a zip: refused from its first bytes, never copied.
  const bool part10 = head->size() >= 132 && head->compare(128, 4, "DICM") == 0;
  if (!part10 && !looks_like_zip(*head) && !raw_dataset_uids(*head) &&
      !meta_without_preamble(*head))
    return rejected("not_dicom", "neither a DICOM Part-10 file nor a dataset nor a zip");
  if (looks_like_zip(*head)) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return retry(make_error(ErrorCode::kIo, "fstat"));
    return take_zip(fd, static_cast<std::uint64_t>(st.st_size));
  }
  TempFile t(spool_);
  if (auto refused = copy_file(fd, t, limits_.max_object_size)) return *refused;
  return finish_object(t.release());
}

UnitResult Intake::take_zip(int fd, std::uint64_t size) {
  ZipToSpool v(*this);
  const ZipWalk walk = walk_zip_fd(fd, size, zip_, v);
  UnitResult out = v.result;
  if (walk.refusal) merge(out, rejected(walk.refusal->reason, walk.refusal->detail));
  if (walk.error && walk.error->code == ErrorCode::kRefused)
    merge(out, rejected("too_large", "a zip entry is larger than max_object_size"));
  else if (walk.error)
    merge(out, retry(*walk.error));
  // Only an index, litter or empty entries: nothing was taken, which its sender should know.
  if (out.kind == UnitKind::kTaken && out.stored + out.duplicates == 0)
    out = rejected("no_dicom_objects", "a zip without a DICOM object");
  return out;
}

UnitResult Intake::take_tree(int dirfd, const std::string& name, const FileStamp& settled) {
  auto tree = open_dir_at(dirfd, name);
  if (!tree) {
    if (tree.error().code == ErrorCode::kNotFound) return {UnitKind::kGone, "gone", "", 0, 0, 0};
    if (tree.error().code == ErrorCode::kRefused)
      return rejected(tree.error().detail, "not a directory");
    return retry(tree.error());
  }
  UnitResult out;
  auto index = open_reference(tree->get(), {"DICOMDIR"});
  if (index) {
    out = take_media(tree->get(), index->get());
    if (out.kind == UnitKind::kRejected && out.reason == "dicomdir_unreadable") {
      // A DICOMDIR that cannot be read (media burned by software that writes lengths or offsets
      // wrong): the images beside it are still the patient's. The tree is taken as an export
      // tree, and goes to rejected/ saying so, so that the media's source can be told.
      const std::string why = out.detail;
      std::size_t seen = 0;
      UnitResult all = take_export_tree(tree->get(), 0, seen);
      if (all.kind == UnitKind::kRetry || all.kind == UnitKind::kChanged) return all;
      const int taken = all.stored + all.duplicates;
      std::string detail = "the DICOMDIR cannot be read (" + why + "); ";
      detail += taken > 0 ? std::to_string(taken) +
                                " DICOM object(s) of the tree were taken as from an export tree"
                          : "no DICOM object in the tree";
      if (all.kind == UnitKind::kRejected) detail += "; " + all.reason + ": " + all.detail;
      out = all;
      out.kind = UnitKind::kRejected;
      out.reason = "dicomdir_unreadable";
      out.detail = detail;
    }
  } else if (index.error().code == ErrorCode::kNotFound) {
    std::size_t seen = 0;
    out = take_export_tree(tree->get(), 0, seen);
    if (out.kind == UnitKind::kTaken && out.stored + out.duplicates == 0)
      out =
          rejected("no_dicom_objects", "a directory without a DICOMDIR and without a DICOM object");
  } else if (index.error().code == ErrorCode::kRefused) {
    return rejected(index.error().detail, "the DICOMDIR is not a regular file");
  } else {
    return retry(index.error());
  }
  if (out.kind == UnitKind::kRetry || out.kind == UnitKind::kChanged) return out;
  // A writer that added to the tree while we read it: not moved to done/ with an unread file.
  auto after = tree_stamp(tree->get());
  if (after) after->ino = settled.ino;
  if (!after || !(*after == settled)) return changed(out);
  return out;
}

// A tree without a DICOMDIR (an export: study and series folders of files, as PACS, viewers and
// EMR exports write them): every file in it, in name order, taken as a top-level file is. Hidden
// names (a leading '.'), an operating system's litter (is_litter_name: Thumbs.db, __MACOSX...)
// and DICOMDIR index files of subfolders are skipped; a symbolic link or other special entry
// refuses the tree without being opened, as at the top of the folder.
UnitResult Intake::take_export_tree(int dirfd, int depth, std::size_t& seen) {
  auto names = list_names(dirfd, kMaxTreeEntries);
  if (!names)
    return names.error().code == ErrorCode::kRefused ? rejected("tree_limits", kTreeLimitsDetail)
                                                     : retry(names.error());
  std::sort(names->begin(), names->end());
  UnitResult out;
  for (const auto& name : *names) {
    // Where a refusal is in the tree: names are never logged (they can carry a patient's name).
    const std::string at = " (entry " + std::to_string(++seen) + " of the tree)";
    UnitResult one;
    if (name.front() == '.' || name == "DICOMDIR" || is_litter_name(name)) {
      one.skipped = 1;
    } else if (const EntryInfo info = look_at(dirfd, name); info.kind == EntryKind::kGone) {
      one = changed(one);
    } else if (info.kind == EntryKind::kRegular) {
      one = take_file(dirfd, name);
      if (one.kind == UnitKind::kGone) one = changed(one);  // deleted while we read the tree
      if (one.kind == UnitKind::kRejected) one.detail += at;
    } else if (info.kind != EntryKind::kDirectory) {
      one = rejected(std::string(kind_reason(info.kind)),
                     "not a regular file or directory: refused without being opened" + at);
    } else if (depth >= kMaxTreeDepth) {
      one = rejected("tree_limits", kTreeLimitsDetail + at);
    } else if (auto sub = open_dir_at(dirfd, name); sub) {
      one = take_export_tree(sub->get(), depth + 1, seen);
    } else {
      one = sub.error().code == ErrorCode::kNotFound ? changed(one) : retry(sub.error());
    }
    merge(out, one);
    if (out.kind == UnitKind::kRetry || out.kind == UnitKind::kChanged) break;
  }
  return out;
}

// A media tree: the files its DICOMDIR references, and only those.
UnitResult Intake::take_media(int tree_fd, int index_fd) {
  TempFile t(spool_);
  if (auto refused = copy_file(index_fd, t, limits_.max_object_size)) return *refused;
  const std::filesystem::path copy = t.release();
  PrescanLimits index_limits = limits_;
  index_limits.require_object_uids = false;
  auto scan = prescan_file(copy, index_limits);
  Result<std::vector<FileId>> refs =
      scan ? dicomdir_references(copy) : Result<std::vector<FileId>>(scan.error());
  spool_.discard_temp(copy);
  // Refused (a reference out of the tree, too many records): nothing of the tree is taken.
  // Unreadable (the pre-scan or DCMTK cannot read it): take_tree takes the tree without it.
  if (!refs && refs.error().retryable()) return retry(refs.error());  // our side (I/O)
  if (!refs)
    return rejected(refs.error().code == ErrorCode::kRefused ? "dicomdir" : "dicomdir_unreadable",
                    refs.error().detail);
  UnitResult out;
  for (std::size_t i = 0; i < refs->size(); ++i) {
    auto file = open_reference(tree_fd, (*refs)[i]);
    UnitResult one;
    if (!file) {
      const auto code = file.error().code;
      one = code == ErrorCode::kNotFound  ? rejected("dicomdir_missing_file", file.error().detail)
            : code == ErrorCode::kRefused ? rejected(file.error().detail, "not a regular file")
                                          : retry(file.error());
    } else {
      one = take_opened(file->get());
    }
    if (one.kind == UnitKind::kRejected)
      one.detail += " (DICOMDIR reference " + std::to_string(i + 1) + ")";
    merge(out, one);
    if (out.kind == UnitKind::kRetry) break;
  }
  return out;
}

}  // namespace dirgw::ingest::folder
