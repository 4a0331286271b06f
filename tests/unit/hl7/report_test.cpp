// ORU^R01 / MDM^T02 -> report (gateway/ingest/hl7_mllp/report.h): fields, statuses, character
// sets, escapes, the embedded PDF and every refusal.
#include "ingest/hl7_mllp/report.h"

#include <gtest/gtest.h>

#include <string>

namespace dirgw::hl7 {
namespace {

std::string oru(const std::string& charset, const std::string& obr_status, const std::string& obx,
                const std::string& obr3 = "ACC123") {
  return "MSH|^~\\&|RIS|LGH|DIRGW|LGH|20261203091500||ORU^R01|MSG0001|P|2.5||||||" + charset +
         "\r"
         "PID|1||MRN001^^^LGH-MRN^MR~1234567890^^^ON^JHN||Tremblay^Zoé\r"
         "OBR|1|PL77|" +
         obr3 + "|CTHEAD^CT Head|||20261203090000|||||||||||||||20261203091000|||" + obr_status +
         "|||||||Gagnon&Gagnon&Hélène\r" + obx;
}

Result<Report> extract(const std::string& er7, ReportConfig cfg = {}) {
  auto m = Message::parse(er7);
  EXPECT_TRUE(m.ok()) << (m ? "" : m.error().detail);
  if (!m) return m.error();
  return extract_report(*m, cfg);
}

TEST(Report, FinalTextReport) {
  auto r = extract(oru("", "F",
                       "OBX|1|TX|IMP^Impression||No acute finding.~Second line.||||||F\r"
                       "OBX|2|FT|IMP||Third\\.br\\line \\T\\ more||||||F\r"));
  ASSERT_TRUE(r.ok()) << r.error().detail;
  EXPECT_EQ(r->message_type, "ORU");
  EXPECT_EQ(r->message_key, "RIS/LGH/MSG0001");
  EXPECT_EQ(r->accession.reveal(), "ACC123");
  EXPECT_EQ(r->status, ReportStatus::kFinal);
  EXPECT_EQ(r->text.reveal(), "No acute finding.\nSecond line.\nThird\nline & more");
  EXPECT_TRUE(r->pdf.reveal().empty());
  EXPECT_EQ(r->title.reveal(), "CT Head");
  EXPECT_EQ(r->observation_time, "20261203090000");
  ASSERT_EQ(r->patient_ids.size(), 2u);
}

// Line ends escaped as \X0D0A\ or \X0D\ are LF, as \.br\ and repetitions are.
TEST(Report, EscapedLineEndsAreOneKind) {
  auto r =
      extract(oru("", "F", "OBX|1|TX|IMP||First\\X0D0A\\second\\X0D\\third\\.br\\fourth||||||F\r"));
  ASSERT_TRUE(r.ok()) << r.error().detail;
  EXPECT_EQ(r->text.reveal(), "First\nsecond\nthird\nfourth");
}

// Measurements (NM, SN) and comments (NTE after the order or an observation) are part of the
// report's text, in message order; a patient's note (NTE after PID) is not.
TEST(Report, MeasurementsAndCommentsAreText) {
  std::string er7 = oru("", "F",
                        "OBX|1|TX|IMP||Nodule in the right upper lobe.||||||F\r"
                        "OBX|2|NM|21889-1^Nodule size^LN||4|mm^millimetre^UCUM|||||F\r"
                        "OBX|3|SN|^Growth||<^5|%|||||F\r"
                        "NTE|1||ADDENDUM: compared with the prior CT, stable.\r");
  er7.insert(er7.find("OBR|"), "NTE|1||patient note\r");
  auto r = extract(er7);
  ASSERT_TRUE(r.ok()) << r.error().detail;
  EXPECT_EQ(r->text.reveal(),
            "Nodule in the right upper lobe.\nNodule size: 4 millimetre\nGrowth: <5 %\n"
            "ADDENDUM: compared with the prior CT, stable.");
}

// Exams dictated together (linked exams): one ORU, an OBR per exam. Each order is a report of its
// own study with the observations that follow it; an order without observations of its own gets
// the whole dictation.
TEST(Report, LinkedExamsAreAReportEach) {
  auto m = Message::parse(oru("", "F", "OBX|1|TX|IMP||CT chest: clear.||||||F\r") +
                          "OBR|2|PL78|ACC124|CTABD^CT Abdomen|||20261203090000\r"
                          "OBX|1|TX|IMP||CT abdomen: normal.||||||F\r");
  ASSERT_TRUE(m.ok());
  ASSERT_EQ(report_orders(*m), 2u);
  auto chest = extract_report(*m, {}, 0);
  auto abdomen = extract_report(*m, {}, 1);
  ASSERT_TRUE(chest.ok() && abdomen.ok());
  EXPECT_EQ(chest->accession.reveal(), "ACC123");
  EXPECT_EQ(chest->text.reveal(), "CT chest: clear.");
  EXPECT_EQ(chest->message_key, "RIS/LGH/MSG0001");
  EXPECT_EQ(abdomen->accession.reveal(), "ACC124");
  EXPECT_EQ(abdomen->text.reveal(), "CT abdomen: normal.");
  EXPECT_EQ(abdomen->message_key,
            "RIS/LGH/MSG0001\x1f"
            "obr2");
  EXPECT_EQ(abdomen->status, ReportStatus::kFinal);  // its OBX-11
  EXPECT_EQ(report_order_of(abdomen->message_key), 1u);
  EXPECT_EQ(report_order_of(chest->message_key), 0u);
  EXPECT_EQ(report_order_of(abdomen->message_key + "#0123abcd"), 1u);

  // Two orders with one accession (two procedure codes of one exam): one report with both texts;
  // the second order is not a report of its own.
  auto one = Message::parse(oru("", "F", "OBX|1|TX|IMP||Part one.||||||F\r") +
                            "OBR|2|PL78|ACC123|CTABD^CT Abdomen|||20261203090000\r"
                            "OBX|1|TX|IMP||Part two.||||||F\r");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(extract_report(*one, {}, 0)->text.reveal(), "Part one.\nPart two.");
  EXPECT_EQ(extract_report(*one, {}, 1).error().code, ErrorCode::kNotFound);

  // The text once, after the last order: both get it.
  auto shared = Message::parse(oru("", "F", "") +
                               "OBR|2|PL78|ACC124|CTABD^CT Abdomen|||20261203090000\r"
                               "OBX|1|TX|IMP||Chest and abdomen: normal.||||||F\r");
  ASSERT_TRUE(shared.ok());
  auto first = extract_report(*shared, {}, 0);
  ASSERT_TRUE(first.ok()) << first.error().detail;
  EXPECT_EQ(first->text.reveal(), "Chest and abdomen: normal.");
  EXPECT_EQ(extract_report(*shared, {}, 1)->text.reveal(), "Chest and abdomen: normal.");
}

// IHE Radiology's ZDS-1: the Study Instance UID the RIS knows, to pick among studies that share
// an accession.
TEST(Report, StudyInstanceUidFromZds) {
  auto r = extract(oru("", "F", "OBX|1|TX|||text||||||F\r") +
                   "ZDS|1.2.826.0.1.3680043.10.543.9^RIS^Application^DICOM\r");
  ASSERT_TRUE(r.ok()) << r.error().detail;
  EXPECT_EQ(r->study_uid, "1.2.826.0.1.3680043.10.543.9");
  EXPECT_EQ(extract(oru("", "F", "OBX|1|TX|||text||||||F\r") + "ZDS|not a uid^RIS\r")->study_uid,
            "");
}

// A PDF split over consecutive OBX with the same sub-ID (OBX-4), and the MIME subtype some
// senders write, are one document.
TEST(Report, PdfSplitOverObxSegments) {
  const std::string b64 =
      "JVBERi0xLjQKJSByZXZpZXcKMSAwIG9iago8PCA+PgplbmRvYmoKdHJhaWxlcgo8PCA+PgolJUVPRgo=";
  auto r = extract(oru("", "F",
                       "OBX|1|ED|PDF^Report|1|RIS^AP^application/pdf^Base64^" + b64.substr(0, 40) +
                           "||||||F\r"
                           "OBX|2|ED|PDF^Report|1|RIS^AP^PDF^Base64^" +
                           b64.substr(40) + "||||||F\r"));
  ASSERT_TRUE(r.ok()) << r.error().detail;
  EXPECT_EQ(r->pdf.reveal().rfind("%PDF-1.4", 0), 0u);
  EXPECT_NE(r->pdf.reveal().find("%%EOF"), std::string::npos);
  // Two PDFs (different sub-IDs) are still refused.
  EXPECT_FALSE(extract(oru("", "F",
                           "OBX|1|ED|PDF||1|RIS^AP^PDF^Base64^" + b64 +
                               "||||||F\r"
                               "OBX|2|ED|PDF||2|RIS^AP^PDF^Base64^" +
                               b64 + "||||||F\r"))
                   .ok());
}

// An HL7 2.3 sender with the record number in PID-2 and PID-3 empty.
TEST(Report, PatientIdInPid2WhenPid3IsEmpty) {
  std::string er7 = oru("", "F", "OBX|1|TX|||text||||||F\r");
  er7.replace(er7.find("PID|1||MRN001^^^LGH-MRN^MR~1234567890^^^ON^JHN|"), 47,
              "PID|1|MRN001^^^LGH-MRN^MR||");
  auto r = extract(er7);
  ASSERT_TRUE(r.ok()) << r.error().detail;
  ASSERT_EQ(r->patient_ids.size(), 1u);
  EXPECT_EQ(r->patient_ids[0].id.reveal(), "MRN001");
  EXPECT_EQ(r->patient_ids[0].identifier_type, "MR");
}

TEST(Report, PlacerAccessionWhenConfigured) {
  ReportConfig cfg;
  cfg.accession_field = "placer";
  auto r = extract(oru("", "F", "OBX|1|TX|||text||||||F\r"), cfg);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->accession.reveal(), "PL77");
}

// A RIS whose OBR-3 holds its own order number writes the accession elsewhere (OBR-18 here).
TEST(Report, AccessionFromAFieldPath) {
  std::string er7 = oru("", "F", "OBX|1|TX|||text||||||F\r", "ORD778899");
  er7.replace(er7.find("|||||||||||||||20261203091000"), 29,
              "|||||||||||ACC55^X||||20261203091000");
  ReportConfig cfg;
  cfg.accession_field = "OBR-18";
  auto r = extract(er7, cfg);
  ASSERT_TRUE(r.ok()) << r.error().detail;
  EXPECT_EQ(r->accession.reveal(), "ACC55");
  cfg.accession_field = "OBR-19";
  auto none = extract(er7, cfg);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().detail,
            "no accession number in OBR-19 (ingest.hl7.reports.accession_field)");
}

