#include "ingest/folder/safe_open.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "ingest/folder/dicomdir.h"

namespace dirgw::ingest::folder {
namespace {

namespace fs = std::filesystem;

class SafeOpen : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dirgw-folder-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    fs::create_directories(root_ / "in");
    fs::create_directories(root_ / "outside");
    std::ofstream(root_ / "outside" / "secret") << "outside";
    std::ofstream(root_ / "in" / "file") << "inside";
    dir_.reset(::open((root_ / "in").c_str(), O_RDONLY | O_DIRECTORY));
    ASSERT_TRUE(dir_.valid());
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
  UniqueFd dir_;
};

TEST_F(SafeOpen, RegularFileOpens) {
  auto fd = open_file_at(dir_.get(), "file");
  ASSERT_TRUE(fd.ok()) << fd.error().to_string();
  char buf[6];
  EXPECT_EQ(::read(fd->get(), buf, 6), 6);
  EXPECT_EQ(look_at(dir_.get(), "file").kind, EntryKind::kRegular);
}

TEST_F(SafeOpen, SymlinkToAFileOutsideIsRefused) {
  fs::create_symlink(root_ / "outside" / "secret", root_ / "in" / "link");
  EXPECT_EQ(look_at(dir_.get(), "link").kind, EntryKind::kSymlink);
  auto fd = open_file_at(dir_.get(), "link");
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.error().code, ErrorCode::kRefused);
  EXPECT_EQ(fd.error().detail, "symlink");
}

TEST_F(SafeOpen, SymlinkedDirectoryIsNotEntered) {
  fs::create_directory_symlink(root_ / "outside", root_ / "in" / "dirlink");
  auto d = open_dir_at(dir_.get(), "dirlink");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, ErrorCode::kRefused);
  EXPECT_FALSE(open_reference(dir_.get(), {"dirlink", "secret"}).ok());
}

TEST_F(SafeOpen, FifoIsRefusedWithoutBlocking) {
  ASSERT_EQ(::mkfifo((root_ / "in" / "pipe").c_str(), 0600), 0);
  EXPECT_EQ(look_at(dir_.get(), "pipe").kind, EntryKind::kFifo);
  auto fd = open_file_at(dir_.get(), "pipe");  // would hang without O_NONBLOCK
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.error().detail, "fifo");
}

TEST_F(SafeOpen, NamesThatAreNotPlainAreRefused) {
  EXPECT_FALSE(plain_component(""));
  EXPECT_FALSE(plain_component("."));
  EXPECT_FALSE(plain_component(".."));
  EXPECT_FALSE(plain_component("../outside/secret"));
  EXPECT_FALSE(plain_component(std::string("a\0b", 3)));
  EXPECT_TRUE(plain_component("IMG0001"));
  EXPECT_FALSE(open_file_at(dir_.get(), "../outside/secret").ok());
}

TEST_F(SafeOpen, GoneIsNotFound) {
  EXPECT_EQ(look_at(dir_.get(), "nothing").kind, EntryKind::kGone);
  auto fd = open_file_at(dir_.get(), "nothing");
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.error().code, ErrorCode::kNotFound);
}

TEST_F(SafeOpen, RemoveAtRemovesATreeButNotWhatALinkPointsTo) {
  fs::create_directories(root_ / "in" / "tree" / "sub");
  std::ofstream(root_ / "in" / "tree" / "sub" / "x") << "x";
  fs::create_directory_symlink(root_ / "outside", root_ / "in" / "tree" / "out");
  ASSERT_TRUE(remove_at(dir_.get(), "tree").ok());
  EXPECT_FALSE(fs::exists(root_ / "in" / "tree"));
  EXPECT_TRUE(fs::exists(root_ / "outside" / "secret"));
}

TEST(DicomdirFileId, SplitsAndRefusesWhatIsNotAPlainName) {
  auto id = split_file_id("DICOM\\ST000001\\IMG0001 ");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(*id, (FileId{"DICOM", "ST000001", "IMG0001"}));
  EXPECT_FALSE(split_file_id("..\\ETC\\PASSWD").ok());
  EXPECT_FALSE(split_file_id("DICOM\\\\IMG").ok());
  EXPECT_FALSE(split_file_id("/etc/passwd").ok());
  EXPECT_FALSE(split_file_id("A\\B\\C\\D\\E\\F\\G\\H\\I").ok());
}

TEST_F(SafeOpen, ReferencesResolveIgnoringCaseInsideTheTreeOnly) {
  fs::create_directories(root_ / "in" / "dicom");
  std::ofstream(root_ / "in" / "dicom" / "img1") << "x";
  auto fd = open_reference(dir_.get(), {"DICOM", "IMG1"});
  EXPECT_TRUE(fd.ok());
  auto missing = open_reference(dir_.get(), {"DICOM", "IMG2"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

TEST_F(SafeOpen, TreeStampChangesWhenAFileGrows) {
  fs::create_directories(root_ / "in" / "t");
  std::ofstream(root_ / "in" / "t" / "a") << "1";
  UniqueFd t(::open((root_ / "in" / "t").c_str(), O_RDONLY | O_DIRECTORY));
  auto s1 = tree_stamp(t.get());
  ASSERT_TRUE(s1.ok());
  EXPECT_EQ(s1->files, 1u);
  std::ofstream(root_ / "in" / "t" / "a", std::ios::app) << "23";
  auto s2 = tree_stamp(t.get());
  ASSERT_TRUE(s2.ok());
  EXPECT_EQ(s2->size, 3u);
  EXPECT_FALSE(*s1 == *s2);
}

}  // namespace
}  // namespace dirgw::ingest::folder
