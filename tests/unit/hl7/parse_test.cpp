// ER7 parsing: separators from MSH, segment terminators, paths, escapes, limits, hostile input.
#include <gtest/gtest.h>

#include <random>

#include "ingest/hl7_mllp/hl7.h"

namespace dirgw::hl7 {
namespace {

const std::string kAdt =
    "MSH|^~\\&|REG|LGH|DIRGW|LGH|20240105123000-0500||ADT^A04^ADT_A01|MSG0001|P|2.5.1||||||"
    "UNICODE UTF-8\r"
    "EVN|A04|20240105122900|||||LGH\r"
    "PID|1||MRN000123^^^LGH-MRN^MR~1234567897^^^ON&2.16.840.1.113883.4.59&ISO^JHN||"
    "SYNTHETIC^PATIENT||19700101|F\r"
    "PD1||||||||||||N|20240101\r";

Message parse_ok(std::string_view bytes) {
  Result<Message> m = Message::parse(bytes);
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().to_string());
  return m.ok() ? std::move(m).value() : Message::parse("MSH|^~\\&|x").value();
}

TEST(Parse, HeaderFields) {
  Message m = parse_ok(kAdt);
  EXPECT_EQ(m.segments().size(), 4u);
  EXPECT_EQ(m.message_type(), "ADT");
  EXPECT_EQ(m.trigger_event(), "A04");
  EXPECT_EQ(m.control_id(), "MSG0001");
  EXPECT_EQ(m.version(), "2.5.1");
  EXPECT_EQ(m.charset(), "UNICODE UTF-8");
  EXPECT_EQ(m.sending_application(), "REG");
  EXPECT_EQ(m.sending_facility(), "LGH");
  EXPECT_EQ(m.get("MSH-1"), "|");
  EXPECT_EQ(m.get("MSH-2"), "^~\\&");
  EXPECT_EQ(m.get("MSH-9.3"), "ADT_A01");
  EXPECT_TRUE(check_header(m).ok());
}

TEST(Parse, PathsRepetitionsComponentsSubcomponents) {
  Message m = parse_ok(kAdt);
  EXPECT_EQ(m.get("PID-3"), "MRN000123");
  EXPECT_EQ(m.get("PID-3.1"), "MRN000123");
  EXPECT_EQ(m.get("PID-3(1).4"), "LGH-MRN");
  EXPECT_EQ(m.get("PID-3(2).1"), "1234567897");
  EXPECT_EQ(m.get("PID-3[2].4"), "ON");
  EXPECT_EQ(m.get("PID-3(2).4.2"), "2.16.840.1.113883.4.59");
  EXPECT_EQ(m.get("PID-3(2).5"), "JHN");
  EXPECT_EQ(m.raw("PID-3(2)"), "1234567897^^^ON&2.16.840.1.113883.4.59&ISO^JHN");
  EXPECT_EQ(m.raw("PID-3(2).4"), "ON&2.16.840.1.113883.4.59&ISO");
  EXPECT_EQ(m.repetitions("PID-3"), 2u);
  EXPECT_EQ(m.repetitions("PID-4"), 0u);
  EXPECT_EQ(m.get("PID-3(1).2"), "");          // present, empty
  EXPECT_EQ(m.get("PID-3(3)"), std::nullopt);  // no third repetition
  EXPECT_EQ(m.get("PID-3(1).9"), std::nullopt);
  EXPECT_EQ(m.get("PID-99"), std::nullopt);
  EXPECT_EQ(m.get("ZZZ-1"), std::nullopt);
  EXPECT_EQ(m.get("PID(2)-3"), std::nullopt);
  EXPECT_EQ(m.get("PD1-12"), "N");
  EXPECT_EQ(m.get("PD1-13"), "20240101");
}

TEST(Parse, SegmentOccurrences) {
  Message m =
      parse_ok("MSH|^~\\&|A|B|C|D|||ORU^R01|1|P|2.5\rOBX|1|TX|||first\rOBX|2|TX|||second\r");
  EXPECT_EQ(m.count("OBX"), 2u);
  EXPECT_EQ(m.get("OBX-5"), "first");
  EXPECT_EQ(m.get("OBX(1)-5"), "first");
  EXPECT_EQ(m.get("OBX(2)-5"), "second");
  EXPECT_EQ(m.get("OBX(3)-5"), std::nullopt);
  ASSERT_NE(m.segment("OBX", 1), nullptr);
  EXPECT_EQ(m.segment("OBX", 1)->fields[1], "2");
}

TEST(Parse, PathSyntax) {
  EXPECT_TRUE(Path::parse("PID-3").ok());
  EXPECT_TRUE(Path::parse("ZCN-1").ok());
  EXPECT_TRUE(Path::parse("PD1-12").ok());
  Result<Path> p = Path::parse("CON(2)-11(3).4.5");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->segment, "CON");
  EXPECT_EQ(p->occurrence, 2u);
  EXPECT_EQ(p->field, 11u);
  EXPECT_EQ(p->repetition, 3u);
  EXPECT_EQ(p->component, 4u);
  EXPECT_EQ(p->subcomponent, 5u);
  for (const char* bad :
       {"", "PID", "PID-", "PID-0", "pid-3", "PID-3.", "PID-3.0", "PID-3(0)", "PID-3(1",
        "PID-3.1.2.3", "PID3", "PID-3x", "PID-9999999", "PI-3", "PID-3(2]"}) {
    EXPECT_FALSE(Path::parse(bad).ok()) << bad;
  }
}

