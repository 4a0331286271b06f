// DCMTK 3.6.7 throws std::out_of_range while it reads a data set whose Directory Record Sequence
// (0004,1220) has an item with a Directory Record Type whose last value is longer than 16 bytes
// (common/dcmtk_guard.h). The pre-scan refuses such objects at every door, so nothing here can
// reach the policy stage through dirgwd; these tests hand the object to every reader of the
// policy stage directly and check that each returns its error instead of letting the exception
// end the process. The folder's DICOMDIR reader and the priors' header reader are here too.
#include <gtest/gtest.h>

#include <stdexcept>

#include "common/dcmtk_guard.h"
#include "dataset_builder.h"
#include "dcmtk/dcmdata/dcsequen.h"
#include "ingest/folder/dicomdir.h"
#include "ingest/reports/report_object.h"
#include "policy/coerce/coerce.h"
#include "policy/deid/deid.h"
#include "policy/stage/byte_order.h"
#include "policy/stage/stage.h"
#include "policy/validate/validate.h"
#include "priors/coerce_prior.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

namespace dirgw::policy {
namespace {

using test::TempDir;
using test::valid_ct;

// DCMTK leaks what it was building when it throws (not ours to free): LeakSanitizer ignores the
// allocations of this thread while one of these lives.
struct DcmtkLeaksIgnored {
#if defined(__SANITIZE_ADDRESS__)
  DcmtkLeaksIgnored() { __lsan_disable(); }
  ~DcmtkLeaksIgnored() { __lsan_enable(); }
  DcmtkLeaksIgnored(const DcmtkLeaksIgnored&) = delete;
  DcmtkLeaksIgnored& operator=(const DcmtkLeaksIgnored&) = delete;
#endif
};

constexpr const char* kLongRecordType = "IMAGE AND A LONG TAIL\\IMAGE TOO LONG TAIL";

// A valid CT that also carries one directory record with the over-long record type.
std::filesystem::path write_trigger(const TempDir& dir, E_TransferSyntax xfer) {
  auto ds = valid_ct();
  auto* seq = new DcmSequenceOfItems(DCM_DirectoryRecordSequence);
  auto* item = new DcmItem;
  EXPECT_TRUE(item->putAndInsertString(DCM_DirectoryRecordType, kLongRecordType).good());
  seq->insert(item);
  EXPECT_TRUE(ds->insert(seq).good());
  const auto path = dir / (xfer == EXS_LittleEndianImplicit ? "implicit.dcm" : "explicit.dcm");
  test::save(*ds, path, xfer);
  return path;
}

class DcmtkExceptions : public ::testing::TestWithParam<E_TransferSyntax> {
 protected:
  TempDir dir_;
  std::filesystem::path file_ = write_trigger(dir_, GetParam());
  DcmtkLeaksIgnored leaks_;
};

// The premise: DCMTK itself throws on this file. If a newer DCMTK stops throwing (fixed upstream
// after 3.6.7), the guards are still right but these tests need another trigger.
TEST_P(DcmtkExceptions, DcmtkItselfThrowsOnTheObject) {
  DcmFileFormat ff;
  EXPECT_THROW(ff.loadFile(file_.c_str()), std::out_of_range);
}

TEST_P(DcmtkExceptions, GuardTurnsTheExceptionIntoACondition) {
  DcmFileFormat ff;
  const OFCondition c = dcmtk_guard([&] { return ff.loadFile(file_.c_str()); });
  EXPECT_TRUE(c.bad());
  EXPECT_TRUE(dcmtk_threw(c));
  EXPECT_NE(std::string(c.text()).find("DICOM library failed"), std::string::npos) << c.text();
}

TEST_P(DcmtkExceptions, ValidationReportsAParseFinding) {
  auto r = validate_file(file_, ontario_dir_profile());
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_FALSE(r->ok);
  ASSERT_FALSE(r->findings.empty());
  EXPECT_EQ(r->findings.front().code, "parse");
  EXPECT_NE(r->findings.front().message.find("DICOM library failed"), std::string::npos);
}

TEST_P(DcmtkExceptions, CoercionFails) {
  CoercionRules rules;
  rules.facility = "Lakeside General";
  rules.institution_name = "Lakeside General Hospital";
  auto r = coerce_file(
      file_, dir_ / "out.dcm", rules,
      [](const std::string&, const std::string&) -> std::optional<std::string> {
        return std::nullopt;
      },
      std::chrono::system_clock::now());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kBadDicom);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "out.dcm"));
}

