#include "ingest/folder/watcher.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "common/files.h"
#include "ingest/catalog_sink.h"
#include "unit/ingest/temp_catalog.h"
#include "zip_builder.h"

namespace dirgw::ingest::folder {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

class Watcher : public ingest::test::TempCatalog {
 protected:
  void SetUp() override {
    TempCatalog::SetUp();
    folder_ = dir_ / "export";
    fs::create_directories(folder_);
    fs::create_directories(dir_ / "outside");
    sink_ = std::make_unique<CatalogSink>(
        catalog_->ingest, [] {}, catalog::NewVersionPolicy::kSend);
  }
  void TearDown() override {
    watcher_.reset();
    TempCatalog::TearDown();
  }
  // A watcher on simulated time that starts at the wall clock (file mtimes are real).
  FolderWatcher& watcher(std::string after = "move") {
    config::FolderIngest f;
    f.path = folder_;
    f.name = "ct-export";
    f.after = std::move(after);
    f.settle = seconds(5);
    clock_.advance(
        std::chrono::duration_cast<std::chrono::milliseconds>(SystemClock().now() - clock_.now()));
    watcher_ = std::make_unique<FolderWatcher>(std::vector<config::FolderIngest>{f}, *spool_,
                                               *sink_, PrescanLimits{}, clock_);
    EXPECT_TRUE(watcher_->open().ok());
    return *watcher_;
  }
  void put(const std::string& name, const std::string& bytes) {
    std::ofstream(folder_ / name, std::ios::binary) << bytes;
  }
  std::int64_t instances() {
    auto st = catalog_->queries.status();
    EXPECT_TRUE(st.ok());
    return st->instances;
  }
  // A unit refused for what it holds is rejected only when found the same a settle period later
  // (a copy may have stalled): the passes that takes are run here when the reason is not there.
  std::string reason_of(const std::string& name) {
    for (int pass = 0; pass < 3 && !fs::exists(folder_ / "rejected" / (name + ".reason")); ++pass) {
      clock_.advance(seconds(6));
      watcher_->step(true);
    }
    auto r = read_small_file(folder_ / "rejected" / (name + ".reason"));
    return r ? *r : "";
  }
  fs::path folder_;
  std::unique_ptr<CatalogSink> sink_;
  std::unique_ptr<FolderWatcher> watcher_;
};

TEST_F(Watcher, FileIsTakenOnlyAfterItSettledThenMovedToDone) {
  auto& w = watcher();
  put("IMG1", dicom());
  w.step(true);
  EXPECT_EQ(instances(), 0);
  EXPECT_TRUE(fs::exists(folder_ / "IMG1"));
  clock_.advance(seconds(5));
  w.step(true);
  EXPECT_EQ(instances(), 1);
  EXPECT_FALSE(fs::exists(folder_ / "IMG1"));
  EXPECT_TRUE(fs::exists(folder_ / "done" / "IMG1"));
  auto study = catalog_->queries.study(std::string(dirgw::test::kStudy));
  ASSERT_TRUE(study.ok() && study->has_value());
  EXPECT_EQ((*study)->instances.front().source, "folder:ct-export");
  const auto st = w.status();
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].units_taken, 1u);
  EXPECT_EQ(st[0].objects_stored, 1u);
}

TEST_F(Watcher, SameFileAgainIsTakenOnceAndStillLeavesTheFolder) {
  auto& w = watcher();
  put("A", dicom());
  put("B", dicom());
  clock_.advance(seconds(6));
  w.step(true);
  w.step(true);  // nothing new
  EXPECT_EQ(instances(), 1);
  EXPECT_TRUE(fs::exists(folder_ / "done" / "A"));
  EXPECT_TRUE(fs::exists(folder_ / "done" / "B"));
  EXPECT_EQ(w.status()[0].objects_duplicate, 1u);
}

TEST_F(Watcher, DeleteAfterIngest) {
  auto& w = watcher("delete");
  put("IMG1", dicom());
  clock_.advance(seconds(6));
  w.step(true);
  EXPECT_EQ(instances(), 1);
  EXPECT_FALSE(fs::exists(folder_ / "IMG1"));
  EXPECT_FALSE(fs::exists(folder_ / "done" / "IMG1"));
}

