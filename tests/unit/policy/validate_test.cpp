// Validation against the ontario-dir profile: one dataset per broken rule, built in memory, plus
// files read through validate_file().
#include "policy/validate/validate.h"

#include <gtest/gtest.h>

#include <fstream>

#include "dataset_builder.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcpixel.h"
#include "dcmtk/dcmdata/dcsequen.h"
#include "dcmtk/dcmdata/dcvrobow.h"
#include "policy/validate/finding_codes.h"

namespace dirgw::policy {
namespace {

using test::valid_ct;

const Profile& profile() {
  static const Profile p = ontario_dir_profile();
  return p;
}

std::string dump(const ValidationReport& r) {
  std::string s;
  for (const Finding& f : r.findings) {
    s += f.code + " " + f.tag + " " + (f.severity == Severity::kError ? "E" : "W") + ": " +
         f.message + "\n";
  }
  return s;
}

// No finding may repeat a value of the object.
void expect_no_values(const ValidationReport& r, std::vector<std::string> extra = {}) {
  std::vector<std::string> values = {test::kPatientId, test::kHealthNumber, "SYNTHETIC",
                                     test::kAccession, test::kStudyUid,     test::kSopUid};
  values.insert(values.end(), extra.begin(), extra.end());
  for (const Finding& f : r.findings) {
    for (const std::string& v : values) {
      if (v.empty()) continue;
      EXPECT_EQ(f.message.find(v), std::string::npos) << f.code << " repeats a value";
      EXPECT_EQ(f.tag.find(v), std::string::npos) << f.code << " repeats a value";
    }
  }
}

bool has(const ValidationReport& r, std::string_view code, std::string_view tag,
         Severity severity = Severity::kError) {
  for (const Finding& f : r.findings) {
    if (f.code == code && f.tag == tag && f.severity == severity) return true;
  }
  return false;
}

TEST(Validate, ValidCtPasses) {
  auto ds = valid_ct();
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_TRUE(r.ok) << dump(r);
  EXPECT_TRUE(r.findings.empty()) << dump(r);
  EXPECT_TRUE(decide(r).accepted());
}

TEST(Validate, BuiltinProfiles) {
  ASSERT_TRUE(builtin_profile("ontario-dir"));
  EXPECT_EQ(builtin_profile("ontario-dir")->name, "ontario-dir");
  EXPECT_FALSE(builtin_profile("nowhere"));
}

// --- required attributes: one test per attribute
// --------------------------------------------------

class RequiredAttribute : public ::testing::TestWithParam<Tag> {};

TEST_P(RequiredAttribute, MissingIsReported) {
  auto ds = valid_ct();
  const Tag t = GetParam();
  ASSERT_TRUE(ds->findAndDeleteElement(DcmTagKey(t.group, t.element)).good());
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(has(r, "attribute.missing", t.to_string())) << dump(r);
  expect_no_values(r);
  Decision d = decide(r);
  ASSERT_TRUE(d.rejected());
  EXPECT_NE(std::find(d.reasons.begin(), d.reasons.end(), "attribute.missing " + t.to_string()),
            d.reasons.end());
}

TEST_P(RequiredAttribute, EmptyIsReported) {
  auto ds = valid_ct();
  const Tag t = GetParam();
  ASSERT_TRUE(ds->putAndInsertString(DcmTagKey(t.group, t.element), "").good());
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(has(r, "attribute.empty", t.to_string())) << dump(r);
}

INSTANTIATE_TEST_SUITE_P(OntarioDir, RequiredAttribute,
                         ::testing::Values(Tag{0x0010, 0x0020}, Tag{0x0010, 0x0021},
                                           Tag{0x0020, 0x000D}, Tag{0x0020, 0x000E},
                                           Tag{0x0008, 0x0018}, Tag{0x0008, 0x0016},
                                           Tag{0x0008, 0x0020}, Tag{0x0008, 0x0060},
                                           Tag{0x0008, 0x0050}),
                         [](const ::testing::TestParamInfo<Tag>& param_info) {
                           char buf[16];
                           std::snprintf(buf, sizeof buf, "g%04X_e%04X", param_info.param.group,
                                         param_info.param.element);
                           return std::string(buf);
                         });

TEST(Validate, SpacesOnlyCountAsEmpty) {
  auto ds = valid_ct();
  ASSERT_TRUE(ds->putAndInsertString(DCM_AccessionNumber, "    ").good());
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_TRUE(has(r, "attribute.empty", "(0008,0050)")) << dump(r);
}

TEST(Validate, AccessionNotRequiredWhenProfileSaysSo) {
  Profile p = profile();
  std::erase(p.required, Tag{0x0008, 0x0050});
  auto ds = valid_ct();
  ds->findAndDeleteElement(DCM_AccessionNumber);
  EXPECT_TRUE(validate_dataset(*ds, p).ok);
}

TEST(Validate, EveryFailureIsReported) {
  auto ds = valid_ct();
  ds->findAndDeleteElement(DCM_PatientID);
  ds->findAndDeleteElement(DCM_AccessionNumber);
  ds->putAndInsertString(DCM_StudyDate, "20241340");
  ds->putAndInsertString(DCM_Modality, "XX");
  ds->putAndInsertString(DCM_SeriesInstanceUID, "1.2..3");
  ds->putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 999");
  test::set_health_number(*ds, "1234567890");
  test::put_native_pixels(*ds, 10);
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_FALSE(r.ok);
  for (const char* code :
       {"attribute.missing", "date.invalid", "modality.not_allowed", "uid.empty_component",
        "charset.unknown", "health_number.check_digit", "pixel_data.length_short"}) {
    EXPECT_TRUE(r.has(code)) << code << "\n" << dump(r);
  }
  // Two attribute.missing; "1.2..3" is both an empty UID component and an unsafe "..".
  EXPECT_EQ(r.count(Severity::kError), 9u) << dump(r);
  expect_no_values(r);
  // Every code is one the configuration knows (policy.validation.accept_findings).
  for (const Finding& f : r.findings) EXPECT_NE(find_finding_code(f.code), nullptr) << f.code;
}

// A site accepts some findings (policy.validation.accept_findings): they stay in the report,
// as warnings marked accepted, and no longer fail it; the others still do.
TEST(Validate, AcceptedFindingsAreWarnings) {
  auto ds = valid_ct();
  ds->putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 999");
  test::set_health_number(*ds, "1234567890");  // wrong check digit
  Profile p = profile();
  p.accepted = {"charset.unknown"};
  ValidationReport r = validate_dataset(*ds, p);
  EXPECT_FALSE(r.ok) << dump(r);
  EXPECT_TRUE(has(r, "charset.unknown", "(0008,0005)", Severity::kWarning)) << dump(r);
  EXPECT_TRUE(has(r, "health_number.check_digit", "(0010,1002)")) << dump(r);
  p.accepted.push_back("health_number.check_digit");
  r = validate_dataset(*ds, p);
  EXPECT_TRUE(r.ok) << dump(r);
  EXPECT_EQ(r.count(Severity::kWarning), 2u) << dump(r);
  for (const Finding& f : r.findings) EXPECT_TRUE(f.accepted) << f.code;
  EXPECT_TRUE(decide(r).accepted());
  // A warning of its own is not "accepted": only errors the site let through are.
  ds->putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 6");
  r = validate_dataset(*ds, p);
  ASSERT_TRUE(has(r, "charset.ascii_alias", "(0008,0005)", Severity::kWarning)) << dump(r);
  for (const Finding& f : r.findings) EXPECT_EQ(f.accepted, f.code != "charset.ascii_alias");

  // A code and a tag: only that attribute's finding is accepted.
  auto no_ids = valid_ct();
  no_ids->findAndDeleteElement(DCM_AccessionNumber);
  no_ids->findAndDeleteElement(DCM_PatientID);
  Profile q = profile();
  q.accepted = {"attribute.missing (0008,0050)"};
  r = validate_dataset(*no_ids, q);
  EXPECT_FALSE(r.ok) << dump(r);
  EXPECT_TRUE(has(r, "attribute.missing", "(0008,0050)", Severity::kWarning)) << dump(r);
  EXPECT_TRUE(has(r, "attribute.missing", "(0010,0020)")) << dump(r);
}

// The codes a site may never accept are those that make an object unsafe to forward at all.
TEST(Validate, FindingCodesThatCannotBeAccepted) {
  for (std::string_view code :
       {"parse", "uid.bad_character", "uid.empty", "uid.too_long", "health_number.conflicting"}) {
    const auto* c = find_finding_code(code);
    ASSERT_NE(c, nullptr) << code;
    EXPECT_FALSE(c->acceptable) << code;
  }
  EXPECT_TRUE(find_finding_code("modality.not_allowed")->acceptable);
  // Only for a named attribute: these codes cover attributes as different as an Accession Number
  // and a Patient ID (a UID with a '/' stays refused by uid.bad_character).
  for (std::string_view code : {"identifier.unsafe_characters", "attribute.missing"})
    EXPECT_TRUE(find_finding_code(code)->acceptable && find_finding_code(code)->needs_tag) << code;
  EXPECT_EQ(find_finding_code("no.such_code"), nullptr);
}

// --- health number
// ----------------------------------------------------------------------------------

TEST(HealthNumberRule, Missing) {
  auto ds = valid_ct();
  ds->findAndDeleteElement(DCM_OtherPatientIDsSequence);
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_TRUE(has(r, "health_number.missing", "(0010,1002)")) << dump(r);
}

TEST(HealthNumberRule, OtherIssuerDoesNotCount) {
  auto ds = valid_ct();
  test::set_health_number(*ds, test::kHealthNumber, "QC");
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_TRUE(has(r, "health_number.missing", "(0010,1002)")) << dump(r);
}

TEST(HealthNumberRule, RetiredOtherPatientIdsIsNotAHealthNumber) {
  auto ds = valid_ct();
  ds->findAndDeleteElement(DCM_OtherPatientIDsSequence);
  ds->putAndInsertString(DCM_RETIRED_OtherPatientIDs, test::kHealthNumber);
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_TRUE(has(r, "health_number.missing", "(0010,1002)")) << dump(r);
}

TEST(HealthNumberRule, EmptyItem) {
  auto ds = valid_ct();
  test::set_health_number(*ds, "");
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_TRUE(has(r, "health_number.empty", "(0010,1002)")) << dump(r);
  EXPECT_FALSE(r.has("health_number.missing"));
}

TEST(HealthNumberRule, EachInvalidKind) {
  const std::pair<const char*, const char*> cases[] = {
      {"1234567890", "health_number.check_digit"},
      {"123456789", "health_number.wrong_length"},
      {"12345678901", "health_number.wrong_length"},
      {"12345X7897", "health_number.non_digit"},
      {"1234567897abc", "health_number.bad_version_code"},
      {"1234567897A7", "health_number.bad_version_code"},
  };
  for (const auto& [value, code] : cases) {
    auto ds = valid_ct();
    test::set_health_number(*ds, value);
    ValidationReport r = validate_dataset(*ds, profile());
    EXPECT_FALSE(r.ok) << value;
    EXPECT_TRUE(has(r, code, "(0010,1002)")) << value << "\n" << dump(r);
    EXPECT_EQ(r.findings.size(), 1u) << dump(r);
    expect_no_values(r, {value});
  }
}

TEST(HealthNumberRule, VersionCodeAndPaddingAccepted) {
  for (const char* value : {"1234567897AB", "1234567897K", "1234567897 "}) {
    auto ds = valid_ct();
    test::set_health_number(*ds, value);
    ValidationReport r = validate_dataset(*ds, profile());
    EXPECT_TRUE(r.ok) << value << "\n" << dump(r);
  }
}

TEST(HealthNumberRule, PatientIdIssuedByTheProvince) {
  auto ds = valid_ct();
  ds->findAndDeleteElement(DCM_OtherPatientIDsSequence);
  ds->putAndInsertString(DCM_PatientID, "9876543217");
  ds->putAndInsertString(DCM_IssuerOfPatientID, "ON");
  EXPECT_TRUE(validate_dataset(*ds, profile()).ok);
  ds->putAndInsertString(DCM_PatientID, "9876543210");
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_TRUE(has(r, "health_number.check_digit", "(0010,0020)")) << dump(r);
}

TEST(HealthNumberRule, Conflicting) {
  auto ds = valid_ct();
  DcmItem* item = nullptr;
  ASSERT_TRUE(ds->findOrCreateSequenceItem(DCM_OtherPatientIDsSequence, item, -2).good());
  item->putAndInsertString(DCM_PatientID, "9876543217");
  item->putAndInsertString(DCM_IssuerOfPatientID, "ON");
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_TRUE(has(r, "health_number.conflicting", "(0010,1002)")) << dump(r);
  expect_no_values(r, {"9876543217"});
}

TEST(HealthNumberRule, SameNumberTwiceWithVersionCodeIsFine) {
  auto ds = valid_ct();
  DcmItem* item = nullptr;
  ASSERT_TRUE(ds->findOrCreateSequenceItem(DCM_OtherPatientIDsSequence, item, -2).good());
  item->putAndInsertString(DCM_PatientID, "1234567897AB");
  item->putAndInsertString(DCM_IssuerOfPatientID, "ON");
  EXPECT_TRUE(validate_dataset(*ds, profile()).ok);
}

TEST(HealthNumberRule, PresenceOnlyScheme) {
  Profile p = profile();
  p.health_number_scheme = HealthNumberScheme::kPresenceOnly;
  auto ds = valid_ct();
  test::set_health_number(*ds, "not-checked");
  EXPECT_TRUE(validate_dataset(*ds, p).ok);
}

// --- UIDs
// -------------------------------------------------------------------------------------------

TEST(UidRule, EachKindOnAnIdentifyingUid) {
  const std::pair<std::string, const char*> cases[] = {
      {std::string(65, '1'), "uid.too_long"}, {"1.2.3a", "uid.bad_character"},
      {".1.2.3", "uid.leading_dot"},          {"1.2.3.", "uid.trailing_dot"},
      {"1.2..3", "uid.empty_component"},      {"1.2.03", "uid.leading_zero"},
  };
  for (const auto& [uid, code] : cases) {
    for (const DcmTagKey& key :
         {DCM_SOPInstanceUID, DCM_StudyInstanceUID, DCM_SeriesInstanceUID, DCM_SOPClassUID}) {
      auto ds = valid_ct();
      ASSERT_TRUE(ds->putAndInsertString(key, uid.c_str()).good());
      ValidationReport r = validate_dataset(*ds, profile());
      const std::string tag = Tag{key.getGroup(), key.getElement()}.to_string();
      EXPECT_TRUE(has(r, code, tag)) << uid << " in " << tag << "\n" << dump(r);
      EXPECT_FALSE(r.ok);
      expect_no_values(r, {uid});
    }
  }
}

TEST(UidRule, OtherUidsAreWarnings) {
  auto ds = valid_ct();
  ds->putAndInsertString(DCM_FrameOfReferenceUID, "1.2.03");
  DcmItem* ref = nullptr;
  ASSERT_TRUE(ds->findOrCreateSequenceItem(DCM_ReferencedImageSequence, ref, -2).good());
  ref->putAndInsertString(DCM_ReferencedSOPClassUID, "1.2.840.10008.5.1.4.1.1.2");
  ref->putAndInsertString(DCM_ReferencedSOPInstanceUID, "1.2..9");
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_TRUE(r.ok) << dump(r);
  EXPECT_TRUE(has(r, "uid.leading_zero", "(0020,0052)", Severity::kWarning)) << dump(r);
  EXPECT_TRUE(has(r, "uid.empty_component", "(0008,1155)", Severity::kWarning)) << dump(r);
  EXPECT_TRUE(decide(r).accepted());
}

TEST(UidRule, UidWithPathSeparatorIsAlsoUnsafe) {
  auto ds = valid_ct();
  ds->putAndInsertString(DCM_SOPInstanceUID, "1.2/../../etc");
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_TRUE(has(r, "uid.bad_character", "(0008,0018)")) << dump(r);
  EXPECT_TRUE(has(r, "identifier.unsafe_characters", "(0008,0018)")) << dump(r);
}

// --- dates, modality
// -------------------------------------------------------------------------------

// ACR-NEMA's YYYY.MM.DD (a GE ultrasound of 1997 in pydicom's test files): a code of its own,
// which a site may accept without accepting dates that are no dates.
TEST(DateRule, AcrNemaFormHasItsOwnCode) {
  auto ds = valid_ct();
  ds->putAndInsertString(DCM_StudyDate, "1997.04.24");
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(has(r, "date.old_format", "(0008,0020)")) << dump(r);
  EXPECT_FALSE(r.has("date.invalid")) << dump(r);
  Profile p = profile();
  p.accepted.push_back("date.old_format");
  EXPECT_TRUE(validate_dataset(*ds, p).ok) << dump(validate_dataset(*ds, p));
  ds->putAndInsertString(DCM_StudyDate, "1997.02.30");  // no such day: not the old form
  ValidationReport bad = validate_dataset(*ds, p);
  EXPECT_FALSE(bad.ok);
  EXPECT_TRUE(has(bad, "date.invalid", "(0008,0020)")) << dump(bad);
}

TEST(DateRule, InvalidStudyDate) {
  for (const char* date : {"20240230", "2024.02.30", "2024-01-05", "240105", "20240105120000"}) {
    auto ds = valid_ct();
    ds->putAndInsertString(DCM_StudyDate, date);
    ValidationReport r = validate_dataset(*ds, profile());
    EXPECT_TRUE(has(r, "date.invalid", "(0008,0020)")) << date << "\n" << dump(r);
    expect_no_values(r, {date});
  }
}

TEST(ModalityRule, AllowList) {
  for (const char* m : {"CR", "CT", "DX", "MG", "MR", "NM", "PT", "US", "XA", "RF", "OT", "SR",
                        "DOC", "IO", "PX", "ES", "KO", "PR"}) {
    auto ds = valid_ct();
    ds->putAndInsertString(DCM_Modality, m);
    EXPECT_TRUE(validate_dataset(*ds, profile()).ok) << m;
  }
  for (const char* m : {"RTSTRUCT", "ECG", "SEG", "ct", "SC"}) {
    auto ds = valid_ct();
    ds->putAndInsertString(DCM_Modality, m);
    ValidationReport r = validate_dataset(*ds, profile());
    EXPECT_TRUE(has(r, "modality.not_allowed", "(0008,0060)")) << m << "\n" << dump(r);
  }
}

TEST(ModalityRule, EmptyAllowListAllowsAny) {
  Profile p = profile();
  p.allowed_modalities.clear();
  auto ds = valid_ct();
  ds->putAndInsertString(DCM_Modality, "RTSTRUCT");
  EXPECT_TRUE(validate_dataset(*ds, p).ok);
}

// --- pixel data
// ---------------------------------------------------------------------------------------

TEST(PixelRule, WrongLengthNative) {
  auto ds = valid_ct({.rows = 4, .columns = 4, .bits_allocated = 16});
  test::put_native_pixels(*ds, 30);  // 32 needed
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_TRUE(has(r, "pixel_data.length_short", "(7FE0,0010)")) << dump(r);
  EXPECT_FALSE(r.ok);
}

TEST(PixelRule, ExcessIsAWarning) {
  auto ds = valid_ct({.rows = 4, .columns = 4, .bits_allocated = 16});
  test::put_native_pixels(*ds, 64);
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_TRUE(r.ok) << dump(r);
  EXPECT_TRUE(has(r, "pixel_data.length_excess", "(7FE0,0010)", Severity::kWarning)) << dump(r);
}

TEST(PixelRule, MultiFrameAndColour) {
  auto ds =
      valid_ct({.rows = 3, .columns = 5, .bits_allocated = 8, .samples_per_pixel = 3, .frames = 7});
  EXPECT_TRUE(validate_dataset(*ds, profile()).ok);  // 315 bytes, padded to 316
  test::put_native_pixels(*ds, 315 - 45);            // one frame short
  EXPECT_TRUE(validate_dataset(*ds, profile()).has("pixel_data.length_short"));
}

TEST(PixelRule, OddLengthExactOrPadded) {
  auto ds = valid_ct({.rows = 3, .columns = 3, .bits_allocated = 8});
  test::put_native_pixels(*ds, 10);  // 9 needed, padded to 10
  EXPECT_TRUE(validate_dataset(*ds, profile()).findings.empty());
}

TEST(PixelRule, SingleBitPacked) {
  auto ds = valid_ct({.rows = 10, .columns = 10, .bits_allocated = 1});
  // 100 bits -> 13 bytes -> 14 padded.
  EXPECT_TRUE(validate_dataset(*ds, profile()).findings.empty());
  test::put_native_pixels(*ds, 12);
  EXPECT_TRUE(validate_dataset(*ds, profile()).has("pixel_data.length_short"));
  // Two frames of 100 bits pack into 25 bytes (frames are not byte-aligned).
  auto two = valid_ct({.rows = 10, .columns = 10, .bits_allocated = 1, .frames = 2});
  test::put_native_pixels(*two, 26);
  EXPECT_TRUE(validate_dataset(*two, profile()).findings.empty())
      << dump(validate_dataset(*two, profile()));
}

TEST(PixelRule, Ybr422) {
  auto ds = valid_ct({.rows = 4, .columns = 4, .bits_allocated = 8, .samples_per_pixel = 3});
  ds->putAndInsertString(DCM_PhotometricInterpretation, "YBR_FULL_422");
  test::put_native_pixels(*ds, 32);  // two bytes per pixel
  EXPECT_TRUE(validate_dataset(*ds, profile()).findings.empty());
}

TEST(PixelRule, MissingImageAttributes) {
  for (const DcmTagKey& key : {DCM_Rows, DCM_Columns, DCM_BitsAllocated, DCM_SamplesPerPixel}) {
    auto ds = valid_ct();
    ds->findAndDeleteElement(key);
    ValidationReport r = validate_dataset(*ds, profile());
    EXPECT_TRUE(
        has(r, "pixel_data.attribute_missing", Tag{key.getGroup(), key.getElement()}.to_string()))
        << dump(r);
  }
}

TEST(PixelRule, NumberOfFramesDefaultsToOneAndMustBeANumber) {
  auto ds = valid_ct({.frames = 0});
  EXPECT_TRUE(validate_dataset(*ds, profile()).ok);
  ds->putAndInsertString(DCM_NumberOfFrames, "abc");
  EXPECT_TRUE(validate_dataset(*ds, profile()).has("pixel_data.attribute_invalid"));
  ds->putAndInsertString(DCM_NumberOfFrames, "0");
  EXPECT_TRUE(validate_dataset(*ds, profile()).has("pixel_data.attribute_invalid"));
  ds->putAndInsertUint16(DCM_BitsAllocated, 12);
  ds->putAndInsertString(DCM_NumberOfFrames, "1");
  EXPECT_TRUE(validate_dataset(*ds, profile()).has("pixel_data.attribute_invalid"));
}

TEST(PixelRule, HugeDimensionsDoNotOverflow) {
  auto ds = valid_ct({.rows = 4, .columns = 4, .bits_allocated = 16, .frames = 0});
  ds->putAndInsertUint16(DCM_Rows, 65535);
  ds->putAndInsertUint16(DCM_Columns, 65535);
  ds->putAndInsertUint16(DCM_SamplesPerPixel, 65535);
  ds->putAndInsertUint16(DCM_BitsAllocated, 65528);
  ds->putAndInsertString(DCM_NumberOfFrames, "9999999999");
  EXPECT_TRUE(validate_dataset(*ds, profile()).has("pixel_data.length_short"));
}

TEST(PixelRule, NoPixelDataNoCheck) {
  auto ds = valid_ct();
  ds->findAndDeleteElement(DCM_PixelData);
  ds->findAndDeleteElement(DCM_Rows);
  ds->putAndInsertString(DCM_Modality, "SR");
  EXPECT_TRUE(validate_dataset(*ds, profile()).findings.empty());
}

TEST(PixelRule, EncapsulatedFragmentsPerFrame) {
  auto ds = valid_ct({.rows = 8, .columns = 8, .bits_allocated = 8, .frames = 3});
  test::put_encapsulated_pixels(*ds, EXS_JPEGProcess1, 3, 100, 3);
  EXPECT_TRUE(validate_dataset(*ds, profile()).findings.empty())
      << dump(validate_dataset(*ds, profile()));
  test::put_encapsulated_pixels(*ds, EXS_JPEGProcess1, 6, 100, 0);  // two fragments a frame
  EXPECT_TRUE(validate_dataset(*ds, profile()).findings.empty());
  test::put_encapsulated_pixels(*ds, EXS_JPEGProcess1, 2, 100, 0);
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_TRUE(has(r, "pixel_data.too_few_fragments", "(7FE0,0010)")) << dump(r);
  test::put_encapsulated_pixels(*ds, EXS_JPEGProcess1, 0, 100, 0);
  r = validate_dataset(*ds, profile());
  EXPECT_TRUE(has(r, "pixel_data.no_fragments", "(7FE0,0010)")) << dump(r);
}

TEST(PixelRule, EncapsulatedOffsetTable) {
  auto ds = valid_ct({.rows = 8, .columns = 8, .bits_allocated = 8, .frames = 3});
  test::put_encapsulated_pixels(*ds, EXS_JPEGProcess1, 3, 100, 2);
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_TRUE(r.ok);
  EXPECT_TRUE(has(r, "pixel_data.offset_table", "(7FE0,0010)", Severity::kWarning)) << dump(r);
}

TEST(PixelRule, VideoMayHaveFewerFragmentsThanFrames) {
  auto ds = valid_ct({.rows = 8, .columns = 8, .bits_allocated = 8, .frames = 30});
  test::put_encapsulated_pixels(*ds, EXS_MPEG4HighProfileLevel4_1, 1, 500, 0);
  EXPECT_TRUE(validate_dataset(*ds, profile()).ok);
}

// --- character set
// ---------------------------------------------------------------------------------

TEST(CharsetRule, UnknownAndInvalidCombination) {
  auto ds = valid_ct();
  ds->putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 999");
  EXPECT_TRUE(has(validate_dataset(*ds, profile()), "charset.unknown", "(0008,0005)"));
  ds->putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 100\\ISO 2022 IR 87");
  EXPECT_TRUE(has(validate_dataset(*ds, profile()), "charset.invalid_combination", "(0008,0005)"));
}

TEST(CharsetRule, KnownFormsPass) {
  for (const char* cs :
       {"", "ISO_IR 192", "\\ISO 2022 IR 87", "ISO 2022 IR 6\\ISO 2022 IR 149", "GB18030"}) {
    auto ds = valid_ct();
    ds->putAndInsertString(DCM_SpecificCharacterSet, cs);
    ValidationReport r = validate_dataset(*ds, profile());
    EXPECT_TRUE(r.findings.empty()) << cs << "\n" << dump(r);
  }
  auto ds = valid_ct();
  ds->findAndDeleteElement(DCM_SpecificCharacterSet);
  EXPECT_TRUE(validate_dataset(*ds, profile()).findings.empty());
}

TEST(CharsetRule, InsideASequenceItem) {
  auto ds = valid_ct();
  DcmItem* item = nullptr;
  ASSERT_TRUE(ds->findOrCreateSequenceItem(DCM_ReferencedStudySequence, item, -2).good());
  item->putAndInsertString(DCM_SpecificCharacterSet, "KLINGON");
  EXPECT_TRUE(has(validate_dataset(*ds, profile()), "charset.unknown", "(0008,0005)"));
}

// --- identifiers
// ------------------------------------------------------------------------------------

TEST(IdentifierRule, UnsafeCharacters) {
  const std::pair<DcmTagKey, std::string> cases[] = {
      {DCM_PatientID, "../../etc/passwd"},
      {DCM_PatientID, "MRN;rm -rf"},
      {DCM_PatientID,
       "A\x01"
       "B"},
      {DCM_AccessionNumber, "1'--"},
      {DCM_AccessionNumber, "A/B"},
      {DCM_IssuerOfPatientID, "LGH|MRN"},
      {DCM_StudyID, "$(id)"},
      {DCM_PatientID, "A\\B"},
  };
  for (const auto& [key, value] : cases) {
    auto ds = valid_ct();
    ASSERT_TRUE(ds->putAndInsertString(key, value.c_str()).good());
    ValidationReport r = validate_dataset(*ds, profile());
    const std::string tag = Tag{key.getGroup(), key.getElement()}.to_string();
    EXPECT_TRUE(has(r, "identifier.unsafe_characters", tag)) << value << "\n" << dump(r);
    expect_no_values(r, {value});
  }
}

TEST(IdentifierRule, HealthNumberItemIsAnIdentifierToo) {
  auto ds = valid_ct();
  test::set_health_number(*ds, "12345/7897");
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_TRUE(has(r, "identifier.unsafe_characters", "(0010,1002)")) << dump(r);
}

TEST(IdentifierRule, TooLong) {
  auto ds = valid_ct();
  ds->putAndInsertString(DCM_AccessionNumber, "ACC00000000000001");  // 17 > SH 16
  EXPECT_TRUE(has(validate_dataset(*ds, profile()), "attribute.too_long", "(0008,0050)"));
}

TEST(IdentifierRule, CanBeSwitchedOff) {
  Profile p = profile();
  p.check_identifiers = false;
  auto ds = valid_ct();
  ds->putAndInsertString(DCM_AccessionNumber, "A;B");
  EXPECT_TRUE(validate_dataset(*ds, p).ok);
}

// --- bounds
// --------------------------------------------------------------------------------------------

TEST(Validate, FindingsAreBounded) {
  auto ds = valid_ct();
  for (int i = 0; i < 300; ++i) {
    DcmItem* ref = nullptr;
    ASSERT_TRUE(ds->findOrCreateSequenceItem(DCM_ReferencedImageSequence, ref, -2).good());
    ref->putAndInsertString(DCM_ReferencedSOPInstanceUID, "1..2");
  }
  ds->putAndInsertString(DCM_Modality, "XX");  // an error after the flood of warnings
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_EQ(r.findings.size(), profile().max_findings + 1);
  EXPECT_EQ(r.findings.back().code, "findings.truncated");
  EXPECT_FALSE(r.ok);  // the dropped error still counts
  Decision d = decide(r);
  EXPECT_TRUE(d.rejected());
}

// --- files
// ------------------------------------------------------------------------------------------------

TEST(ValidateFile, ValidFile) {
  test::TempDir dir;
  auto ds = valid_ct({.rows = 64, .columns = 64, .bits_allocated = 16});  // 8 KiB: left on disk
  test::save(*ds, dir / "a.dcm");
  Result<ValidationReport> r = validate_file(dir / "a.dcm", profile());
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_TRUE(r->ok) << dump(*r);
  EXPECT_TRUE(r->findings.empty()) << dump(*r);
}

TEST(ValidateFile, LengthCheckedFromDeclaredLength) {
  test::TempDir dir;
  auto ds = valid_ct({.rows = 64, .columns = 64, .bits_allocated = 16});
  ds->putAndInsertUint16(DCM_Rows, 128);  // the 8 KiB of pixel data are now half of what's needed
  test::save(*ds, dir / "a.dcm", EXS_LittleEndianImplicit);
  Result<ValidationReport> r = validate_file(dir / "a.dcm", profile());
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->has("pixel_data.length_short")) << dump(*r);
}

TEST(ValidateFile, EncapsulatedFile) {
  test::TempDir dir;
  auto ds = valid_ct({.rows = 64, .columns = 64, .bits_allocated = 8, .frames = 4});
  test::put_encapsulated_pixels(*ds, EXS_JPEGProcess1, 3, 6000, 0);
  test::save(*ds, dir / "a.dcm", EXS_JPEGProcess1);
  Result<ValidationReport> r = validate_file(dir / "a.dcm", profile());
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->has("pixel_data.too_few_fragments")) << dump(*r);
  EXPECT_EQ(r->findings.size(), 1u) << dump(*r);
}

