// Coercion: what is stamped, what Original Attributes Sequence records, the health-number fill,
// refused rules, and the derived file: same bytes for everything untouched, pixel data byte for
// byte, deterministic.
#include "policy/coerce/coerce.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstring>

#include "dataset_builder.h"
#include "dcmtk/dcmdata/dcsequen.h"
#include "policy/validate/validate.h"

namespace dirgw::policy {
namespace {

using namespace std::chrono;
using test::valid_ct;

const system_clock::time_point kWhen = sys_days{year{2024} / January / 5} + 12h + 30min;
constexpr const char* kWhenText = "20240105123000+0000";

CoercionRules lakeside() {
  CoercionRules r;
  r.facility = "Lakeside General";
  r.institution_name = "Lakeside General Hospital";
  r.issuer_of_patient_id = "LGH-MRN";
  return r;
}

HealthNumberLookup no_lookup() {
  return [](const std::string&, const std::string&) -> std::optional<std::string> {
    ADD_FAILURE() << "lookup called";
    return std::nullopt;
  };
}

std::string str(DcmItem& item, const DcmTagKey& key) {
  OFString v;
  if (item.findAndGetOFStringArray(key, v).bad()) return "<absent>";
  return v.c_str();
}

DcmItem* original_item(DcmItem& ds, unsigned long index) {
  DcmSequenceOfItems* seq = nullptr;
  if (ds.findAndGetSequence(DCM_OriginalAttributesSequence, seq).bad() || seq == nullptr) {
    return nullptr;
  }
  return seq->getItem(index);
}

DcmItem* modified_item(DcmItem& original) {
  DcmSequenceOfItems* seq = nullptr;
  if (original.findAndGetSequence(DCM_ModifiedAttributesSequence, seq).bad() || seq == nullptr ||
      seq->card() != 1) {
    return nullptr;
  }
  return seq->getItem(0);
}

TEST(Coerce, StampsAndRecordsPriorValues) {
  auto ds = valid_ct();
  CoercionRules rules = lakeside();
  rules.issuer_of_patient_id = "LGH-MRN2";
  Result<CoercionResult> r = coerce_dataset(*ds, rules, no_lookup(), kWhen);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_TRUE(r->changed);
  EXPECT_EQ(r->changed_tags, (std::vector<std::string>{"(0008,0080)", "(0010,0021)"}));
  EXPECT_EQ(str(*ds, DCM_InstitutionName), "Lakeside General Hospital");
  EXPECT_EQ(str(*ds, DCM_IssuerOfPatientID), "LGH-MRN2");

  DcmItem* oa = original_item(*ds, 0);
  ASSERT_NE(oa, nullptr);
  EXPECT_EQ(str(*oa, DCM_AttributeModificationDateTime), kWhenText);
  EXPECT_EQ(str(*oa, DCM_ModifyingSystem), "dirgw");
  EXPECT_EQ(str(*oa, DCM_ReasonForTheAttributeModification), "COERCE");
  EXPECT_EQ(str(*oa, DCM_SourceOfPreviousValues), "Lakeside General");
  DcmItem* mod = modified_item(*oa);
  ASSERT_NE(mod, nullptr);
  EXPECT_EQ(mod->card(), 2u);
  EXPECT_EQ(str(*mod, DCM_InstitutionName), "Old Name Hospital");
  EXPECT_EQ(str(*mod, DCM_IssuerOfPatientID), test::kMrnIssuer);
}

TEST(Coerce, AddedAttributeIsRecordedWithZeroLength) {
  auto ds = valid_ct();
  ds->findAndDeleteElement(DCM_InstitutionName);
  Result<CoercionResult> r = coerce_dataset(*ds, lakeside(), no_lookup(), kWhen);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->changed_tags, std::vector<std::string>{"(0008,0080)"});
  DcmItem* mod = modified_item(*original_item(*ds, 0));
  ASSERT_NE(mod, nullptr);
  DcmElement* e = nullptr;
  ASSERT_TRUE(mod->findAndGetElement(DCM_InstitutionName, e).good());
  EXPECT_EQ(e->getLength(), 0u);
}

TEST(Coerce, SameValueIsNoChange) {
  auto ds = valid_ct();
  CoercionRules rules = lakeside();
  rules.institution_name = "Old Name Hospital";
  rules.issuer_of_patient_id = test::kMrnIssuer;
  Result<CoercionResult> r = coerce_dataset(*ds, rules, no_lookup(), kWhen);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->changed);
  EXPECT_TRUE(r->changed_tags.empty());
  EXPECT_EQ(original_item(*ds, 0), nullptr);
}