TEST_F(Watcher, NonDicomGoesToRejectedWithAReasonFile) {
  auto& w = watcher();
  put("notes.txt", "this is not DICOM at all, just some words in a file");
  clock_.advance(seconds(6));
  w.step(true);
  EXPECT_FALSE(fs::exists(folder_ / "rejected" / "notes.txt"));  // refused once: looked at again
  EXPECT_NE(reason_of("notes.txt").find("reason: not_dicom"), std::string::npos);
  EXPECT_TRUE(fs::exists(folder_ / "rejected" / "notes.txt"));
  EXPECT_EQ(w.status()[0].rejected, 1u);
  w.step(true);  // never retried: it is out of the folder
  EXPECT_EQ(w.status()[0].rejected, 1u);
}

TEST_F(Watcher, SymlinkAndFifoAreRefusedUnopenedAndNothingOutsideIsTouched) {
  auto& w = watcher();
  std::ofstream(dir_ / "outside" / "secret") << dicom();
  fs::create_symlink(dir_ / "outside" / "secret", folder_ / "link");
  ASSERT_EQ(::mkfifo((folder_ / "pipe").c_str(), 0600), 0);
  w.step(true);  // refused at once: no settle time for what is never opened
  EXPECT_EQ(instances(), 0);
  EXPECT_TRUE(fs::is_symlink(folder_ / "rejected" / "link"));
  EXPECT_NE(reason_of("link").find("reason: symlink"), std::string::npos);
  EXPECT_NE(reason_of("pipe").find("reason: fifo"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir_ / "outside" / "secret"));
}

TEST_F(Watcher, DatasetWithoutMetaIsTaken) {
  auto& w = watcher();
  dirgw::test::DatasetBuilder b(dirgw::test::Enc::kImplicitLE);
  dirgw::test::standard_head(b);
  put("OLDCONSOLE", b.take());
  clock_.advance(seconds(6));
  w.step(true);
  EXPECT_EQ(instances(), 1);
  EXPECT_TRUE(fs::exists(folder_ / "done" / "OLDCONSOLE"));
}

TEST_F(Watcher, ZipOfObjectsIsTakenAndABadZipRejected) {
  auto& w = watcher();
  put("good.zip", test::make_zip({{"s/1.dcm", dicom("1.2.3.1")}, {"s/2.dcm", dicom("1.2.3.2")}}));
  put("evil.zip", test::make_zip({{"../../escape.dcm", dicom("1.2.3.3")}}));
  clock_.advance(seconds(6));
  w.step(true);
  EXPECT_EQ(instances(), 2);
  EXPECT_TRUE(fs::exists(folder_ / "done" / "good.zip"));
  EXPECT_NE(reason_of("evil.zip").find("reason: zip_entry_path"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ / "escape.dcm"));
}

// An export tree without a DICOMDIR (study/series folders, as PACS and EMR exports write them):
// every file in it once settled; hidden files and nested DICOMDIRs skipped.
TEST_F(Watcher, ExportTreeWithoutDicomdirIsTakenOnceSettled) {
  auto& w = watcher();
  fs::create_directories(folder_ / "tree" / "series1");
  fs::create_directories(folder_ / "tree" / "series2" / "deeper");
  std::ofstream(folder_ / "tree" / "series1" / "IM1", std::ios::binary) << dicom("1.2.3.21");
  std::ofstream(folder_ / "tree" / "series1" / "IM2.dcm", std::ios::binary) << dicom("1.2.3.22");
  std::ofstream(folder_ / "tree" / "series2" / "deeper" / "x", std::ios::binary)
      << dicom("1.2.3.23");
  std::ofstream(folder_ / "tree" / ".DS_Store") << "finder";
  std::ofstream(folder_ / "tree" / "series2" / "DICOMDIR") << "an index of a subfolder";
  w.step(true);
  EXPECT_TRUE(fs::exists(folder_ / "tree"));  // not settled yet
  EXPECT_EQ(instances(), 0);
  clock_.advance(seconds(6));
  w.step(true);
  EXPECT_EQ(instances(), 3);
  EXPECT_TRUE(fs::exists(folder_ / "done" / "tree" / "series2" / "deeper" / "x"));
}