TEST(ValidateFile, ParseErrorIsAFinding) {
  test::TempDir dir;
  {
    std::ofstream out(dir / "bad.dcm", std::ios::binary);
    out << std::string(128, '\0') << "DICM" << std::string("\x02\x00\x10\x00UI\xff\x7f", 8)
        << "short";
  }
  Result<ValidationReport> r = validate_file(dir / "bad.dcm", profile());
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ok);
  ASSERT_EQ(r->findings.size(), 1u);
  EXPECT_EQ(r->findings[0].code, "parse");
}

// The policy stage reads the patient's keys, STAT attributes and accession from the object the
// validation parsed, instead of parsing the file again.
TEST(ValidateFile, HandsBackTheParsedObject) {
  test::TempDir dir;
  auto ds = valid_ct({.rows = 64, .columns = 64, .bits_allocated = 16});
  ds->putAndInsertString(DCM_AccessionNumber, "ACC-77");
  test::save(*ds, dir / "a.dcm");
  std::unique_ptr<DcmFileFormat> loaded;
  Result<ValidationReport> r = validate_file(dir / "a.dcm", profile(), &loaded);
  ASSERT_TRUE(r.ok());
  ASSERT_NE(loaded, nullptr);
  const char* acc = nullptr;
  ASSERT_TRUE(loaded->getDataset()->findAndGetString(DCM_AccessionNumber, acc).good());
  EXPECT_STREQ(acc, "ACC-77");
  // Pixel data over 4 KiB stayed on disk and is still read from it on demand.
  DcmElement* pixels = nullptr;
  ASSERT_TRUE(loaded->getDataset()->findAndGetElement(DCM_PixelData, pixels).good());
  EXPECT_EQ(pixels->getLength(), 64u * 64u * 2u);

  {
    std::ofstream out(dir / "bad.dcm", std::ios::binary);
    out << std::string(128, '\0') << "DICM" << std::string("\x02\x00\x10\x00UI\xff\x7f", 8)
        << "short";
  }
  std::unique_ptr<DcmFileFormat> none;
  Result<ValidationReport> bad = validate_file(dir / "bad.dcm", profile(), &none);
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(none, nullptr);  // unparsable: nothing handed back
  Result<ValidationReport> missing = validate_file(dir / "missing.dcm", profile(), &none);
  EXPECT_FALSE(missing.ok());
  EXPECT_EQ(none, nullptr);
}

