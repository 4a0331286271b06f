// libFuzzer target: the HL7 v2 listener's codec (gateway/ingest/hl7_mllp): MLLP framing, ER7
// parsing, value access, ACKs, consent and health-number extraction, on arbitrary bytes.
// The input is used twice: as a TCP stream (fed to the MLLP decoder in pieces, every payload it
// yields then parsed as the listener would) and as one message (so unframed seeds reach the
// parser at once). Checks besides crashes, hangs and sanitizer reports:
//   - feeding the stream in pieces yields exactly what feeding it whole yields;
//   - payloads respect max_message_bytes and never contain the framing bytes;
//   - for every payload that parses, each ACK the listener could send parses back, can be framed,
//     and names the original control ID;
//   - escape() then unescape() gives the text back; error details are our own words.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "ingest/hl7_mllp/hl7.h"
#include "ingest/hl7_mllp/mllp.h"

namespace hl7 = dirgw::hl7;
using dirgw::fuzz::printable_ascii;

namespace {

constexpr std::size_t kMaxMessage = 1024;  // below -max_len, so the fuzzer reaches kTooLarge

void exercise_message(std::string_view payload, bool from_mllp) {
  hl7::ParseLimits limits;
  limits.max_message_bytes = 64 * 1024;
  limits.max_segments = 200;
  limits.max_fields = 100;
  auto parsed = hl7::Message::parse(payload, limits);
  hl7::AckOptions options;
  options.control_id = "DIRGW0001";
  options.timestamp = "20240105123000-0500";
  if (!parsed) {
    FUZZ_CHECK(printable_ascii(parsed.error().detail), "parse error detail quotes the message");
    auto ack = hl7::make_ack_unparsed(hl7::AckCode::kAR, "cannot parse", options);
    FUZZ_CHECK(hl7::Message::parse(ack).ok(), "the AR for an unparsable message does not parse");
    return;
  }
  const hl7::Message& m = *parsed;
  for (const char* path :
       {"MSH-9.1", "MSH-9.2", "MSH-10", "MSH-12.1", "MSH-18", "PID-3", "PID-3(2).4.1", "PID-5.1",
        "PD1-12", "CON(2)-11", "EVN-6", "ZCN-1", "OBX(3)-5", "PID-3.1.1"}) {
    (void)m.get(path);
    (void)m.raw(path);
    (void)m.repetitions(path);
  }
  (void)m.message_type();
  (void)m.charset();
  (void)hl7::patient_identifiers(m);
  (void)hl7::extract_consent(m, hl7::ConsentConfig{});
  hl7::ConsentConfig zcn;
  zcn.flag_path = "ZCN-1";
  zcn.use_con_segments = false;
  (void)hl7::extract_consent(m, zcn);
  (void)hl7::extract_health_number_links(m, hl7::LinkConfig{});
  const bool header_ok = hl7::check_header(m).ok();

  for (auto code : {hl7::AckCode::kAA, hl7::AckCode::kAE, hl7::AckCode::kAR}) {
    const std::string ack = hl7::make_ack(m, code, "reason \x01|^~\\& text", options);
    auto back = hl7::Message::parse(ack);
    FUZZ_CHECK(back.ok(), "an ACK dirgw would send does not parse");
    FUZZ_CHECK(back->get("MSA-1").has_value(), "ACK without MSA-1");
    if (header_ok && from_mllp) {
      // What arrived framed can be answered framed.
      FUZZ_CHECK(hl7::mllp_encode(ack).ok(), "the ACK cannot be framed for MLLP");
      FUZZ_CHECK(back->get("MSA-2") == m.get("MSH-10"), "ACK does not name the control ID");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);

  // The stream whole, and in pieces whose sizes come from the data itself.
  hl7::MllpDecoder whole(kMaxMessage), pieces(kMaxMessage);
  std::vector<hl7::MllpEvent> a = whole.feed(bytes);
  std::vector<hl7::MllpEvent> b;
  for (std::size_t pos = 0, i = 0; pos < size; ++i) {
    const std::size_t n = 1 + (size > 0 ? data[i % size] % 97 : 0);
    pieces.feed(bytes.substr(pos, n), b);
    pos += n;
  }
  FUZZ_CHECK(a.size() == b.size(), "piecewise feeding gives other events");
  for (std::size_t i = 0; i < a.size(); ++i) {
    FUZZ_CHECK(a[i].kind == b[i].kind && a[i].message == b[i].message && a[i].error == b[i].error,
               "piecewise feeding gives other events");
  }
  FUZZ_CHECK(whole.idle() == pieces.idle() && whole.buffered() == pieces.buffered(),
             "piecewise feeding leaves another state");
  FUZZ_CHECK(whole.buffered() <= kMaxMessage + 1, "decoder buffers beyond max_message_bytes");
  for (const auto& e : a) {
    if (e.kind != hl7::MllpEvent::Kind::kMessage) {
      FUZZ_CHECK(printable_ascii(hl7::describe(e.error)), "framing error text");
      continue;
    }
    FUZZ_CHECK(e.message.size() <= kMaxMessage, "payload larger than max_message_bytes");
    FUZZ_CHECK(e.message.find(hl7::kMllpStart) == std::string::npos &&
                   e.message.find(hl7::kMllpEnd) == std::string::npos,
               "payload contains framing bytes");
    exercise_message(e.message, true);
  }

  exercise_message(bytes, false);

  const std::string_view text = bytes.substr(0, 256);
  const hl7::Separators sep;
  FUZZ_CHECK(hl7::unescape(hl7::escape(text, sep), sep) == text, "escape/unescape round trip");
  (void)hl7::Path::parse(text.substr(0, 32));
  (void)hl7::valid_dtm(text.substr(0, 32));
  return 0;
}