// A file in the tree that is not DICOM: the objects beside it are taken, the tree goes to
// rejected/ with the reason (nothing in it is deleted or silently passed over).
TEST_F(Watcher, ExportTreeWithANonDicomFileKeepsItsObjectsAndIsRejected) {
  auto& w = watcher();
  fs::create_directories(folder_ / "tree" / "s");
  std::ofstream(folder_ / "tree" / "s" / "a", std::ios::binary) << dicom("1.2.3.31");
  std::ofstream(folder_ / "tree" / "s" / "b", std::ios::binary) << dicom("1.2.3.32");
  std::ofstream(folder_ / "tree" / "index.html") << "<html>viewer</html>";
  clock_.advance(seconds(6));
  w.step(true);
  EXPECT_EQ(instances(), 2);
  const std::string why = reason_of("tree");
  EXPECT_NE(why.find("reason: not_dicom"), std::string::npos) << why;
  EXPECT_NE(why.find("of the tree"), std::string::npos) << why;
  EXPECT_TRUE(fs::exists(folder_ / "rejected" / "tree" / "index.html"));
}

// What an operating system leaves beside an export (Thumbs.db, desktop.ini, a __MACOSX folder,
// AppleDouble files) are skipped: the tree goes to done/, not to rejected/ where operators would
// read "export failed". A zip of nothing else has no DICOM object. An empty file in a tree may
// be a copy not begun yet: not skipped (the tree could be deleted without it).
TEST_F(Watcher, LitterInATreeOrZipIsSkipped) {
  auto& w = watcher();
  fs::create_directories(folder_ / "tree" / "s");
  fs::create_directories(folder_ / "tree" / "__MACOSX" / "s");
  std::ofstream(folder_ / "tree" / "s" / "a", std::ios::binary) << dicom("1.2.3.61");
  std::ofstream(folder_ / "tree" / "s" / "Thumbs.db") << "thumbnails";
  std::ofstream(folder_ / "tree" / "desktop.ini") << "[.ShellClassInfo]";
  std::ofstream(folder_ / "tree" / "__MACOSX" / "s" / "._a") << "appledouble";
  std::ofstream(folder_ / "litter.zip", std::ios::binary)
      << test::make_zip({{"Thumbs.db", "thumbnails"}, {"__MACOSX/._x", "appledouble"}});
  clock_.advance(seconds(6));
  w.step(true);
  EXPECT_EQ(instances(), 1);
  EXPECT_TRUE(fs::exists(folder_ / "done" / "tree" / "s" / "Thumbs.db"));
  EXPECT_NE(reason_of("litter.zip").find("reason: no_dicom_objects"), std::string::npos);
  fs::create_directories(folder_ / "tree2");
  std::ofstream(folder_ / "tree2" / "a", std::ios::binary) << dicom("1.2.3.62");
  std::ofstream(folder_ / "tree2" / "b");  // empty
  clock_.advance(seconds(6));
  w.step(true);
  EXPECT_NE(reason_of("tree2").find("reason: not_dicom"), std::string::npos);
}

// A copy that stalls for longer than settle reads as a truncated object: refused once, it is
// read again after another settle period, and taken once complete (input review, finding 4).
TEST_F(Watcher, ACopyThatStalledIsReadAgainBeforeItIsRejected) {
  auto& w = watcher();
  const std::string whole = dicom("1.2.3.71");
  put("slow.dcm", whole.substr(0, whole.size() / 2));
  clock_.advance(seconds(6));
  w.step(true);  // settles half-written: refused once
  EXPECT_FALSE(fs::exists(folder_ / "rejected" / "slow.dcm"));
  EXPECT_TRUE(fs::exists(folder_ / "slow.dcm"));
  std::ofstream(folder_ / "slow.dcm", std::ios::binary | std::ios::app)
      << whole.substr(whole.size() / 2);
  for (int i = 0; i < 3; ++i) {
    clock_.advance(seconds(6));
    w.step(true);
  }
  EXPECT_EQ(instances(), 1);
  EXPECT_TRUE(fs::exists(folder_ / "done" / "slow.dcm"));
  EXPECT_FALSE(fs::exists(folder_ / "rejected" / "slow.dcm.reason"));
}

