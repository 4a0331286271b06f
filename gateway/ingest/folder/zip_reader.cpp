#include "ingest/folder/zip_reader.h"

#include <archive.h>
#include <archive_entry.h>

#include <locale.h>

#include <cctype>
#include <memory>

namespace dirgw::ingest::folder {

namespace {

using ArchivePtr = std::unique_ptr<struct archive, int (*)(struct archive*)>;

Refusal refuse(std::string reason, std::string detail) {
  return {std::move(reason), std::move(detail)};
}

std::string at_entry(std::size_t index) { return " (entry " + std::to_string(index + 1) + ")"; }

class Walker {
 public:
  Walker(struct archive* a, std::uint64_t archive_size, const ZipLimits& limits, ZipVisitor& v)
      : a_(a), limits_(limits), visitor_(v) {
    const std::uint64_t by_ratio = archive_size * limits.max_ratio + limits.ratio_slack;
    budget_ = std::min(limits.max_total, by_ratio);
  }

  ZipWalk run() {
    ZipWalk out;
    for (;;) {
      struct archive_entry* e = nullptr;
      const int rc = archive_read_next_header(a_, &e);
      if (rc == ARCHIVE_EOF) break;
      if (rc < ARCHIVE_WARN) {
        out.refusal = refuse("zip_unreadable", "not a readable zip archive" + at_entry(index_));
        return out;
      }
      if (++out.entries > limits_.max_entries) {
        out.refusal =
            refuse("zip_limits", "more than " + std::to_string(limits_.max_entries) + " entries");
        return out;
      }
      if (auto r = entry(e); r.refusal || r.error) {
        r.entries = out.entries;
        return r;
      }
      ++index_;
    }
    if (out.entries == 0) out.refusal = refuse("zip_empty", "the archive has no entries");
    return out;
  }

 private:
  // One entry: its name and type are checked, then its bytes go to the visitor (counted).
  ZipWalk entry(struct archive_entry* e) {
    ZipWalk out;
    // The name as UTF-8 (zip's UTF-8 flag, or converted by libarchive): in dirgwd's "C" locale
    // archive_entry_pathname() gives null for a non-ASCII name ("Müller Hans/Bild é 2.dcm"),
    // which refused the whole archive as an empty entry name.
    const char* raw = archive_entry_pathname_utf8(e);
    if (raw == nullptr) raw = archive_entry_pathname(e);
    const std::string_view name = raw != nullptr ? raw : "";
    if (auto why = entry_name_problem(name)) {
      out.refusal = refuse("zip_entry_path", *why + at_entry(index_));
      return out;
    }
    const auto type = archive_entry_filetype(e);
    if (archive_entry_hardlink(e) != nullptr || archive_entry_symlink(e) != nullptr ||
        (type != AE_IFREG && type != AE_IFDIR)) {
      out.refusal = refuse("zip_entry_type", "a link or special file entry" + at_entry(index_));
      return out;
    }
    if (type == AE_IFDIR) return out;
    if (archive_entry_size_is_set(e)) {
      const auto declared =
          static_cast<std::uint64_t>(std::max<la_int64_t>(0, archive_entry_size(e)));
      if (declared > limits_.max_entry || declared > budget_ - std::min(budget_, produced_)) {
        out.refusal =
            refuse("zip_limits", "declared size " + std::to_string(declared) +
                                     " bytes exceeds the size or ratio limit" + at_entry(index_));
        return out;
      }
    }
    // The media index, what an operating system left, an empty entry: not objects.
    if (is_dicomdir_name(name) || is_litter_name(name)) return out;
    if (archive_entry_size_is_set(e) && archive_entry_size(e) == 0) return out;
    return copy(name);
  }

  ZipWalk copy(std::string_view name) {
    ZipWalk out;
    if (auto r = visitor_.begin(index_, name); !r) {
      out.error = r.error();
      return out;
    }
    std::uint64_t entry_bytes = 0;
    static thread_local char buf[1 << 16];
    for (;;) {
      const la_ssize_t n = archive_read_data(a_, buf, sizeof buf);
      if (n == 0) break;
      if (n < 0) {
        out.refusal = refuse("zip_unreadable", "entry data cannot be read" + at_entry(index_));
        return out;
      }
      entry_bytes += static_cast<std::uint64_t>(n);
      produced_ += static_cast<std::uint64_t>(n);
      if (entry_bytes > limits_.max_entry || produced_ > budget_) {
        out.refusal =
            refuse("zip_limits", "inflates beyond the size or ratio limit" + at_entry(index_));
        return out;
      }
      if (auto r = visitor_.data(buf, static_cast<std::size_t>(n)); !r) {
        out.error = r.error();
        return out;
      }
    }
    if (auto r = visitor_.end(); !r) out.error = r.error();
    return out;
  }