TEST(ValidateFile, UnreadableFileIsAnError) {
  test::TempDir dir;
  Result<ValidationReport> r = validate_file(dir / "missing.dcm", profile());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  Result<ValidationReport> d = validate_file(dir.path(), profile());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, ErrorCode::kIo);
}

// --- issue 17, item 10: text encoding, odd lengths, oversized private values
// ------------------------------------------------------------------------------------------------

TEST(TextEncodingRule, InvalidUtf8UnderIsoIr192) {
  auto ds = valid_ct();
  ds->putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 192");
  ds->putAndInsertString(DCM_StudyDescription, "CT T\xC3\xAAte");  // valid: passes
  EXPECT_TRUE(validate_dataset(*ds, profile()).findings.empty());
  ds->putAndInsertString(DCM_StudyDescription, "CT T\xEAte");  // Latin-1 byte: not UTF-8
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_TRUE(has(r, "text.invalid_utf8", "(0008,1030)")) << dump(r);
  expect_no_values(r, {"CT T"});
}

TEST(TextEncodingRule, UndeclaredEightBitText) {
  auto ds = valid_ct();
  ds->findAndDeleteElement(DCM_SpecificCharacterSet);
  ds->putAndInsertString(DCM_PatientName, "M\xFCLLER^ANNA");  // Latin-1, undeclared
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_TRUE(has(r, "text.undeclared_characters", "(0010,0010)")) << dump(r);
  expect_no_values(r, {"LLER", "ANNA"});
  // Declared, the same bytes are not judged here.
  ds->putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 100");
  EXPECT_FALSE(validate_dataset(*ds, profile()).has("text.undeclared_characters"));
  // Switched off in the profile: not judged.
  ds->findAndDeleteElement(DCM_SpecificCharacterSet);
  Profile off = profile();
  off.check_text_encoding = false;
  EXPECT_FALSE(validate_dataset(*ds, off).has("text.undeclared_characters"));
}