TEST(Coerce, Idempotent) {
  auto ds = valid_ct();
  ASSERT_TRUE(coerce_dataset(*ds, lakeside(), no_lookup(), kWhen)->changed);
  Result<CoercionResult> again = coerce_dataset(*ds, lakeside(), no_lookup(), kWhen);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->changed);
  DcmSequenceOfItems* seq = nullptr;
  ASSERT_TRUE(ds->findAndGetSequence(DCM_OriginalAttributesSequence, seq).good());
  EXPECT_EQ(seq->card(), 1u);
}

TEST(Coerce, ExistingOriginalAttributesItemsArePreserved) {
  auto ds = valid_ct();
  DcmItem* earlier = nullptr;
  ASSERT_TRUE(ds->findOrCreateSequenceItem(DCM_OriginalAttributesSequence, earlier, -2).good());
  earlier->putAndInsertString(DCM_ModifyingSystem, "PACS1");
  earlier->putAndInsertString(DCM_ReasonForTheAttributeModification, "CORRECT");
  ASSERT_TRUE(coerce_dataset(*ds, lakeside(), no_lookup(), kWhen).ok());
  DcmSequenceOfItems* seq = nullptr;
  ASSERT_TRUE(ds->findAndGetSequence(DCM_OriginalAttributesSequence, seq).good());
  ASSERT_EQ(seq->card(), 2u);
  EXPECT_EQ(str(*seq->getItem(0), DCM_ModifyingSystem), "PACS1");
  EXPECT_EQ(str(*seq->getItem(1), DCM_ModifyingSystem), "dirgw");
}

TEST(Coerce, SetAttributes) {
  auto ds = valid_ct();
  CoercionRules rules;
  rules.facility = "Lakeside General";
  rules.set_attributes = {{Tag{0x0018, 0x0015}, "CHEST"},
                          {Tag{0x0008, 0x1010}, "GW1"},
                          {Tag{0x0008, 0x0080}, "Lakeside"}};
  Result<CoercionResult> r = coerce_dataset(*ds, rules, no_lookup(), kWhen);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->changed_tags,
            (std::vector<std::string>{"(0008,0080)", "(0008,1010)", "(0018,0015)"}));
  EXPECT_EQ(str(*ds, DCM_BodyPartExamined), "CHEST");
  EXPECT_EQ(str(*ds, DCM_StationName), "GW1");
  DcmItem* mod = modified_item(*original_item(*ds, 0));
  ASSERT_NE(mod, nullptr);
  EXPECT_EQ(mod->card(), 3u);
  EXPECT_EQ(str(*mod, DCM_InstitutionName), "Old Name Hospital");
}

TEST(Coerce, InstitutionSetTwiceRecordsTheOriginalValueOnce) {
  auto ds = valid_ct();
  CoercionRules rules = lakeside();
  rules.set_attributes = {{Tag{0x0008, 0x0080}, "Second"}};
  Result<CoercionResult> r = coerce_dataset(*ds, rules, no_lookup(), kWhen);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(str(*ds, DCM_InstitutionName), "Second");
  EXPECT_EQ(str(*modified_item(*original_item(*ds, 0)), DCM_InstitutionName), "Old Name Hospital");
}

TEST(Coerce, PatientIdChangeKeepsItsIssuer) {
  auto ds = valid_ct();
  CoercionRules rules;
  rules.facility = "Lakeside General";
  rules.set_attributes = {{Tag{0x0010, 0x0020}, "LGH123"}};
  Result<CoercionResult> r = coerce_dataset(*ds, rules, no_lookup(), kWhen);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->changed_tags, std::vector<std::string>{"(0010,0020)"});
  DcmItem* mod = modified_item(*original_item(*ds, 0));
  ASSERT_NE(mod, nullptr);
  EXPECT_EQ(str(*mod, DCM_PatientID), test::kPatientId);
  EXPECT_EQ(str(*mod, DCM_IssuerOfPatientID), test::kMrnIssuer);  // unchanged, kept for context
}