// The report writer reads one of the study's images for its patient and study attributes.
TEST_P(DcmtkExceptions, ReportObjectFails) {
  hl7::Report report;
  report.text = Phi<std::string>("Impression: no acute findings.");
  reports::ObjectIdentity id;
  id.sop_instance_uid = "1.2.826.0.1.3680043.10.1011.9.1";
  id.series_uid = "1.2.826.0.1.3680043.10.1011.9.2";
  id.created = "20261205120000";
  auto r = reports::write_report_object(report, file_, id, dir_ / "report.dcm");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find("DICOM library failed"), std::string::npos) << r.error().detail;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "report.dcm"));
}

TEST_P(DcmtkExceptions, DeidentificationFails) {
  auto key = deid::Key::from_bytes(std::string(32, 'k'));
  ASSERT_TRUE(key);
  auto r = deid::deidentify_file(file_, dir_ / "deid.dcm", deid::DeidOptions{}, *key);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kBadDicom);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "deid.dcm"));
  EXPECT_FALSE(deid::preview_file(file_, deid::DeidOptions{}, *key));
}

TEST_P(DcmtkExceptions, StageReadersFail) {
  auto keys = patient_keys(file_, "ON");
  ASSERT_FALSE(keys);
  EXPECT_EQ(keys.error().code, ErrorCode::kBadDicom);
  EXPECT_EQ(accession_number(file_), "");
  config::Priority rules;
  rules.stat_attributes.push_back({"(0008,0050)", {test::kAccession}});
  EXPECT_FALSE(is_stat(file_, "PACS1", rules));
  auto converted = convert_to_little_endian(file_, dir_ / "le.dcm");
  EXPECT_FALSE(converted);
}

TEST_P(DcmtkExceptions, PriorHeaderFails) {
  auto r = priors::read_prior_header(file_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kBadDicom);
}

// The folder reads a DICOMDIR with DcmDicomDir, which reads its records the same way.
TEST_P(DcmtkExceptions, DicomdirReferencesFail) {
  auto r = ingest::folder::dicomdir_references(file_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kBadDicom);
  EXPECT_NE(r.error().detail.find("DICOM library failed"), std::string::npos) << r.error().detail;
}

INSTANTIATE_TEST_SUITE_P(BothVrEncodings, DcmtkExceptions,
                         ::testing::Values(EXS_LittleEndianExplicit, EXS_LittleEndianImplicit));

TEST(DcmtkGuard, PassesConditionsThroughAndCatchesEveryKindOfException) {
  EXPECT_TRUE(dcmtk_guard([] { return EC_Normal; }).good());
  const OFCondition bad = dcmtk_guard([] { return EC_IllegalCall; });
  EXPECT_TRUE(bad.bad());
  EXPECT_FALSE(dcmtk_threw(bad));
  const OFCondition oom = dcmtk_guard([]() -> OFCondition { throw std::bad_alloc(); });
  EXPECT_TRUE(dcmtk_threw(oom));
  EXPECT_NE(std::string(oom.text()).find("out of memory"), std::string::npos);
  const OFCondition odd = dcmtk_guard([]() -> OFCondition { throw 42; });
  EXPECT_TRUE(dcmtk_threw(odd));
  const OFCondition long_text =
      dcmtk_guard([]() -> OFCondition { throw std::runtime_error(std::string(1000, 'x')); });
  EXPECT_TRUE(dcmtk_threw(long_text));
  EXPECT_LT(std::string(long_text.text()).size(), 250u);
}

}  // namespace
}  // namespace dirgw::policy