// Stalled for longer still, the file is rejected; its writer then completes it in rejected/:
// it is taken back into the folder and taken (it was never retried before).
TEST_F(Watcher, ARejectedFileThatGrowsIsTakenBack) {
  auto& w = watcher();
  const std::string whole = dicom("1.2.3.72");
  put("slow.dcm", whole.substr(0, whole.size() / 2));
  EXPECT_NE(reason_of("slow.dcm").find("reason: prescan"), std::string::npos);
  std::ofstream(folder_ / "rejected" / "slow.dcm", std::ios::binary | std::ios::app)
      << whole.substr(whole.size() / 2);
  for (int i = 0; i < 4; ++i) {
    clock_.advance(seconds(6));
    w.step(true);
  }
  EXPECT_EQ(instances(), 1);
  EXPECT_TRUE(fs::exists(folder_ / "done" / "slow.dcm"));
  EXPECT_FALSE(fs::exists(folder_ / "rejected" / "slow.dcm"));
  EXPECT_FALSE(fs::exists(folder_ / "rejected" / "slow.dcm.reason"));
}

// The folder takes the transfer syntaxes the receiver takes: the pre-scan reads any JPEG-family
// UID's structure, but HTJ2K, JPEG XL, JPEG 2000 Part 2 or a made-up UID would be misread later.
TEST_F(Watcher, ATransferSyntaxTheReceiverDoesNotTakeIsRejected) {
  auto& w = watcher();
  w.set_transfer_syntaxes({"1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.50"});
  auto object = [](std::string_view uid, std::string_view ts) {
    dirgw::test::DatasetBuilder b;
    dirgw::test::standard_head(b, uid);
    b.begin_pixel_sequence().fragment("").fragment("\xFF\xD8\xFF\xD9").end_pixel_sequence();
    dirgw::test::Meta m;
    m.sop_instance = std::string(uid);
    m.transfer_syntax = std::string(ts);
    return dirgw::test::part10(m, b.take());
  };
  put("htj2k.dcm", object("1.2.3.81", "1.2.840.10008.1.2.4.201"));
  put("made-up.dcm", object("1.2.3.82", "1.2.840.10008.1.2.4.999"));
  put("jpeg.dcm", object("1.2.3.83", "1.2.840.10008.1.2.4.50"));
  clock_.advance(seconds(6));
  w.step(true);
  const std::string why = reason_of("htj2k.dcm");
  EXPECT_NE(why.find("reason: transfer_syntax"), std::string::npos) << why;
  EXPECT_NE(why.find("1.2.840.10008.1.2.4.201"), std::string::npos) << why;
  EXPECT_NE(reason_of("made-up.dcm").find("reason: transfer_syntax"), std::string::npos);
  EXPECT_EQ(instances(), 1);
  EXPECT_TRUE(fs::exists(folder_ / "done" / "jpeg.dcm"));
}

// Some older writers put the meta header first, without the preamble and "DICM" (DCMTK reads
// such a file): given them, it is taken as any Part-10 file (it was not_dicom).
TEST_F(Watcher, AMetaHeaderWithoutPreambleIsTaken) {
  auto& w = watcher();
  put("nopreamble.dcm", dicom("1.2.3.91").substr(132));
  put("dataset-only", std::string(200, 'x'));  // still not DICOM
  clock_.advance(seconds(6));
  w.step(true);
  EXPECT_EQ(instances(), 1);
  EXPECT_TRUE(fs::exists(folder_ / "done" / "nopreamble.dcm"));
  EXPECT_NE(reason_of("dataset-only").find("reason: not_dicom"), std::string::npos);
}

