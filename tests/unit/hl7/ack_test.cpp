// ACKs: swapped header, MSA with the original control ID, ERR for AE/AR, our text escaped and
// never a value from the message.
#include <gtest/gtest.h>

#include "ingest/hl7_mllp/hl7.h"

namespace dirgw::hl7 {
namespace {

const std::string kAckAdt =
    "MSH|^~\\&|REG|LGH|DIRGW|LGHGW|20240105123000-0500||ADT^A04^ADT_A01|MSG0001|P|2.5.1\r"
    "PID|1||MRN000123^^^LGH-MRN^MR||SYNTHETIC^PATIENT\r";

AckOptions options() {
  AckOptions o;
  o.control_id = "DIRGW0042";
  o.timestamp = "20240105123001";
  return o;
}

Message parse(std::string_view bytes) { return Message::parse(bytes).value(); }

TEST(Ack, Accept) {
  std::string ack = make_ack(parse(kAckAdt), AckCode::kAA, "", options());
  EXPECT_EQ(ack,
            "MSH|^~\\&|DIRGW|LGHGW|REG|LGH|20240105123001||ACK^A04^ACK|DIRGW0042|P|2.5.1\r"
            "MSA|AA|MSG0001\r");
  Message m = parse(ack);
  EXPECT_EQ(m.message_type(), "ACK");
  EXPECT_EQ(m.trigger_event(), "A04");
  EXPECT_EQ(m.get("MSA-2"), "MSG0001");
  EXPECT_EQ(m.count("ERR"), 0u);
}

TEST(Ack, ErrorCarriesErrSegment) {
  AckOptions o = options();
  o.error = AckError::kRequiredFieldMissing;
  std::string ack = make_ack(parse(kAckAdt), AckCode::kAE, "PID-3 has no identifier", o);
  Message m = parse(ack);
  EXPECT_EQ(m.get("MSA-1"), "AE");
  EXPECT_EQ(m.get("MSA-2"), "MSG0001");
  EXPECT_EQ(m.get("MSA-3"), "PID-3 has no identifier");
  EXPECT_EQ(m.get("ERR-3.1"), "101");
  EXPECT_EQ(m.get("ERR-3.2"), "Required field missing");
  EXPECT_EQ(m.get("ERR-3.3"), "HL70357");
  EXPECT_EQ(m.get("ERR-4"), "E");
  EXPECT_EQ(m.get("ERR-8"), "PID-3 has no identifier");
}

TEST(Ack, RejectDefaultsToInternalError) {
  Message m = parse(make_ack(parse(kAckAdt), AckCode::kAR, "catalog unavailable", options()));
  EXPECT_EQ(m.get("MSA-1"), "AR");
  EXPECT_EQ(m.get("ERR-3.1"), "207");
}

TEST(Ack, TextIsEscapedAndCleaned) {
  std::string ack =
      make_ack(parse(kAckAdt), AckCode::kAE, "bad|field^sep&x~y\\z\r\nMSH|evil", options());
  Message m = parse(ack);
  EXPECT_EQ(m.segments().size(), 3u);  // the CR/LF did not start a segment
  EXPECT_EQ(m.get("ERR-8"), "bad|field^sep&x~y\\z  MSH|evil");
  std::string long_text(1000, 'x');
  Message l = parse(make_ack(parse(kAckAdt), AckCode::kAE, long_text, options()));
  EXPECT_EQ(l.get("ERR-8")->size(), 200u);
}

TEST(Ack, NeverEchoesPatientData) {
  std::string ack = make_ack(parse(kAckAdt), AckCode::kAE, "rejected", options());
  for (const char* value : {"MRN000123", "SYNTHETIC", "PATIENT"}) {
    EXPECT_EQ(ack.find(value), std::string::npos) << value;
  }
}

TEST(Ack, UsesTheSendersSeparatorsAndCharset) {
  const std::string in =
      "MSH#@*$%#REG#LGH#GW#LGHGW#20240105##ADT@A08#X1#T#2.6######8859/1\rPID#1##M1\r";
  std::string ack = make_ack(parse(in), AckCode::kAE, "a#b@c", options());
  Message m = parse(ack);
  EXPECT_EQ(m.separators().field, '#');
  EXPECT_EQ(m.get("MSH-9.2"), "A08");
  EXPECT_EQ(m.get("MSH-11"), "T");
  EXPECT_EQ(m.get("MSH-12"), "2.6");
  EXPECT_EQ(m.get("MSH-18"), "8859/1");
  EXPECT_EQ(m.get("MSA-2"), "X1");
  EXPECT_EQ(m.get("ERR-8"), "a#b@c");
}

TEST(Ack, MinimalHeader) {
  Message m = parse(make_ack(parse("MSH|^~\\&|A\r"), AckCode::kAR, "no control ID", options()));
  EXPECT_EQ(m.get("MSH-9"), "ACK");
  EXPECT_EQ(m.get("MSH-11"), "P");
  EXPECT_EQ(m.get("MSH-12"), "2.5");
  EXPECT_EQ(m.get("MSA-2"), "");
}

TEST(Ack, Unparsed) {
  std::string ack = make_ack_unparsed(AckCode::kAR, "not an HL7 message", options());
  EXPECT_EQ(ack,
            "MSH|^~\\&|||||20240105123001||ACK|DIRGW0042|P|2.5\r"
            "MSA|AR||not an HL7 message\r"
            "ERR|||207^Application internal error^HL70357|E||||not an HL7 message\r");
  EXPECT_TRUE(Message::parse(ack).ok());
}

}  // namespace
}  // namespace dirgw::hl7