// --- health number fill
// ----------------------------------------------------------------------------

TEST(CoerceHealthNumber, FilledFromTheLookup) {
  auto ds = valid_ct();
  ds->findAndDeleteElement(DCM_OtherPatientIDsSequence);
  CoercionRules rules = lakeside();
  rules.issuer_of_patient_id = "LGH-MRN2";
  rules.fill_health_number_from_mrn = true;
  int calls = 0;
  HealthNumberLookup lookup = [&](const std::string& mrn,
                                  const std::string& issuer) -> std::optional<std::string> {
    ++calls;
    EXPECT_EQ(mrn, test::kPatientId);
    EXPECT_EQ(issuer, "LGH-MRN2");  // the issuer after coercion
    return std::string("9876543217");
  };
  Result<CoercionResult> r = coerce_dataset(*ds, rules, lookup, kWhen);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(r->health_number_unresolved);
  EXPECT_EQ(r->changed_tags,
            (std::vector<std::string>{"(0008,0080)", "(0010,0021)", "(0010,1002)"}));
  DcmItem* item = nullptr;
  ASSERT_TRUE(ds->findAndGetSequenceItem(DCM_OtherPatientIDsSequence, item, 0).good());
  EXPECT_EQ(str(*item, DCM_PatientID), "9876543217");
  EXPECT_EQ(str(*item, DCM_IssuerOfPatientID), "ON");
  EXPECT_EQ(str(*item, DCM_TypeOfPatientID), "TEXT");
  // The sequence was absent: recorded as an empty sequence.
  DcmItem* mod = modified_item(*original_item(*ds, 0));
  ASSERT_NE(mod, nullptr);
  DcmSequenceOfItems* prior = nullptr;
  ASSERT_TRUE(mod->findAndGetSequence(DCM_OtherPatientIDsSequence, prior).good());
  EXPECT_EQ(prior->card(), 0u);
  EXPECT_TRUE(validate_dataset(*ds, ontario_dir_profile()).ok);
}

TEST(CoerceHealthNumber, PriorSequenceIsRecordedWhole) {
  auto ds = valid_ct();
  test::set_health_number(*ds, "QC0001", "QC");
  CoercionRules rules;
  rules.facility = "Lakeside General";
  rules.fill_health_number_from_mrn = true;
  auto lookup = [](const std::string&, const std::string&) -> std::optional<std::string> {
    return std::string("1234567897");
  };
  Result<CoercionResult> r = coerce_dataset(*ds, rules, lookup, kWhen);
  ASSERT_TRUE(r.ok());
  DcmSequenceOfItems* now = nullptr;
  ASSERT_TRUE(ds->findAndGetSequence(DCM_OtherPatientIDsSequence, now).good());
  EXPECT_EQ(now->card(), 2u);
  DcmSequenceOfItems* prior = nullptr;
  ASSERT_TRUE(modified_item(*original_item(*ds, 0))
                  ->findAndGetSequence(DCM_OtherPatientIDsSequence, prior)
                  .good());
  ASSERT_EQ(prior->card(), 1u);
  EXPECT_EQ(str(*prior->getItem(0), DCM_IssuerOfPatientID), "QC");
}

TEST(CoerceHealthNumber, EmptyItemOfTheIssuerIsFilled) {
  auto ds = valid_ct();
  test::set_health_number(*ds, "");
  CoercionRules rules;
  rules.fill_health_number_from_mrn = true;
  auto lookup = [](const std::string&, const std::string&) -> std::optional<std::string> {
    return std::string("1234567897");
  };
  ASSERT_TRUE(coerce_dataset(*ds, rules, lookup, kWhen).ok());
  DcmSequenceOfItems* now = nullptr;
  ASSERT_TRUE(ds->findAndGetSequence(DCM_OtherPatientIDsSequence, now).good());
  ASSERT_EQ(now->card(), 1u);
  EXPECT_EQ(str(*now->getItem(0), DCM_PatientID), "1234567897");
}

TEST(CoerceHealthNumber, PresentNumberIsNotLookedUp) {
  auto ds = valid_ct();
  CoercionRules rules;
  rules.fill_health_number_from_mrn = true;
  Result<CoercionResult> r = coerce_dataset(*ds, rules, no_lookup(), kWhen);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->changed);
  EXPECT_FALSE(r->health_number_unresolved);
}

