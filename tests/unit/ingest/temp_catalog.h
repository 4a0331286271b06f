// A real catalog and spool in a fresh temporary directory, for the ingest hand-off tests.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "catalog/catalog.h"
#include "common/files.h"
#include "fakes/fake_clock.h"
#include "ingest/spool/spool.h"
#include "unit/prescan/dicom_builder.h"

namespace dirgw::ingest::test {

class TempCatalog : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dirgw-ingest-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto c = catalog::Catalog::open(dir_ / "c.db", {"repo"}, clock_);
    ASSERT_TRUE(c.ok()) << c.error().to_string();
    catalog_ = std::move(c).value();
    auto s = Spool::open(dir_ / "spool");
    ASSERT_TRUE(s.ok()) << s.error().to_string();
    spool_ = std::make_unique<Spool>(std::move(s).value());
  }
  void TearDown() override {
    catalog_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Puts bytes into the spool as a received object would arrive.
  StoredObject store(const std::string& bytes) {
    const auto temp = spool_->new_temp_path();
    EXPECT_TRUE(write_file_durably(temp, bytes, 0640).ok());
    auto stored = spool_->commit(temp, 1 << 20);
    EXPECT_TRUE(stored.ok());
    return *stored;
  }

  // A small valid Part-10 object (Secondary Capture) with the given SOP Instance UID.
  static std::string dicom(std::string_view sop_instance = dirgw::test::kSopInstance,
                           std::string_view extra_text = "") {
    dirgw::test::DatasetBuilder b;
    dirgw::test::standard_head(b, sop_instance);
    if (!extra_text.empty()) b.str(0x00204000u, "LT", extra_text);
    dirgw::test::Meta m;
    m.sop_instance = std::string(sop_instance);
    return dirgw::test::part10(m, b.take());
  }

  std::filesystem::path dir_;
  dirgw::testing::FakeClock clock_;
  std::unique_ptr<catalog::Catalog> catalog_;
  std::unique_ptr<Spool> spool_;
};

}  // namespace dirgw::ingest::test
