// The pre-scan's front-door rules (issue 17): pixel data whose encoding contradicts the transfer
// syntax, identifying UIDs that are not UIDs, UIDs encoded with VR UN, and the patient identity it
// hands to the catalog.
#include <gtest/gtest.h>

#include "ingest/prescan/prescan.h"
#include "unit/prescan/dicom_builder.h"

namespace dirgw::ingest {
namespace {

using test::DatasetBuilder;
using test::part10;

constexpr std::uint32_t kPixelData = 0x7FE00010u;

Result<PrescanResult> scan(std::string_view bytes) { return prescan_bytes(bytes, {}); }

std::string reason(const Result<PrescanResult>& r) { return r ? "accepted" : r.error().detail; }

std::string native_pixels() {
  DatasetBuilder b;
  test::standard_head(b);
  b.element(kPixelData, "OW", std::string(512, '\x01'));
  return b.take();
}

TEST(PrescanFrontDoor, NativePixelDataUnderAnEncapsulatedSyntaxIsRefused) {
  for (std::string_view ts : {test::kJpegBaseline, std::string_view("1.2.840.10008.1.2.4.70"),
                              std::string_view("1.2.840.10008.1.2.4.80"),
                              std::string_view("1.2.840.10008.1.2.4.90"), test::kRle}) {
    auto r = scan(part10(ts, native_pixels()));
    ASSERT_FALSE(r) << ts;
    EXPECT_EQ(r.error().code, ErrorCode::kPrescanRejected);
    EXPECT_NE(r.error().detail.find(
                  "native (defined-length) pixel data in an encapsulated transfer syntax"),
              std::string::npos)
        << r.error().detail;
  }
  // The same pixels under a native syntax are what they claim to be.
  EXPECT_TRUE(scan(part10(test::kExplicitLE, native_pixels())))
      << reason(scan(part10(test::kExplicitLE, native_pixels())));
}

TEST(PrescanFrontDoor, EncapsulatedPixelDataUnderANativeSyntaxIsRefused) {
  DatasetBuilder b;
  test::standard_head(b);
  b.begin_pixel_sequence().fragment("").fragment(std::string(100, '\xAB')).end_pixel_sequence();
  auto r = scan(part10(test::kExplicitLE, b.take()));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find("encapsulated) pixel data in a native transfer syntax"),
            std::string::npos);
}

std::string with_uids(std::string_view sop_instance, std::string_view study) {
  DatasetBuilder b;
  b.str(0x00080016u, "UI", test::kSecondaryCapture)
      .str(0x00080018u, "UI", sop_instance)
      .str(0x0020000Du, "UI", study)
      .str(0x0020000Eu, "UI", test::kSeries);
  return b.take();
}

TEST(PrescanFrontDoor, IdentifyingUidsWithAnythingButDigitsAndDotsAreRefused) {
  test::Meta m;
  m.sop_instance = "1.2.3.4a";
  auto bad_instance = scan(part10(m, with_uids("1.2.3.4a", test::kStudy)));
  ASSERT_FALSE(bad_instance);
  EXPECT_NE(bad_instance.error().detail.find("SOP Instance UID (0008,0018) is not a UID"),
            std::string::npos)
      << bad_instance.error().detail;

  auto bad_study = scan(part10(test::kExplicitLE, with_uids(test::kSopInstance, "1.2.840 .9")));
  ASSERT_FALSE(bad_study);
  EXPECT_NE(bad_study.error().detail.find("Study Instance UID (0020,000D) is not a UID"),
            std::string::npos);

  auto empty_component = scan(part10(test::kExplicitLE, with_uids(test::kSopInstance, "1..2")));
  EXPECT_FALSE(empty_component);
  // A leading zero is a validation finding, not a reason to refuse at the door.
  auto leading_zero = scan(part10(test::kExplicitLE, with_uids(test::kSopInstance, "1.02.3")));
  EXPECT_TRUE(leading_zero) << reason(leading_zero);
}

// UI values are padded to even length with a NUL.
std::string padded(std::string_view uid) {
  std::string v(uid);
  if (v.size() % 2 != 0) v.push_back('\0');
  return v;
}

TEST(PrescanFrontDoor, UidsEncodedWithVrUnAreReadAsUids) {
  // Some exporters write (0008,0016)/(0008,0018) with VR UN (long form): the value is the UID.
  DatasetBuilder b;
  b.element(0x00080016u, "UN", padded(test::kSecondaryCapture))
      .element(0x00080018u, "UN", padded(test::kSopInstance))
      .str(0x0020000Du, "UI", test::kStudy)
      .str(0x0020000Eu, "UI", test::kSeries);
  auto r = scan(part10(test::kExplicitLE, b.take()));
  ASSERT_TRUE(r) << reason(r);
  EXPECT_EQ(r->dataset_sop_instance_uid, test::kSopInstance);
  EXPECT_EQ(r->dataset_sop_class_uid, test::kSecondaryCapture);
}

TEST(PrescanFrontDoor, PatientIdentityIsTakenForTheCatalog) {
  DatasetBuilder b;
  b.str(0x00080016u, "UI", test::kSecondaryCapture)
      .str(0x00080018u, "UI", test::kSopInstance)
      .str(0x00100020u, "LO", "MRN0001")
      .str(0x00100021u, "LO", "LGH-MRN")
      .str(0x0020000Du, "UI", test::kStudy)
      .str(0x0020000Eu, "UI", test::kSeries);
  auto r = scan(part10(test::kExplicitLE, b.take()));
  ASSERT_TRUE(r) << reason(r);
  EXPECT_EQ(r->patient_id, "MRN0001");
  EXPECT_EQ(r->issuer_of_patient_id, "LGH-MRN");
}

TEST(PrescanFrontDoor, AnOverLongPatientIdIsNotARefusal) {
  DatasetBuilder b;
  b.str(0x00080016u, "UI", test::kSecondaryCapture)
      .str(0x00080018u, "UI", test::kSopInstance)
      .element(0x00100020u, "LO", std::string(1000, 'P'))
      .str(0x0020000Du, "UI", test::kStudy)
      .str(0x0020000Eu, "UI", test::kSeries);
  auto r = scan(part10(test::kExplicitLE, b.take()));
  ASSERT_TRUE(r) << reason(r);
  EXPECT_EQ(r->patient_id, "#over-long:1000");  // its length stands in; the value is not kept
}

}  // namespace
}  // namespace dirgw::ingest