TEST(CoerceHealthNumber, UnknownMrn) {
  auto ds = valid_ct();
  ds->findAndDeleteElement(DCM_OtherPatientIDsSequence);
  CoercionRules rules;
  rules.fill_health_number_from_mrn = true;
  auto lookup = [](const std::string&, const std::string&) -> std::optional<std::string> {
    return std::nullopt;
  };
  Result<CoercionResult> r = coerce_dataset(*ds, rules, lookup, kWhen);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->changed);
  EXPECT_TRUE(r->health_number_unresolved);
  EXPECT_EQ(original_item(*ds, 0), nullptr);
}

TEST(CoerceHealthNumber, UnusableLookupAnswer) {
  for (std::string bad :
       {std::string("12\\34"), std::string(65, '1'), std::string("12\n34"), std::string()}) {
    auto ds = valid_ct();
    ds->findAndDeleteElement(DCM_OtherPatientIDsSequence);
    CoercionRules rules;
    rules.fill_health_number_from_mrn = true;
    auto lookup = [&](const std::string&, const std::string&) -> std::optional<std::string> {
      return bad;
    };
    Result<CoercionResult> r = coerce_dataset(*ds, rules, lookup, kWhen);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(r.error().detail.find("12"), std::string::npos);  // no value in the error
  }
}

// --- rules
// ----------------------------------------------------------------------------------------------

TEST(CoerceRules, RefusedTargets) {
  const std::pair<Tag, const char*> refused[] = {
      {Tag{0x0002, 0x0010}, "1.2.840.10008.1.2"},  // meta
      {Tag{0x0009, 0x0010}, "ACME"},               // private
      {Tag{0x0008, 0x0000}, "0"},                  // group length
      {Tag{0x7FE0, 0x0010}, "0"},                  // pixel data
      {Tag{0x6000, 0x3000}, "0"},                  // overlay data
      {Tag{0x0008, 0x0018}, "1.2.3"},              // SOP Instance UID
      {Tag{0x0020, 0x000D}, "1.2.3"},              // Study Instance UID
      {Tag{0x0008, 0x0005}, "ISO_IR 192"},         // Specific Character Set
      {Tag{0x0400, 0x0561}, ""},                   // Original Attributes Sequence
      {Tag{0x0010, 0x1002}, ""},                   // Other Patient IDs Sequence
      {Tag{0x0008, 0x1110}, ""},                   // a sequence
      {Tag{0x0008, 0x9999}, "x"},                  // not in the dictionary
      {Tag{0x0008, 0x0021}, "2024-01-05"},         // not a DA
      {Tag{0x0028, 0x0010}, "abc"},                // not a US
      {Tag{0x0008, 0x0070}, "H\xC3\xB4pital"},     // not ASCII
      {Tag{0x0008, 0x0060}, "CT\\MR"},             // VM 1
  };
  for (const auto& [tag, value] : refused) {
    CoercionRules rules;
    rules.set_attributes = {{tag, value}};
    Result<void> r = check_rules(rules);
    ASSERT_FALSE(r.ok()) << tag.to_string();
    EXPECT_EQ(r.error().code, ErrorCode::kConfig);
    EXPECT_NE(r.error().detail.find(tag.to_string()), std::string::npos) << r.error().detail;
    auto ds = valid_ct();
    EXPECT_FALSE(coerce_dataset(*ds, rules, no_lookup(), kWhen).ok());
  }
}

TEST(CoerceRules, PlainFields) {
  CoercionRules rules = lakeside();
  EXPECT_TRUE(check_rules(rules).ok());
  rules.institution_name = "A\\B";
  EXPECT_FALSE(check_rules(rules).ok());
  rules = lakeside();
  rules.issuer_of_patient_id = std::string(65, 'X');
  EXPECT_FALSE(check_rules(rules).ok());
  rules = lakeside();
  rules.set_attributes = {{Tag{0x0008, 0x0021}, "20240105"}, {Tag{0x0028, 0x0010}, "512"}};
  EXPECT_TRUE(check_rules(rules).ok()) << check_rules(rules).error().to_string();
}

// --- files
// -------------------------------------------------------------------------------------------------