// "ISO_IR 6" is not a defined term, but several vendors write it and DCMTK and Orthanc read it as
// ASCII: a warning, not a reason to quarantine; the text is then judged as ASCII.
TEST(CharacterSetRule, IsoIr6IsAWarningAndMeansAscii) {
  auto ds = valid_ct();
  ds->putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 6");
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_TRUE(r.ok) << dump(r);
  EXPECT_TRUE(has(r, "charset.ascii_alias", "(0008,0005)", Severity::kWarning)) << dump(r);
  EXPECT_EQ(r.count(Severity::kWarning), 1u) << dump(r);
  ds->putAndInsertString(DCM_PatientName, "M\xFCLLER^ANNA");
  r = validate_dataset(*ds, profile());
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(has(r, "text.undeclared_characters", "(0010,0010)")) << dump(r);
  // Still an error beside code extensions, where it is no alias of anything.
  ds->putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 6\\ISO 2022 IR 87");
  EXPECT_TRUE(validate_dataset(*ds, profile()).has("charset.unknown"));
}

TEST(ValueLengthRule, OddLengthIsAWarningFromThePrescan) {
  test::TempDir dir;
  auto ds = valid_ct();
  test::save(*ds, dir / "a.dcm");
  std::string bytes = test::read_all(dir / "a.dcm");
  // Accession Number "ACC0001 " (8, padded) becomes "ACC0001" of length 7 (DCMTK would pad it).
  const std::string padded = std::string("SH\x08\x00", 4) + test::kAccession + " ";
  const auto at = bytes.find(padded);
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, padded.size(), std::string("SH\x07\x00", 4) + test::kAccession);
  // Patient ID "MRN000123 " likewise (9): two odd values keep the dataset's length even.
  const std::string id = std::string("LO\x0a\x00", 4) + test::kPatientId + " ";
  const auto id_at = bytes.find(id);
  ASSERT_NE(id_at, std::string::npos);
  bytes.replace(id_at, id.size(), std::string("LO\x09\x00", 4) + test::kPatientId);
  {
    std::ofstream out(dir / "odd.dcm", std::ios::binary);
    out << bytes;
  }
  Result<ValidationReport> r = validate_file(dir / "odd.dcm", profile());
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(has(*r, "value.odd_length", "(0008,0050)", Severity::kWarning)) << dump(*r);
  EXPECT_TRUE(r->ok) << dump(*r);
  expect_no_values(*r);
}