// A file that keeps changing (a log written into the folder) is taken back once, then left in
// rejected/; a different file an operator puts under the name there is never taken back.
TEST_F(Watcher, AFileThatKeepsChangingIsTakenBackOnce) {
  auto& w = watcher();
  put("app.log", "line 1\n");
  EXPECT_NE(reason_of("app.log").find("reason: not_dicom"), std::string::npos);
  auto run = [&](int passes) {
    for (int i = 0; i < passes; ++i) {
      clock_.advance(seconds(6));
      w.step(true);
    }
  };
  std::ofstream(folder_ / "rejected" / "app.log", std::ios::app) << "line 2\n";
  run(1);
  EXPECT_TRUE(fs::exists(folder_ / "app.log"));  // taken back
  EXPECT_FALSE(fs::exists(folder_ / "rejected" / "app.log.reason"));
  EXPECT_NE(reason_of("app.log").find("reason: not_dicom"), std::string::npos);  // again
  std::ofstream(folder_ / "rejected" / "app.log", std::ios::app) << "line 3\n";
  run(3);
  EXPECT_FALSE(fs::exists(folder_ / "app.log"));
  EXPECT_TRUE(fs::exists(folder_ / "rejected" / "app.log"));

  put("notes.txt", "words");
  EXPECT_NE(reason_of("notes.txt").find("reason: not_dicom"), std::string::npos);
  std::ofstream(folder_ / "rejected" / "other") << "an operator's other file";  // a new inode
  fs::rename(folder_ / "rejected" / "other", folder_ / "rejected" / "notes.txt");
  run(3);
  EXPECT_FALSE(fs::exists(folder_ / "notes.txt"));
  EXPECT_TRUE(fs::exists(folder_ / "rejected" / "notes.txt"));
}

// A symbolic link anywhere in the tree refuses it; what it points to is never opened.
// A writer that adds to a tree while it is being read: the tree is not moved to done/ with an
// unread file in it; it settles again and is taken whole.
TEST_F(Watcher, TreeChangedWhileBeingReadWaitsAndIsTakenWhole) {
  fs::create_directories(folder_ / "tree" / "s");
  std::ofstream(folder_ / "tree" / "s" / "a", std::ios::binary) << dicom("1.2.3.51");
  std::ofstream(folder_ / "tree" / "s" / "b", std::ios::binary) << dicom("1.2.3.52");
  bool added = false;
  // The first object of the study wakes the sink's callback: the "writer" adds a file then.
  sink_ = std::make_unique<CatalogSink>(
      catalog_->ingest,
      [&] {
        if (added) return;
        added = true;
        std::ofstream(folder_ / "tree" / "s" / "c", std::ios::binary) << dicom("1.2.3.53");
      },
      catalog::NewVersionPolicy::kSend);
  auto& w = watcher();
  clock_.advance(seconds(6));
  w.step(true);
  ASSERT_TRUE(added);
  EXPECT_TRUE(fs::exists(folder_ / "tree" / "s" / "c"));  // still in place, not in done/
  EXPECT_FALSE(fs::exists(folder_ / "done" / "tree"));
  clock_.advance(seconds(6));
  w.step(true);
  clock_.advance(seconds(6));
  w.step(true);
  EXPECT_EQ(instances(), 3);
  EXPECT_TRUE(fs::exists(folder_ / "done" / "tree" / "s" / "c"));
}

TEST_F(Watcher, ExportTreeWithASymlinkIsRefused) {
  auto& w = watcher();
  fs::create_directories(dir_ / "outside");
  std::ofstream(dir_ / "outside" / "secret", std::ios::binary) << dicom("1.2.3.41");
  fs::create_directories(folder_ / "tree" / "s");
  std::ofstream(folder_ / "tree" / "s" / "a", std::ios::binary) << dicom("1.2.3.42");
  fs::create_symlink(dir_ / "outside" / "secret", folder_ / "tree" / "s" / "link");
  clock_.advance(seconds(6));
  w.step(true);
  EXPECT_NE(reason_of("tree").find("reason: symlink"), std::string::npos);
  EXPECT_EQ(instances(), 1);  // the file beside it, not what the link points to
  EXPECT_TRUE(fs::exists(dir_ / "outside" / "secret"));
}