// Offset of an element header in an explicit-VR little-endian byte stream (first occurrence).
std::size_t find_explicit(const std::string& bytes, std::uint16_t group, std::uint16_t element,
                          const char* vr) {
  const char pattern[6] = {static_cast<char>(group & 0xFF),
                           static_cast<char>(group >> 8),
                           static_cast<char>(element & 0xFF),
                           static_cast<char>(element >> 8),
                           vr[0],
                           vr[1]};
  return bytes.find(std::string(pattern, 6));
}

std::size_t find_implicit(const std::string& bytes, std::uint16_t group, std::uint16_t element) {
  const char pattern[4] = {static_cast<char>(group & 0xFF), static_cast<char>(group >> 8),
                           static_cast<char>(element & 0xFF), static_cast<char>(element >> 8)};
  return bytes.find(std::string(pattern, 4));
}

std::size_t meta_end(const std::string& bytes) {
  // (0002,0000) UL at 132: tag(4) VR(2) length(2) value(4).
  std::uint32_t len = 0;
  std::memcpy(&len, bytes.data() + 132 + 8, 4);
  return 132 + 12 + len;
}

struct CoerceFile : ::testing::Test {
  test::TempDir dir;
  std::filesystem::path in = dir / "in.dcm";
  std::filesystem::path out = dir / "out.dcm";
};

TEST_F(CoerceFile, LargeNativeObject) {
  // 512 x 512 x 16 bit x 8 frames = 4 MiB of pixel data, far above the 4 KiB read limit.
  auto ds = valid_ct({.rows = 512, .columns = 512, .bits_allocated = 16, .frames = 8});
  test::save(*ds, in);
  Result<CoercionResult> r = coerce_file(in, out, lakeside(), no_lookup(), kWhen);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_TRUE(r->changed);
  const std::string a = test::read_all(in), b = test::read_all(out);

  // File meta information: unchanged, byte for byte.
  ASSERT_EQ(meta_end(a), meta_end(b));
  EXPECT_EQ(a.substr(0, meta_end(a)), b.substr(0, meta_end(b)));
  // Everything before the first coerced element: unchanged.
  const std::size_t first = find_explicit(a, 0x0008, 0x0080, "LO");
  ASSERT_NE(first, std::string::npos);
  EXPECT_EQ(a.substr(0, first), b.substr(0, first));
  // Between the last coerced element and the new Original Attributes Sequence: unchanged.
  const std::size_t issuer_a = find_explicit(a, 0x0010, 0x0021, "LO");
  const std::size_t issuer_b = find_explicit(b, 0x0010, 0x0021, "LO");
  const std::size_t after_a = find_explicit(a, 0x0010, 0x1002, "SQ");
  const std::size_t after_b = find_explicit(b, 0x0010, 0x1002, "SQ");
  ASSERT_NE(after_a, std::string::npos);
  EXPECT_EQ(after_a - issuer_a, after_b - issuer_b);  // issuer unchanged: same length
  const std::size_t oa_b = find_explicit(b, 0x0400, 0x0561, "SQ");
  ASSERT_NE(oa_b, std::string::npos);
  const std::size_t pixel_a = find_explicit(a, 0x7FE0, 0x0010, "OW");
  const std::size_t pixel_b = find_explicit(b, 0x7FE0, 0x0010, "OW");
  ASSERT_NE(pixel_a, std::string::npos);
  ASSERT_NE(pixel_b, std::string::npos);
  EXPECT_EQ(a.substr(after_a, pixel_a - after_a).substr(0, oa_b - after_b),
            b.substr(after_b, oa_b - after_b));
  // Pixel data, to the end of the file: byte for byte.
  ASSERT_EQ(a.size() - pixel_a, b.size() - pixel_b);
  EXPECT_TRUE(a.compare(pixel_a, std::string::npos, b, pixel_b, std::string::npos) == 0);
  EXPECT_GE(a.size() - pixel_a, 4u * 1024 * 1024);

  Result<ValidationReport> v = validate_file(out, ontario_dir_profile());
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok);
  struct stat st {};
  ASSERT_EQ(::stat(out.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);  // patient data: owner only, whatever the umask
  DcmFileFormat check;
  ASSERT_TRUE(check.loadFile(OFFilename(out.c_str())).good());
  EXPECT_EQ(str(*check.getDataset(), DCM_InstitutionName), "Lakeside General Hospital");
  ASSERT_NE(original_item(*check.getDataset(), 0), nullptr);
}

