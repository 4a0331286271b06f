// ingest::content_key_file and same_content: the same instance in other bytes (another meta
// header, implicit instead of explicit VR, sequences and items in the other length form, a
// group length or padding more, another transfer syntax) is known as the same; a changed element
// or changed pixels in the same syntax is not.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "ingest/prescan/prescan.h"
#include "unit/prescan/dicom_builder.h"

namespace dirgw::ingest {
namespace {

using dirgw::test::DatasetBuilder;
using dirgw::test::Enc;

struct Shape {
  Enc enc = Enc::kExplicitLE;
  bool undefined_lengths = false;  // sequences and items
  bool group_length = false;       // a (0020,0000) element
  bool padding = false;            // trailing (FFFC,FFFC)
  std::string patient_name = "Synthetic^Patient";
  std::string pixels = std::string(64, '\x11');
  bool encapsulated = false;
  bool split = false;  // the codestream in two fragments
  std::string private_creator = "ACME 1.1";
};

std::string dataset(const Shape& s) {
  DatasetBuilder b(s.enc);
  b.str(0x00080016u, "UI", dirgw::test::kSecondaryCapture)
      .str(0x00080018u, "UI", dirgw::test::kSopInstance)
      .str(0x00080060u, "CS", "OT")
      .begin_sequence(0x00081110u, s.undefined_lengths)
      .begin_item(s.undefined_lengths)
      .str(0x00081150u, "UI", "1.2.840.10008.3.1.2.3.1")
      .end_item()
      .end_sequence()
      .begin_sequence(0x00081140u, s.undefined_lengths)  // empty
      .end_sequence()
      .str(0x00090010u, "LO", s.private_creator)
      .str(0x00100010u, "PN", s.patient_name);
  if (s.group_length) b.element(0x00200000u, "UL", std::string("\x24\0\0\0", 4));
  b.str(0x0020000Du, "UI", dirgw::test::kStudy).str(0x0020000Eu, "UI", dirgw::test::kSeries);
  if (s.encapsulated) {
    b.begin_pixel_sequence().fragment("");
    if (s.split) {
      b.fragment(s.pixels.substr(0, 8)).fragment(s.pixels.substr(8));
    } else {
      b.fragment(s.pixels);
    }
    b.end_pixel_sequence();
  } else {
    b.element(0x7FE00010u, "OW", s.pixels);
  }
  if (s.padding) b.element(0xFFFCFFFCu, "OB", std::string(8, '\0'));
  return b.take();
}

class ContentKeyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dirgw-content-key-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string key(const Shape& s, std::string_view ts = dirgw::test::kExplicitLE,
                  std::string_view implementation_extra = "") {
    dirgw::test::Meta m;
    m.transfer_syntax = std::string(ts);
    m.extra = std::string(implementation_extra);
    const auto path = dir_ / std::to_string(n_++);
    std::ofstream(path, std::ios::binary) << dirgw::test::part10(m, dataset(s));
    auto k = content_key_file(path, PrescanLimits{});
    EXPECT_TRUE(k.ok()) << k.error().to_string();
    return k.ok() ? *k : std::string();
  }