TEST_F(Watcher, DirectoryWithNoDicomObjectIsRejected) {
  auto& w = watcher();
  fs::create_directories(folder_ / "empty");
  fs::create_directories(folder_ / "hidden");
  std::ofstream(folder_ / "hidden" / ".part") << "a writer's temporary";
  clock_.advance(seconds(6));
  w.step(true);
  EXPECT_NE(reason_of("empty").find("reason: no_dicom_objects"), std::string::npos);
  EXPECT_NE(reason_of("hidden").find("reason: no_dicom_objects"), std::string::npos);
}

// The DICOMDIR DCMTK's dcmmkdir wrote for a CD with DICOM\IM000001 and DICOM\IM000002 (the
// fuzz seed, after its selector byte), with `from` replaced by `to` (same length) in its bytes.
void write_dicomdir(const fs::path& dir, const std::string& from = "", const std::string& to = "") {
  auto seed = read_small_file(fs::path(DIRGW_SOURCE_DIR) / "tests/data/folder/dicomdir");
  ASSERT_TRUE(seed.ok());
  std::string bytes = seed->substr(1);
  if (!from.empty()) {
    const auto at = bytes.find(from);
    ASSERT_NE(at, std::string::npos);
    ASSERT_EQ(from.size(), to.size());
    bytes.replace(at, from.size(), to);
  }
  std::ofstream(dir / "DICOMDIR", std::ios::binary) << bytes;
}

TEST_F(Watcher, DicomdirTreeTakesOnlyTheReferencedFiles) {
  auto& w = watcher();
  const fs::path staging = dir_ / "cd";
  fs::create_directories(staging / "DICOM");
  std::ofstream(staging / "DICOM" / "IM000001", std::ios::binary) << dicom("1.2.3.11");
  std::ofstream(staging / "DICOM" / "IM000002", std::ios::binary) << dicom("1.2.3.12");
  std::ofstream(staging / "DICOM" / "UNLISTED", std::ios::binary) << dicom("1.2.3.13");
  write_dicomdir(staging);
  fs::rename(staging, folder_ / "cd");
  w.step(true);
  clock_.advance(seconds(6));
  w.step(true);
  EXPECT_EQ(instances(), 2);
  EXPECT_TRUE(fs::exists(folder_ / "done" / "cd" / "DICOMDIR"));
}

// A CD whose DICOMDIR cannot be read (here cut short; pydicom's DICOMDIR-nooffset has item
// lengths that disagree with its sequence): its images are taken as from an export tree, and the
// tree goes to rejected/ saying why and what was taken.
TEST_F(Watcher, UnreadableDicomdirTreeIsTakenAsAnExportTree) {
  auto& w = watcher();
  const fs::path staging = dir_ / "cd";
  fs::create_directories(staging / "DICOM");
  std::ofstream(staging / "DICOM" / "IM000001", std::ios::binary) << dicom("1.2.3.21");
  std::ofstream(staging / "DICOM" / "IM000002", std::ios::binary) << dicom("1.2.3.22");
  write_dicomdir(staging);
  fs::resize_file(staging / "DICOMDIR", fs::file_size(staging / "DICOMDIR") - 40);
  fs::rename(staging, folder_ / "cd");
  w.step(true);
  clock_.advance(seconds(6));
  w.step(true);
  EXPECT_EQ(instances(), 2);
  const std::string why = reason_of("cd");
  EXPECT_TRUE(fs::exists(folder_ / "rejected" / "cd" / "DICOM" / "IM000001"));
  EXPECT_NE(why.find("reason: dicomdir_unreadable"), std::string::npos) << why;
  EXPECT_NE(why.find("the DICOMDIR cannot be read"), std::string::npos) << why;
  EXPECT_NE(why.find("2 DICOM object(s) of the tree were taken"), std::string::npos) << why;
}