TEST_F(CoerceFile, Deterministic) {
  auto ds = valid_ct({.rows = 256, .columns = 256, .bits_allocated = 16, .frames = 2});
  ds->findAndDeleteElement(DCM_OtherPatientIDsSequence);
  test::save(*ds, in);
  CoercionRules rules = lakeside();
  rules.fill_health_number_from_mrn = true;
  rules.set_attributes = {{Tag{0x0008, 0x1010}, "GW1"}};
  auto lookup = [](const std::string&, const std::string&) -> std::optional<std::string> {
    return std::string("1234567897");
  };
  ASSERT_TRUE(coerce_file(in, dir / "one.dcm", rules, lookup, kWhen).ok());
  ASSERT_TRUE(coerce_file(in, dir / "two.dcm", rules, lookup, kWhen).ok());
  EXPECT_EQ(test::read_all(dir / "one.dcm"), test::read_all(dir / "two.dcm"));
  ASSERT_TRUE(coerce_file(in, dir / "later.dcm", rules, lookup, kWhen + 1s).ok());
  EXPECT_NE(test::read_all(dir / "one.dcm"), test::read_all(dir / "later.dcm"));
}

TEST_F(CoerceFile, UndefinedLengthSequencesStayUndefined) {
  auto ds = valid_ct({.rows = 64, .columns = 64});
  test::save(*ds, in, EXS_LittleEndianExplicit, EET_UndefinedLength);
  ASSERT_TRUE(coerce_file(in, out, lakeside(), no_lookup(), kWhen).ok());
  const std::string a = test::read_all(in), b = test::read_all(out);
  const std::size_t first = find_explicit(a, 0x0008, 0x0080, "LO");
  EXPECT_EQ(a.substr(0, first), b.substr(0, first));
  const std::size_t seq = find_explicit(b, 0x0010, 0x1002, "SQ");
  ASSERT_NE(seq, std::string::npos);
  EXPECT_EQ(b.substr(seq + 8, 4), std::string(4, '\xFF'));
}

TEST_F(CoerceFile, ExplicitLengthSequencesStayExplicit) {
  auto ds = valid_ct({.rows = 64, .columns = 64});
  test::save(*ds, in, EXS_LittleEndianExplicit, EET_ExplicitLength);
  ASSERT_TRUE(coerce_file(in, out, lakeside(), no_lookup(), kWhen).ok());
  const std::string b = test::read_all(out);
  for (std::uint16_t element : {0x1002, 0x0561}) {
    const std::uint16_t group = element == 0x1002 ? 0x0010 : 0x0400;
    const std::size_t seq = find_explicit(b, group, element, "SQ");
    ASSERT_NE(seq, std::string::npos);
    EXPECT_NE(b.substr(seq + 8, 4), std::string(4, '\xFF'));
  }
}

TEST_F(CoerceFile, EncapsulatedPixelDataKept) {
  auto ds = valid_ct({.rows = 256, .columns = 256, .bits_allocated = 8, .frames = 4});
  test::put_encapsulated_pixels(*ds, EXS_JPEGProcess1, 4, 50000, 4);
  test::save(*ds, in, EXS_JPEGProcess1);
  Result<CoercionResult> r = coerce_file(in, out, lakeside(), no_lookup(), kWhen);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  const std::string a = test::read_all(in), b = test::read_all(out);
  EXPECT_EQ(a.substr(0, meta_end(a)), b.substr(0, meta_end(b)));  // same transfer syntax
  const std::size_t pixel_a = find_explicit(a, 0x7FE0, 0x0010, "OB");
  const std::size_t pixel_b = find_explicit(b, 0x7FE0, 0x0010, "OB");
  ASSERT_NE(pixel_a, std::string::npos);
  ASSERT_NE(pixel_b, std::string::npos);
  ASSERT_EQ(a.size() - pixel_a, b.size() - pixel_b);
  EXPECT_TRUE(a.compare(pixel_a, std::string::npos, b, pixel_b, std::string::npos) == 0);
  Result<ValidationReport> v = validate_file(out, ontario_dir_profile());
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok);
}