TEST(Parse, SegmentTerminators) {
  const std::string lf = "MSH|^~\\&|A|B|C|D|||ADT^A08|7|P|2.5\nPID|1||X\n";
  const std::string crlf = "MSH|^~\\&|A|B|C|D|||ADT^A08|7|P|2.5\r\nPID|1||X\r\n\r\n";
  const std::string none = "MSH|^~\\&|A|B|C|D|||ADT^A08|7|P|2.5\rPID|1||X";
  for (const std::string& s : {lf, crlf, none}) {
    Message m = parse_ok(s);
    EXPECT_EQ(m.segments().size(), 2u);
    EXPECT_EQ(m.get("PID-3"), "X");
  }
}

// Some engines write a UTF-8 byte order mark, or line ends, before MSH.
TEST(Parse, ByteOrderMarkAndLineEndsBeforeMsh) {
  for (const std::string& s :
       {std::string("\xEF\xBB\xBFMSH|^~\\&|A|B|C|D|||ADT^A08|7|P|2.5\rPID|1||X"),
        std::string("\r\nMSH|^~\\&|A|B|C|D|||ADT^A08|7|P|2.5\rPID|1||X")}) {
    Message m = parse_ok(s);
    EXPECT_EQ(m.control_id(), "7");
    EXPECT_EQ(m.get("PID-3"), "X");
  }
  EXPECT_FALSE(Message::parse("\xEF\xBB\xBF\r\nPID|1||X\rMSH|^~\\&|A").ok());
}

TEST(Parse, OtherSeparators) {
  Message m = parse_ok("MSH#@*$%#A#B#C#D###ADT@A04#9#P#2.5\rPID#1##ID1@@@AUTH*ID2@@@ON%x\r");
  EXPECT_EQ(m.separators().field, '#');
  EXPECT_EQ(m.separators().component, '@');
  EXPECT_EQ(m.separators().repetition, '*');
  EXPECT_EQ(m.separators().escape, '$');
  EXPECT_EQ(m.separators().subcomponent, '%');
  EXPECT_EQ(m.trigger_event(), "A04");
  EXPECT_EQ(m.get("PID-3(2).4.1"), "ON");
  EXPECT_EQ(m.get("PID-3(2).4.2"), "x");
  EXPECT_EQ(m.get("PID-3(1).4"), "AUTH");
}

TEST(Parse, TruncationCharacterAccepted) {
  Message m = parse_ok("MSH|^~\\&#|A|B|C|D|||ADT^A04|1|P|2.7\r");
  EXPECT_EQ(m.get("MSH-2"), "^~\\&#");
  EXPECT_EQ(m.get("MSH-3"), "A");
}