// A DICOMDIR copied in by itself (its folders left behind) is refused with words that say so,
// not taken for an empty success nor refused for lacking object UIDs.
TEST_F(Watcher, DicomdirAloneIsRejectedWithWhatToDo) {
  auto& w = watcher();
  const fs::path staging = dir_ / "alone";
  fs::create_directories(staging);
  write_dicomdir(staging);
  fs::rename(staging / "DICOMDIR", folder_ / "DICOMDIR");
  clock_.advance(seconds(6));
  w.step(true);
  EXPECT_EQ(instances(), 0);
  EXPECT_NE(reason_of("DICOMDIR").find("reason: dicomdir_alone"), std::string::npos)
      << reason_of("DICOMDIR");
  EXPECT_TRUE(fs::exists(folder_ / "rejected" / "DICOMDIR"));
  EXPECT_NE(reason_of("DICOMDIR").find("copy the whole media folder"), std::string::npos);
}

// A CD copied as an ISO 9660 file system shows it without name mapping: lower case, version
// numbers (";1") and the empty extension ("."), where the DICOMDIR says DICOM\IM000001.
TEST_F(Watcher, DicomdirTreeWithIso9660Names) {
  auto& w = watcher();
  const fs::path staging = dir_ / "cd";
  fs::create_directories(staging / "dicom");
  std::ofstream(staging / "dicom" / "im000001;1", std::ios::binary) << dicom("1.2.3.31");
  std::ofstream(staging / "dicom" / "IM000002.", std::ios::binary) << dicom("1.2.3.32");
  write_dicomdir(staging);
  fs::rename(staging, folder_ / "cd");
  w.step(true);
  clock_.advance(seconds(6));
  w.step(true);
  EXPECT_EQ(instances(), 2);
  EXPECT_TRUE(fs::exists(folder_ / "done" / "cd" / "DICOMDIR"));
}

TEST_F(Watcher, DicomdirReferenceOutsideTheTreeIsRefused) {
  auto& w = watcher();
  const fs::path staging = dir_ / "cd";
  fs::create_directories(staging / "DICOM");
  std::ofstream(dir_ / "outside" / "IMG", std::ios::binary) << dicom("1.2.3.21");
  std::ofstream(staging / "DICOM" / "IM000001", std::ios::binary) << dicom("1.2.3.22");
  write_dicomdir(staging, "DICOM\\IM000002", "..\\OUTSID\\IMG0");
  fs::rename(staging, folder_ / "cd");
  clock_.advance(seconds(6));
  w.step(true);
  w.step(true);
  EXPECT_NE(reason_of("cd").find("reason: dicomdir"), std::string::npos) << reason_of("cd");
  EXPECT_EQ(instances(), 0);
}

TEST_F(Watcher, NothingIsTakenWhileTheSpoolIsBelowItsFloor) {
  config::FolderIngest f;
  f.path = folder_;
  f.name = "ct-export";
  watcher_ = std::make_unique<FolderWatcher>(std::vector<config::FolderIngest>{f}, *spool_, *sink_,
                                             PrescanLimits{}, clock_, ZipLimits{}, nullptr,
                                             std::uint64_t{1} << 62);
  ASSERT_TRUE(watcher_->open().ok());
  put("IMG1", dicom());
  clock_.advance(std::chrono::hours(1));
  watcher_->step(true);
  EXPECT_EQ(instances(), 0);
  EXPECT_TRUE(fs::exists(folder_ / "IMG1"));
  EXPECT_NE(watcher_->status()[0].last_error.find("free-space floor"), std::string::npos);
}

TEST_F(Watcher, NextStepIsDueWhenTheWaitingFileSettles) {
  auto& w = watcher();
  put("IMG1", dicom());
  const TimePoint due = w.step(true);
  EXPECT_LE(due, clock_.now() + seconds(5));
  EXPECT_GT(due, clock_.now());
}

}  // namespace
}  // namespace dirgw::ingest::folder