TEST_F(CoerceFile, ImplicitVrLittleEndian) {
  auto ds = valid_ct({.rows = 128, .columns = 128});
  test::save(*ds, in, EXS_LittleEndianImplicit);
  ASSERT_TRUE(coerce_file(in, out, lakeside(), no_lookup(), kWhen).ok());
  const std::string a = test::read_all(in), b = test::read_all(out);
  EXPECT_EQ(a.substr(0, meta_end(a)), b.substr(0, meta_end(b)));
  const std::size_t pixel_a = find_implicit(a, 0x7FE0, 0x0010);
  const std::size_t pixel_b = find_implicit(b, 0x7FE0, 0x0010);
  ASSERT_EQ(a.size() - pixel_a, b.size() - pixel_b);
  EXPECT_TRUE(a.compare(pixel_a, std::string::npos, b, pixel_b, std::string::npos) == 0);
}

TEST_F(CoerceFile, DeflatedStaysDeflated) {
  auto ds = valid_ct({.rows = 128, .columns = 128});
  test::save(*ds, in, EXS_DeflatedLittleEndianExplicit);
  ASSERT_TRUE(coerce_file(in, out, lakeside(), no_lookup(), kWhen).ok());
  const std::string a = test::read_all(in), b = test::read_all(out);
  EXPECT_EQ(a.substr(0, meta_end(a)), b.substr(0, meta_end(b)));
  DcmFileFormat before, after;
  ASSERT_TRUE(before.loadFile(OFFilename(in.c_str())).good());
  ASSERT_TRUE(after.loadFile(OFFilename(out.c_str())).good());
  EXPECT_EQ(after.getDataset()->getOriginalXfer(), EXS_DeflatedLittleEndianExplicit);
  EXPECT_EQ(str(*after.getDataset(), DCM_InstitutionName), "Lakeside General Hospital");
  const Uint8* pa = nullptr;
  const Uint8* pb = nullptr;
  unsigned long na = 0, nb = 0;
  ASSERT_TRUE(before.getDataset()->findAndGetUint8Array(DCM_PixelData, pa, &na).good());
  ASSERT_TRUE(after.getDataset()->findAndGetUint8Array(DCM_PixelData, pb, &nb).good());
  ASSERT_EQ(na, nb);
  EXPECT_EQ(std::memcmp(pa, pb, na), 0);
  Result<ValidationReport> v = validate_file(out, ontario_dir_profile());
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok);
}

TEST_F(CoerceFile, NothingChangedWritesNothing) {
  auto ds = valid_ct();
  test::save(*ds, in);
  CoercionRules rules;
  rules.institution_name = "Old Name Hospital";
  Result<CoercionResult> r = coerce_file(in, out, rules, no_lookup(), kWhen);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->changed);
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST_F(CoerceFile, InPlace) {
  auto ds = valid_ct({.rows = 256, .columns = 256, .bits_allocated = 16});
  test::save(*ds, in);
  const std::string before = test::read_all(in);
  ASSERT_TRUE(coerce_file(in, in, lakeside(), no_lookup(), kWhen).ok());
  const std::string after = test::read_all(in);
  const std::size_t pa = find_explicit(before, 0x7FE0, 0x0010, "OW");
  const std::size_t pb = find_explicit(after, 0x7FE0, 0x0010, "OW");
  EXPECT_TRUE(before.compare(pa, std::string::npos, after, pb, std::string::npos) == 0);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            1);  // no temporary left behind
}

TEST_F(CoerceFile, Errors) {
  Result<CoercionResult> missing = coerce_file(in, out, lakeside(), no_lookup(), kWhen);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);

  { std::ofstream(in, std::ios::binary) << "not a DICOM file at all"; }
  Result<CoercionResult> bad = coerce_file(in, out, lakeside(), no_lookup(), kWhen);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kBadDicom);

  CoercionRules rules;
  rules.set_attributes = {{Tag{0x7FE0, 0x0010}, ""}};
  Result<CoercionResult> config = coerce_file(in, out, rules, no_lookup(), kWhen);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().code, ErrorCode::kConfig);
  EXPECT_FALSE(std::filesystem::exists(out));

  auto ds = valid_ct();
  test::save(*ds, in);
  Result<CoercionResult> nodir =
      coerce_file(in, dir / "no-such-dir" / "out.dcm", lakeside(), no_lookup(), kWhen);
  ASSERT_FALSE(nodir.ok());
  EXPECT_EQ(nodir.error().code, ErrorCode::kIo);
}

}  // namespace
}  // namespace dirgw::policy