  struct archive* a_;
  const ZipLimits& limits_;
  ZipVisitor& visitor_;
  std::uint64_t budget_ = 0, produced_ = 0;
  std::size_t index_ = 0;
};

// libarchive converts entry names to the thread's locale; dirgwd runs in "C", where a non-ASCII
// name ("Müller Hans/Bild é 2.dcm") converts to nothing and the whole archive was refused as an
// empty entry name. The walk runs in C.UTF-8 (this thread only; names are checked, never used as
// paths to write).
class Utf8Locale {
 public:
  Utf8Locale() : loc_(::newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0))) {
    if (loc_ != static_cast<locale_t>(0)) old_ = ::uselocale(loc_);
  }
  ~Utf8Locale() {
    if (loc_ == static_cast<locale_t>(0)) return;
    ::uselocale(old_);
    ::freelocale(loc_);
  }
  Utf8Locale(const Utf8Locale&) = delete;
  Utf8Locale& operator=(const Utf8Locale&) = delete;

 private:
  locale_t loc_;
  locale_t old_ = static_cast<locale_t>(0);
};

ArchivePtr new_reader() {
  ArchivePtr a(archive_read_new(), archive_read_free);
  archive_read_support_format_zip(a.get());
  return a;
}

}  // namespace

std::optional<std::string> entry_name_problem(std::string_view name) {
  if (name.empty()) return "empty entry name";
  if (name.size() > 4096) return "entry name too long";
  if (name.find('\0') != std::string_view::npos) return "NUL in entry name";
  if (name.front() == '/' || name.front() == '\\') return "absolute entry name";
  if (name.size() >= 2 && name[1] == ':') return "entry name with a drive letter";
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = name.find_first_of("/\\", start);
    const std::string_view part =
        name.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (part == "..") return "entry name with a '..' component";
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return std::nullopt;
}

bool is_dicomdir_name(std::string_view name) {
  const std::size_t slash = name.find_last_of("/\\");
  std::string_view last = slash == std::string_view::npos ? name : name.substr(slash + 1);
  if (last.size() != 8) return false;
  constexpr std::string_view kDicomdir = "DICOMDIR";
  for (std::size_t i = 0; i < 8; ++i)
    if ((last[i] & ~0x20) != kDicomdir[i]) return false;
  return true;
}

namespace {
bool same_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}
}  // namespace

bool is_litter_name(std::string_view name) {
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = name.find_first_of("/\\", start);
    const std::string_view part =
        name.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (part == "__MACOSX") return true;
    if (end == std::string_view::npos) {
      for (std::string_view litter : {"thumbs.db", "ehthumbs.db", "desktop.ini", ".ds_store"})
        if (same_ignoring_case(part, litter)) return true;
      return part.substr(0, 2) == "._";
    }
    start = end + 1;
  }
}

bool looks_like_zip(std::string_view head) {
  return head.size() >= 4 && head[0] == 'P' && head[1] == 'K' &&
         ((head[2] == 3 && head[3] == 4) || (head[2] == 5 && head[3] == 6));
}

ZipWalk walk_zip_fd(int fd, std::uint64_t archive_size, const ZipLimits& limits, ZipVisitor& v) {
  const Utf8Locale utf8;
  auto a = new_reader();
  if (archive_read_open_fd(a.get(), fd, 1 << 16) != ARCHIVE_OK) {
    ZipWalk out;
    out.refusal = refuse("zip_unreadable", "not a readable zip archive");
    return out;
  }
  return Walker(a.get(), archive_size, limits, v).run();
}

ZipWalk walk_zip_memory(const void* bytes, std::size_t size, const ZipLimits& limits,
                        ZipVisitor& v) {
  const Utf8Locale utf8;
  auto a = new_reader();
  // libarchive reads but does not write through this pointer.
  if (archive_read_open_memory(a.get(), const_cast<void*>(bytes), size) != ARCHIVE_OK) {
    ZipWalk out;
    out.refusal = refuse("zip_unreadable", "not a readable zip archive");
    return out;
  }
  return Walker(a.get(), size, limits, v).run();
}

}  // namespace dirgw::ingest::folder