TEST(ValueLengthRule, OversizedPrivateValueIsAnError) {
  test::TempDir dir;
  auto ds = valid_ct();
  ds->putAndInsertString(DcmTag(0x0009, 0x0010, EVR_LO), "SYNTH VENDOR");
  const std::vector<Uint8> blob((1u << 20) + 2, 0x5A);
  ds->putAndInsertUint8Array(DcmTag(0x0009, 0x1001, EVR_OB), blob.data(), blob.size());
  test::save(*ds, dir / "a.dcm");
  Result<ValidationReport> r = validate_file(dir / "a.dcm", profile());
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(has(*r, "private.oversized", "(0009,1001)")) << dump(*r);
  EXPECT_FALSE(r->ok);
  Profile loose = profile();
  loose.max_private_value = 2u << 20;
  Result<ValidationReport> l = validate_file(dir / "a.dcm", loose);
  ASSERT_TRUE(l.ok());
  EXPECT_TRUE(l->ok) << dump(*l);
  // Accepted by the site: reported, as a warning.
  Profile accepting = profile();
  accepting.accepted = {"private.oversized"};
  Result<ValidationReport> a = validate_file(dir / "a.dcm", accepting);
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->ok) << dump(*a);
  EXPECT_TRUE(has(*a, "private.oversized", "(0009,1001)", Severity::kWarning)) << dump(*a);
}

// Issue 17, item 5: SOP Class/Instance UID written with VR UN are read as the UIDs they hold.
TEST(UidRule, UnEncodedUidsAreReadAsUids) {
  auto ds = valid_ct();
  for (const DcmTagKey& key : {DCM_SOPClassUID, DCM_SOPInstanceUID}) {
    OFString uid;
    ASSERT_TRUE(ds->findAndGetOFString(key, uid).good());
    std::string bytes(uid.c_str());
    if (bytes.size() % 2 != 0) bytes += '\0';
    ds->findAndDeleteElement(key);
    auto* un = new DcmOtherByteOtherWord(DcmTag(key, EVR_UN));
    ASSERT_TRUE(
        un->putUint8Array(reinterpret_cast<const Uint8*>(bytes.data()), bytes.size()).good());
    ASSERT_TRUE(ds->insert(un, true).good());
  }
  ValidationReport r = validate_dataset(*ds, profile());
  EXPECT_TRUE(r.findings.empty()) << dump(r);
}

}  // namespace
}  // namespace dirgw::policy