  std::filesystem::path dir_;
  int n_ = 0;
};

TEST_F(ContentKeyTest, SameInstanceInOtherBytesIsTheSame) {
  const std::string base = key(Shape{});
  ASSERT_FALSE(base.empty());
  EXPECT_TRUE(same_content(base, base));
  // Another door's meta header (an implementation version name of its own).
  dirgw::test::DatasetBuilder extra(Enc::kExplicitLE);
  extra.str(0x00020013u, "SH", "OTHER_DOOR_1");
  EXPECT_TRUE(same_content(base, key(Shape{}, dirgw::test::kExplicitLE, extra.take())));
  // Implicit VR (dcmsend's and many PACS' choice), with sequences of undefined length.
  Shape implicit;
  implicit.enc = Enc::kImplicitLE;
  implicit.undefined_lengths = true;
  EXPECT_TRUE(same_content(base, key(implicit, dirgw::test::kImplicitLE)));
  // A group length and trailing padding say nothing about the content.
  Shape padded;
  padded.group_length = true;
  padded.padding = true;
  EXPECT_TRUE(same_content(base, key(padded)));
  // Deflated: the same elements once inflated.
  dirgw::test::Meta deflated_meta;
  deflated_meta.transfer_syntax = std::string(dirgw::test::kDeflated);
  const auto deflated = dir_ / "deflated";
  std::ofstream(deflated, std::ios::binary)
      << dirgw::test::part10(deflated_meta, dirgw::test::raw_deflate(dataset(Shape{})));
  auto k = content_key_file(deflated, PrescanLimits{});
  ASSERT_TRUE(k.ok()) << k.error().to_string();
  EXPECT_TRUE(same_content(base, *k));
}

// Pixels in another transfer syntax (JPEG-LS where the other copy is native) differ as bytes:
// a new version, though possibly the same image. A PACS that flipped or masked an image and
// kept its UID must not be taken for a duplicate. The same codestream cut into other fragments
// is the same.
TEST_F(ContentKeyTest, PixelsInAnotherSyntaxAreNotTakenForTheSame) {
  const std::string native = key(Shape{});
  Shape compressed;
  compressed.encapsulated = true;
  compressed.pixels = "JPEG-LS-CODESTREAM";
  const std::string jpeg_ls = key(compressed, "1.2.840.10008.1.2.4.80");
  EXPECT_FALSE(same_content(native, jpeg_ls));
  Shape recompressed = compressed;
  recompressed.pixels = "ANOTHER-CODESTREAM";
  EXPECT_FALSE(same_content(jpeg_ls, key(recompressed, "1.2.840.10008.1.2.4.80")));
  Shape split = compressed;
  split.split = true;
  EXPECT_TRUE(same_content(jpeg_ls, key(split, "1.2.840.10008.1.2.4.80")));
}

TEST_F(ContentKeyTest, ChangedElementsOrPixelsAreANewVersion) {
  const std::string base = key(Shape{});
  Shape renamed;
  renamed.patient_name = "Corrected^Name";
  EXPECT_FALSE(same_content(base, key(renamed)));
  Shape creator;  // a private element's value
  creator.private_creator = "ACME 1.2";
  EXPECT_FALSE(same_content(base, key(creator)));
  Shape pixels;  // native both times: pixels compared byte for byte
  pixels.pixels = std::string(64, '\x12');
  EXPECT_FALSE(same_content(base, key(pixels)));
  pixels.enc = Enc::kImplicitLE;  // another native syntax: still byte for byte
  EXPECT_FALSE(same_content(base, key(pixels, dirgw::test::kImplicitLE)));
}

// A DCMTK-based sender re-encodes text values with the padding they need, no more: a file's
// extra trailing spaces (GDCM's "DERIVED \\SECONDARY\\OTHER  ") are gone in its copy. For a tag
// the dictionary calls text, trailing padding is not content; elsewhere every byte counts.
TEST_F(ContentKeyTest, TrailingPaddingOfTextIsNotContent) {
  auto key_with = [&](const std::string& type, bool text) {
    DatasetBuilder b;
    b.str(0x00080008u, "CS", type)
        .str(0x00080016u, "UI", dirgw::test::kSecondaryCapture)
        .str(0x00080018u, "UI", dirgw::test::kSopInstance)
        .str(0x0020000Du, "UI", dirgw::test::kStudy)
        .str(0x0020000Eu, "UI", dirgw::test::kSeries);
    const auto path = dir_ / std::to_string(n_++);
    std::ofstream(path, std::ios::binary) << dirgw::test::part10(dirgw::test::Meta{}, b.take());
    auto k = content_key_file(path, PrescanLimits{},
                              [text](std::uint32_t tag) { return text && tag == 0x00080008u; });
    return k.ok() ? *k : std::string();
  };
  const std::string trimmed = key_with("DERIVED\\SECONDARY", true);
  ASSERT_FALSE(trimmed.empty());
  EXPECT_TRUE(same_content(trimmed, key_with("DERIVED\\SECONDARY    ", true)));
  EXPECT_TRUE(same_content(key_with("", true), key_with("    ", true)));  // padding alone: empty
  EXPECT_FALSE(same_content(trimmed, key_with("DERIVED \\SECONDARY", true)));  // inside: content
  EXPECT_FALSE(
      same_content(key_with("DERIVED\\SECONDARY", false), key_with("DERIVED\\SECONDARY  ", false)));
}

TEST(SameContent, MalformedKeysAreNeverTheSame) {
  EXPECT_FALSE(same_content("", ""));
  EXPECT_FALSE(same_content("x", "x"));
  EXPECT_FALSE(same_content("c1 1.2 n aa", "c1 1.2 n aa"));
  EXPECT_TRUE(same_content("c1 1.2 n aa bb", "c1 1.2 n aa bb"));
  EXPECT_FALSE(same_content("c2 1.2 n aa bb", "c2 1.2 n aa bb"));
}

TEST_F(ContentKeyTest, AnObjectThatDoesNotPrescanHasNoKey) {
  const auto path = dir_ / "broken";
  std::ofstream(path, std::ios::binary) << std::string(200, 'x');
  EXPECT_FALSE(content_key_file(path, PrescanLimits{}).ok());
  EXPECT_FALSE(content_key_file(dir_ / "missing", PrescanLimits{}).ok());
}

}  // namespace
}  // namespace dirgw::ingest