TEST(Report, Statuses) {
  const std::string obx = "OBX|1|TX|||text||||||F\r";
  EXPECT_EQ(extract(oru("", "P", obx))->status, ReportStatus::kPreliminary);
  EXPECT_EQ(extract(oru("", "C", obx))->status, ReportStatus::kCorrected);
  // Cancelled, in progress: a notification, not a report to file (answered AA, not stored).
  for (const char* code : {"X", "I"}) {
    auto n = extract(oru("", code, obx));
    ASSERT_FALSE(n.ok());
    EXPECT_EQ(n.error().code, ErrorCode::kNotFound) << code;
  }
  EXPECT_EQ(extract(oru("", "Q", obx)).error().code, ErrorCode::kProtocol);  // unknown: refused
  // No OBR-25: the first OBX-11 decides.
  auto r = extract(oru("", "", "OBX|1|TX|||text||||||C\r"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, ReportStatus::kCorrected);
  // A: an amendment or addendum after signing (OBX-11 "amended"; OBR-25 as several RIS send
  // it): a new version, never a preliminary that would be held or superseded.
  EXPECT_EQ(extract(oru("", "A", obx))->status, ReportStatus::kCorrected);
  EXPECT_EQ(extract(oru("", "", "OBX|1|TX|||addendum||||||A\r"))->status, ReportStatus::kCorrected);
}

// OBR-32 written as components (ID^family^given, HL7 2.3 style) instead of subcomponents.
TEST(Report, AuthorInComponents) {
  std::string er7 = oru("", "F", "OBX|1|TX|||text||||||F\r");
  er7.replace(er7.find("Gagnon&Gagnon&H"), 15, "12345^Radiologue^H");
  auto r = extract(er7);
  ASSERT_TRUE(r.ok()) << r.error().detail;
  EXPECT_EQ(r->author.reveal(), "Radiologue^H\xc3\xa9l\xc3\xa8ne");
}

// What senders that declare 8859/1 send in the field: Windows-1252 punctuation from a word
// processor (0x80-0x9F are control codes in ISO 8859-1), or UTF-8 converted by an engine that
// left MSH-18 alone. "UNICODE" alone is taken as UTF-8.
TEST(Report, DeclaredLatin1ThatIsNot) {
  auto cp = extract(oru("8859/1", "F",
                        "OBX|1|TX|||Patient\x92s \x93"
                        "acute\x94 \x96 \xe9||||||F\r"));
  ASSERT_TRUE(cp.ok()) << cp.error().detail;
  EXPECT_EQ(cp->text.reveal(),
            "Patient\xe2\x80\x99s \xe2\x80\x9c"
            "acute\xe2\x80\x9d \xe2\x80\x93 \xc3\xa9");
  // A byte Windows-1252 leaves undefined is still refused.
  EXPECT_FALSE(extract(oru("8859/1", "F", "OBX|1|TX|||bad \x81 byte||||||F\r")).ok());
  auto utf8 = extract(oru("8859/1", "F", "OBX|1|TX|||\xc3\x89panchement, c\xc5\x93ur||||||F\r"));
  ASSERT_TRUE(utf8.ok()) << utf8.error().detail;
  EXPECT_EQ(utf8->text.reveal(), "\xc3\x89panchement, c\xc5\x93ur");
  auto unicode = extract(oru("UNICODE", "F", "OBX|1|TX|||\xc3\xa9t\xc3\xa9||||||F\r"));
  ASSERT_TRUE(unicode.ok()) << unicode.error().detail;
  EXPECT_EQ(unicode->text.reveal(), "\xc3\xa9t\xc3\xa9");
}

TEST(Report, Latin1IsDecodedToUtf8) {
  // "Hélène" and "pneumothorax à droite" in ISO 8859-1 bytes, and one \X..\ escape (é = E9).
  const std::string latin1 = "OBX|1|TX|||Pas de pneumothorax \xe0 droite, \\XE9\\l\xe8ve.||||||F\r";
  std::string er7 = oru("8859/1", "F", latin1);
  er7.replace(er7.find("H\xc3\xa9l\xc3\xa8ne"), 8, "H\xe9l\xe8ne");
  er7.replace(er7.find("Zo\xc3\xa9"), 4, "Zo\xe9");
  auto r = extract(er7);
  ASSERT_TRUE(r.ok()) << r.error().detail;
  EXPECT_EQ(r->text.reveal(), "Pas de pneumothorax \xc3\xa0 droite, \xc3\xa9l\xc3\xa8ve.");
  EXPECT_EQ(r->author.reveal(), "Gagnon^H\xc3\xa9l\xc3\xa8ne");
}

TEST(Report, Utf8DeclaredOrUndeclared) {
  const std::string obx = "OBX|1|TX|||\xc3\xa9panchement pleural||||||F\r";
  auto declared = extract(oru("UNICODE UTF-8", "F", obx));
  ASSERT_TRUE(declared.ok());
  EXPECT_EQ(declared->text.reveal(), "\xc3\xa9panchement pleural");
  EXPECT_TRUE(extract(oru("", "F", obx)).ok());  // undeclared but valid UTF-8
  // Undeclared and not UTF-8; declared UTF-8 but not; a set we do not know.
  EXPECT_FALSE(extract(oru("", "F", "OBX|1|TX|||\xe9t\xe9||||||F\r")).ok());
  EXPECT_FALSE(extract(oru("UNICODE UTF-8", "F", "OBX|1|TX|||\xe9t\xe9||||||F\r")).ok());
  EXPECT_FALSE(extract(oru("ISO IR87", "F", obx)).ok());
}

// MSH-18 as senders write it in the field, any case; and a site's default for a sender that
// writes Latin-1 (or Windows-1252) and declares nothing.
TEST(Report, CharacterSetSpellingsAndTheSitesDefault) {
  const std::string latin1 = "OBX|1|TX|||\xe9panchement \x80 pleural||||||F\r";
  for (const char* name : {"ISO-8859-1", "iso8859-1", "ISO_IR 100", "latin1"}) {
    auto r = extract(oru(name, "F", "OBX|1|TX|||\xe9panchement pleural||||||F\r"));
    ASSERT_TRUE(r.ok()) << name << ": " << r.error().detail;
    EXPECT_EQ(r->text.reveal(), "\xc3\xa9panchement pleural") << name;
  }
  for (const char* name : {"UTF-8", "utf8", "ISO_IR 192"})
    EXPECT_TRUE(extract(oru(name, "F", "OBX|1|TX|||\xc3\xa9t\xc3\xa9||||||F\r")).ok()) << name;
  auto cp1252 = extract(oru("WINDOWS-1252", "F", latin1));
  ASSERT_TRUE(cp1252.ok()) << cp1252.error().detail;
  EXPECT_EQ(cp1252->text.reveal(), "\xc3\xa9panchement \xe2\x82\xac pleural");  // 0x80: euro

  // Undeclared and not UTF-8: refused, unless the site names its senders' character set.
  std::string undeclared = oru("", "F", "OBX|1|TX|||\xe9t\xe9||||||F\r");
  undeclared.replace(undeclared.find("H\xc3\xa9l\xc3\xa8ne"), 8, "H\xe9l\xe8ne");
  EXPECT_FALSE(extract(undeclared).ok());
  ReportConfig cfg;
  cfg.default_charset = "8859/1";
  auto r = extract(undeclared, cfg);
  ASSERT_TRUE(r.ok()) << r.error().detail;
  EXPECT_EQ(r->text.reveal(), "\xc3\xa9t\xc3\xa9");
  EXPECT_EQ(r->author.reveal(), "Gagnon^H\xc3\xa9l\xc3\xa8ne");
  // UTF-8 without MSH-18 stays UTF-8 whatever the default.
  auto utf8 = extract(oru("", "F", "OBX|1|TX|||\xc3\xa9t\xc3\xa9||||||F\r"), cfg);
  ASSERT_TRUE(utf8.ok());
  EXPECT_EQ(utf8->text.reveal(), "\xc3\xa9t\xc3\xa9");
  // The default does not override what MSH-18 says.
  EXPECT_FALSE(extract(oru("UNICODE UTF-8", "F", "OBX|1|TX|||\xe9t\xe9||||||F\r"), cfg).ok());
}

TEST(Report, EmbeddedPdf) {
  const std::string b64 = "JVBERi0xLjQKJcK1wrYK";  // "%PDF-1.4\n%\xc2\xb5\xc2\xb6\n"
  auto r = extract(oru("", "F", "OBX|1|ED|PDF^Report||RIS^AP^PDF^Base64^" + b64 + "||||||F\r"));
  ASSERT_TRUE(r.ok()) << r.error().detail;
  EXPECT_EQ(r->pdf.reveal(), "%PDF-1.4\n%\xc2\xb5\xc2\xb6\n");
  EXPECT_FALSE(extract(oru("", "F", "OBX|1|ED|||RIS^AP^PDF^Base64^***||||||F\r")).ok());
  EXPECT_FALSE(extract(oru("", "F", "OBX|1|ED|||RIS^AP^JPEG^Base64^" + b64 + "||||||F\r")).ok());
  EXPECT_FALSE(extract(oru("", "F", "OBX|1|ED|||RIS^AP^PDF^Base64^aGVsbG8=||||||F\r")).ok());
}

TEST(Report, Refusals) {
  const std::string obx = "OBX|1|TX|||text||||||F\r";
  EXPECT_FALSE(extract(oru("", "F", obx, "")).ok());                   // no accession
  EXPECT_FALSE(extract(oru("", "F", obx, "ABCDEFGHIJKLMNOPQ")).ok());  // longer than SH
  EXPECT_FALSE(extract(oru("", "F", "")).ok());                        // no text, no PDF
  std::string no_pid = oru("", "F", obx);
  no_pid.replace(no_pid.find("PID|1||"), 7, "PID|1|||");
  auto r = extract(no_pid);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().detail, "no patient identifier in PID-3 (or PID-2)");
  std::string adt = oru("", "F", obx);
  adt.replace(adt.find("ORU^R01"), 7, "ADT^A08");
  EXPECT_FALSE(extract(adt).ok());
}