TEST(Escape, Decoding) {
  Separators s;
  EXPECT_EQ(unescape("a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f", s), "a|b^c&d~e\\f");
  EXPECT_EQ(unescape("\\X41424344\\", s), "ABCD");
  EXPECT_EQ(unescape("\\X0D0A\\", s), "\r\n");
  EXPECT_EQ(unescape("line\\.br\\next", s), "line\nnext");
  // FT formatting commands (HL7 2.7 2.7.6), as RIS reports write them.
  EXPECT_EQ(unescape("a\\.sp\\b", s), "a\n\nb");
  EXPECT_EQ(unescape("a\\.sp 2\\b", s), "a\n\n\nb");
  EXPECT_EQ(unescape("a\\.sp+1\\b", s), "a\n\nb");
  EXPECT_EQ(unescape("a\\.sp 99999999\\b", s), "a" + std::string(11, '\n') + "b");  // capped
  EXPECT_EQ(unescape("a\\.sk 3\\b", s), "a   b");
  EXPECT_EQ(unescape("\\.in+4\\\\.ti-2\\\\.ce\\Title\\.fi\\\\.nf\\", s), "Title");
  EXPECT_EQ(unescape("\\.spx\\", s), "\\.spx\\");  // not a command: kept
  EXPECT_EQ(unescape("\\H\\bold\\N\\", s), "bold");
  EXPECT_EQ(unescape("\\C2842\\x", s), "x");
  EXPECT_EQ(unescape("\\Zsite\\", s), "\\Zsite\\");  // unknown: kept
  EXPECT_EQ(unescape("\\X4\\", s), "\\X4\\");        // odd hex: kept
  EXPECT_EQ(unescape("\\XZZ\\", s), "\\XZZ\\");      // not hex: kept
  EXPECT_EQ(unescape("tail\\F", s), "tail\\F");      // unterminated: kept
  EXPECT_EQ(unescape("\\\\", s), "\\\\");            // empty sequence: kept
  EXPECT_EQ(unescape("", s), "");
}

TEST(Escape, RoundTrip) {
  Separators s;
  const std::string text = "a|b^c&d~e\\f plain";
  EXPECT_EQ(escape(text, s), "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f plain");
  EXPECT_EQ(unescape(escape(text, s), s), text);
  Separators other{'#', '@', '*', '$', '%'};
  EXPECT_EQ(unescape(escape("#@*$%|^", other), other), "#@*$%|^");
}

TEST(Escape, AppliedByGet) {
  Message m = parse_ok("MSH|^~\\&|A|B|C|D|||ORU^R01|1|P|2.5\rOBX|1|TX|||5 \\T\\ 6 \\S\\ 7\\F\\8\r");
  EXPECT_EQ(m.get("OBX-5"), "5 & 6 ^ 7|8");
  EXPECT_EQ(m.raw("OBX-5"), "5 \\T\\ 6 \\S\\ 7\\F\\8");
}

TEST(Parse, MalformedHeaders) {
  const std::pair<std::string, const char*> cases[] = {
      {"", "empty"},
      {"PID|1||X\r", "not MSH"},
      {"MSH", "too short"},
      {"MSH|^~\\", "too short"},
      {"MSHA^~\\&|x", "alphanumeric field separator"},
      {"MSH ^~\\&|x", "space separator"},
      {"MSH|^~|A|B", "two encoding characters"},
      {"MSH|^~\\&$%|A", "six encoding characters"},
      {"MSH|^^\\&|A|B", "repeated separator"},
      {"MSH|^~\\||A|B", "encoding character equals field separator"},
      {"MSH|^~1&|A|B", "digit as separator"},
      {"MSH|^~\\&|A\rPID|1\rMSH|^~\\&|B\r", "second MSH"},
      {"MSH|^~\\&|A\rpid|1\r", "lower-case segment ID"},
      {"MSH|^~\\&|A\rP|1\r", "short segment ID"},
      {"MSH|^~\\&|A\rPIDX|1\r", "four-letter segment ID"},
      {"MSH|^~\\&|A\r1ID|1\r", "segment ID starting with a digit"},
      {std::string("MSH|^~\\&|A\0B|C", 14), "NUL byte"},
      {"MSH|^~\\&|A\x01|C", "control byte"},
      {"MSH|^~\\&|A\x7F|C", "DEL"},
      {"FHS|^~\\&|A\r", "batch"},
  };
  for (const auto& [bytes, what] : cases) {
    Result<Message> m = Message::parse(bytes);
    EXPECT_FALSE(m.ok()) << what;
    if (!m.ok()) {
      EXPECT_TRUE(m.error().code == ErrorCode::kProtocol ||
                  m.error().code == ErrorCode::kInvalidArgument)
          << what;
    }
  }
}

