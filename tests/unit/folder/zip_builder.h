// Builds zip archives in memory with libarchive's writer, for the folder tests.
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include <string>
#include <vector>

namespace dirgw::ingest::folder::test {

struct ZipItem {
  std::string name, data;
  bool symlink = false;  // data is then the link target
};

inline std::string make_zip(const std::vector<ZipItem>& items) {
  std::string out(1 << 22, '\0');
  for (const auto& i : items) out.resize(std::max(out.size(), i.data.size() / 64 + 4096));
  std::size_t used = 0;
  struct archive* a = archive_write_new();
  archive_write_set_format_zip(a);
  archive_write_open_memory(a, out.data(), out.size(), &used);
  for (const auto& i : items) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, i.name.c_str());
    if (i.symlink) {
      archive_entry_set_filetype(e, AE_IFLNK);
      archive_entry_set_symlink(e, i.data.c_str());
      archive_entry_set_perm(e, 0777);
      archive_write_header(a, e);
    } else {
      archive_entry_set_filetype(e, AE_IFREG);
      archive_entry_set_perm(e, 0644);
      archive_entry_set_size(e, static_cast<la_int64_t>(i.data.size()));
      archive_write_header(a, e);
      archive_write_data(a, i.data.data(), i.data.size());
    }
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  out.resize(used);
  return out;
}

}  // namespace dirgw::ingest::folder::test