TEST(Report, MdmT02) {
  const std::string mdm =
      "MSH|^~\\&|DICT|LGH|DIRGW|LGH|20261203091500||MDM^T02|M77|P|2.5\r"
      "PID|1||MRN001^^^LGH-MRN^MR\r"
      "TXA|1|RAD^Radiology report|TX|20261203090000|||||^Roy^Luc||||||ACC9||AU\r"
      "OBX|1|TX|||Impression: normal.||||||F\r";
  auto r = extract(mdm);
  ASSERT_TRUE(r.ok()) << r.error().detail;
  EXPECT_EQ(r->accession.reveal(), "ACC9");
  EXPECT_EQ(r->status, ReportStatus::kFinal);
  EXPECT_EQ(r->author.reveal(), "Roy^Luc");
  EXPECT_EQ(r->text.reveal(), "Impression: normal.");
}

TEST(Report, MdmT04AndT10) {
  const std::string base =
      "MSH|^~\\&|DICT|LGH|DIRGW|LGH|20261203091500||MDM^T02|M77|P|2.5\r"
      "PID|1||MRN001^^^LGH-MRN^MR\r"
      "TXA|1|RAD^Radiology report|TX|20261203090000|||||^Roy^Luc||||||ACC9||AU\r"
      "OBX|1|TX|||Impression: normal.||||||F\r";
  std::string t04 = base, t10 = base, t11 = base;
  t04.replace(t04.find("T02"), 3, "T04");
  t10.replace(t10.find("T02"), 3, "T10");
  t11.replace(t11.find("T02"), 3, "T11");
  auto r4 = extract(t04);
  ASSERT_TRUE(r4.ok()) << r4.error().detail;
  EXPECT_EQ(r4->status, ReportStatus::kFinal);  // a status change to final: the next version
  auto r10 = extract(t10);
  ASSERT_TRUE(r10.ok()) << r10.error().detail;
  EXPECT_EQ(r10->status, ReportStatus::kCorrected);  // a replacement: a correction
  EXPECT_FALSE(extract(t11).ok());
  EXPECT_TRUE(mdm_refusal("T02").empty());
  EXPECT_TRUE(mdm_refusal("T10").empty());
  EXPECT_NE(mdm_refusal("T11").find("cannot be withdrawn"), std::string::npos);
  EXPECT_NE(mdm_refusal("T99").find("only T02"), std::string::npos);
}

TEST(Base64, StrictDecoding) {
  EXPECT_EQ(*decode_base64("aGVsbG8="), "hello");
  EXPECT_EQ(*decode_base64("aGVs\r\nbG8="), "hello");
  EXPECT_FALSE(decode_base64("aGVsbG8=x").ok());
  EXPECT_FALSE(decode_base64("a").ok());
}

}  // namespace
}  // namespace dirgw::hl7