TEST(Parse, MissingHeaderFields) {
  Message no_id = parse_ok("MSH|^~\\&|A|B|C|D|||ADT^A04||P|2.5\r");
  Result<void> r = check_header(no_id);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kProtocol);
  EXPECT_NE(r.error().detail.find("MSH-10"), std::string::npos);
  EXPECT_FALSE(check_header(parse_ok("MSH|^~\\&|A|B|C|D|||ADT|1|P|2.5\r")).ok());
  EXPECT_FALSE(check_header(parse_ok("MSH|^~\\&|A\r")).ok());
  Message bare = parse_ok("MSH|^~\\&|A\r");
  EXPECT_EQ(bare.control_id(), "");
  EXPECT_EQ(bare.get("MSH-10"), std::nullopt);
}

TEST(Parse, ErrorsNeverQuoteTheMessage) {
  const std::string secret = "SECRETPATIENTNAME";
  for (const std::string& bytes :
       {"PID|" + secret, "MSH|^~\\&|A\r" + secret + "|1\r", "MSH|^~\\&|" + secret + "\x01"}) {
    Result<Message> m = Message::parse(bytes);
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.error().detail.find(secret), std::string::npos) << m.error().detail;
  }
}

TEST(Parse, Limits) {
  ParseLimits small;
  small.max_message_bytes = 100;
  small.max_segments = 3;
  small.max_fields = 5;
  EXPECT_EQ(Message::parse(std::string(101, 'M'), small).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(Message::parse("MSH|^~\\&|A\rPID|1\rPID|2\rPID|3\r", small).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(Message::parse("MSH|^~\\&|A\rPID|1|2|3|4|5|6\r", small).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_TRUE(Message::parse("MSH|^~\\&|A\rPID|1|2|3\r", small).ok());
  EXPECT_FALSE(Message::parse(std::string(2u << 20, 'x')).ok());  // default: 1 MiB
}

TEST(Parse, HugeField) {
  std::string big(900 * 1024, 'A');
  Message m = parse_ok("MSH|^~\\&|A|B|C|D|||ORU^R01|1|P|2.5\rOBX|1|TX|||" + big + "\r");
  EXPECT_EQ(m.get("OBX-5")->size(), big.size());
}

TEST(Parse, ManyRepetitionsStayCheap) {
  std::string reps(500000, '~');
  Message m = parse_ok("MSH|^~\\&|A|B|C|D|||ADT^A08|1|P|2.5\rPID|1||" + reps + "\r");
  EXPECT_EQ(m.repetitions("PID-3"), 500001u);
  EXPECT_EQ(m.get("PID-3(500001)"), "");
  EXPECT_EQ(m.get("PID-3(999999)"), std::nullopt);
  EXPECT_TRUE(patient_identifiers(m).empty());
}

TEST(Parse, BinaryGarbageNeverCrashes) {
  std::mt19937 rng(1234);
  int parsed = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string bytes(rng() % 300, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    if (i % 3 == 0) bytes = "MSH" + bytes;  // get past the first check now and then
    if (i % 3 == 1) {
      bytes = "MSH|^~\\&|" + bytes;
      for (char& c : bytes) {
        if (static_cast<unsigned char>(c) < 0x20) c = "\r\n|^~&\\"[rng() % 7];
      }
    }
    Result<Message> m = Message::parse(bytes);
    if (!m.ok()) continue;
    ++parsed;
    for (const char* path : {"MSH-9.2", "PID-3(2).4.1", "PD1-12", "CON(3)-11", "MSH-10"}) {
      (void)m->get(path);
    }
    (void)check_header(*m);
    (void)patient_identifiers(*m);
    (void)make_ack(*m, AckCode::kAE, "garbage",
                   AckOptions{"ACK1", "20240105", AckError::kApplicationInternalError});
  }
  EXPECT_GT(parsed, 50);
}

TEST(Dtm, Validity) {
  for (const char* ok :
       {"2024", "202401", "20240105", "2024010512", "202401051230", "20240105123000",
        "20240105123000.1234", "20240105123000-0500", "20240105+0000", "20240105123000.5+0530"}) {
    EXPECT_TRUE(valid_dtm(ok)) << ok;
  }
  for (const char* bad : {"", "24", "2024010", "20241305", "20240132", "2024010525", "202401051260",
                          "20240105123060", "20240105123000.", "2024.5", "20240105123000.12345",
                          "20240105-05", "20240105-1500", "2024O105", "\"\""}) {
    EXPECT_FALSE(valid_dtm(bad)) << bad;
  }
}

}  // namespace
}  // namespace dirgw::hl7
