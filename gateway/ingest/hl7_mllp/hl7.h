// HL7 v2 (ER7) codec: parse a message, read values by path ("PID-3(2).4.1"), decode escape
// sequences, build ACKs, and extract what the consent registry and the coercion table need from
// ADT and CON. Pure: bytes in, values out. The MLLP listener, the registry and what a consent
// event means for a study live elsewhere. Rules and decisions: docs/hl7.md.
//
// Hostile input is expected: parsing is linear in the input, bounded by ParseLimits, and every
// failure is a Result with a detail that never quotes the message (it may carry patient data).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "log/log.h"

namespace dirgw::hl7 {

struct Separators {
  char field = '|';
  char component = '^';
  char repetition = '~';
  char escape = '\\';
  char subcomponent = '&';
};

struct ParseLimits {
  std::size_t max_message_bytes = std::size_t{1} << 20;
  std::size_t max_segments = 10000;
  std::size_t max_fields = 1000;  // per segment
};

struct Segment {
  std::string id;  // "PID"
  // fields[0] is the segment ID; fields[n] is SEG-n as received (escape sequences not decoded).
  // For MSH, fields[1] is the field separator and fields[2] the encoding characters, so that
  // MSH-n is fields[n] as in the standard.
  std::vector<std::string> fields;
};

// A value's address: SEG[(occurrence)]-FIELD[(repetition)][.COMPONENT[.SUBCOMPONENT]], all
// 1-based: "PID-3", "PID-3(2).4.1", "CON(2)-11", "MSH-9.2". "[n]" is accepted for "(n)".
struct Path {
  std::string segment;
  std::size_t occurrence = 1;
  std::size_t field = 0;
  std::size_t repetition = 1;
  std::size_t component = 0;     // 0: not given
  std::size_t subcomponent = 0;  // 0: not given

  static Result<Path> parse(std::string_view text);
};

class Message {
 public:
  // kProtocol with a reason when the bytes are not an HL7 v2 message we accept; kInvalidArgument
  // when they exceed the limits.
  static Result<Message> parse(std::string_view bytes, const ParseLimits& limits = {});

  const Separators& separators() const { return sep_; }
  const std::vector<Segment>& segments() const { return segments_; }
  // The n-th (0-based) segment with this ID, or nullptr.
  const Segment* segment(std::string_view id, std::size_t occurrence = 0) const;
  std::size_t count(std::string_view id) const;

  // The value at `path`, escape sequences decoded. Without a component the first component (and
  // its first subcomponent) is meant, as HAPI's Terser does. nullopt when the segment, field,
  // repetition, component or subcomponent is absent (or the path is malformed); "" when present
  // and empty. The HL7 null "" (two double quotes) is returned as it is.
  std::optional<std::string> get(std::string_view path) const;
  std::optional<std::string> get(const Path& path) const;
  // As received (no decoding); without a component, the whole repetition.
  std::optional<std::string> raw(std::string_view path) const;
  // How many repetitions the field has (0 when absent or empty).
  std::size_t repetitions(std::string_view path) const;

  // MSH shortcuts, decoded; "" when absent.
  std::string message_type() const { return get("MSH-9.1").value_or(""); }   // "ADT"
  std::string trigger_event() const { return get("MSH-9.2").value_or(""); }  // "A04"
  std::string control_id() const { return get("MSH-10").value_or(""); }
  std::string version() const { return get("MSH-12.1").value_or(""); }  // "2.5.1"
  std::string charset() const { return get("MSH-18").value_or(""); }    // first repetition
  std::string sending_application() const { return get("MSH-3.1").value_or(""); }
  std::string sending_facility() const { return get("MSH-4.1").value_or(""); }

 private:
  std::optional<std::string_view> locate(const Path& path, bool whole_repetition) const;

  Separators sep_;
  std::vector<Segment> segments_;
};

// Decodes \F\ \S\ \T\ \R\ \E\ \Xhh..\ (and \.br\ as a line feed; \H\ \N\ \Cxxyy\ \Mxxyyzz\ are
// dropped). Unknown or unterminated sequences are kept as they are.
std::string unescape(std::string_view raw, const Separators& sep);
// Escapes the separators and the escape character.
std::string escape(std::string_view text, const Separators& sep);

// The header fields a reply depends on: MSH-9.1, MSH-9.2 and MSH-10 present. kProtocol naming the
// first missing field (the listener answers AR with kRequiredFieldMissing).
Result<void> check_header(const Message& message);

// --- ACK
// ------------------------------------------------------------------------------------------

enum class AckCode { kAA, kAE, kAR };

// HL7 table 0357 (message error condition codes).
enum class AckError {
  kSegmentSequence = 100,
  kRequiredFieldMissing = 101,
  kDataType = 102,
  kTableValueNotFound = 103,
  kUnsupportedMessageType = 200,
  kUnsupportedEventCode = 201,
  kUnsupportedProcessingId = 202,
  kUnsupportedVersionId = 203,
  kUnknownKeyIdentifier = 204,
  kDuplicateKeyIdentifier = 205,
  kApplicationRecordLocked = 206,
  kApplicationInternalError = 207,
};

struct AckOptions {
  std::string control_id;  // MSH-10 of the ACK: the caller makes it unique (no global state here)
  std::string timestamp;   // MSH-7, HL7 DTM such as "20240105123000-0500"
  AckError error = AckError::kApplicationInternalError;  // ERR-3 for AE and AR
};

// An ACK for `in` (segments end with CR; frame it with mllp_encode). MSH with sending and
// receiving application/facility swapped, MSH-9 "ACK^<trigger>^ACK", MSH-10 options.control_id,
// processing ID, version and character set copied; MSA-1 the code, MSA-2 the original control ID;
// for AE/AR an ERR segment (ERR-3 the table 0357 code, ERR-4 "E", ERR-8 `text`). `text` is ours:
// it is reduced to printable ASCII, escaped and cut to 200 characters; never put a value from the
// message into it.
std::string make_ack(const Message& in, AckCode code, std::string_view text,
                     const AckOptions& options);
// For bytes that did not parse: default separators, version 2.5, MSA-2 empty.
std::string make_ack_unparsed(AckCode code, std::string_view text, const AckOptions& options);

// --- Patient identifiers, consent, health-number links
// ---------------------------------------------

struct PatientIdentifier {
  Phi<std::string> id;              // CX-1
  std::string assigning_authority;  // CX-4.1 (HD namespace ID), e.g. "LGH-MRN", "ON"
  std::string identifier_type;      // CX-5, e.g. "MR", "JHN"
};

// Every repetition of PID-3 of the first PID that has an ID.
std::vector<PatientIdentifier> patient_identifiers(const Message& message);

enum class ConsentAction { kGrant, kWithdraw, kUnknown };
std::string_view to_string(ConsentAction action);  // "grant", "withdraw", "unknown"

struct ConsentEvent {
  std::vector<PatientIdentifier> patient_ids;  // PID-3, every repetition
  ConsentAction action = ConsentAction::kUnknown;
  std::string effective_time;  // HL7 DTM as sent (validated), "" when none was found
  std::string source;          // MSH-4.1, the sending facility
  std::string control_id;      // MSH-10
  std::string origin;          // where the action was read: "PD1-12", "CON(2)-11"
  std::string consent_type;    // CON-2.1 for CON events; "" for the ADT flag
};

struct ConsentConfig {
  // ADT: the action is read from flag_path, e.g. PD1-12 (Protection Indicator: Y = protect, i.e.
  // do not share) or a site's Z-segment field ("ZCN-1").
  std::vector<std::string> adt_triggers = {"A04", "A08", "A31"};
  std::string flag_path = "PD1-12";
  std::vector<std::string> grant_values = {"N"};
  std::vector<std::string> withdraw_values = {"Y"};
  // Tried in order; the first that holds a valid DTM is the effective time.
  std::vector<std::string> effective_time_paths = {"PD1-13", "EVN-6", "EVN-2", "MSH-7"};
  // CON segments (HL7 2.5+), in any message: CON-11 Consent Status (table 0498).
  bool use_con_segments = true;
  std::vector<std::string> con_types;  // CON-2.1 values that concern us; empty: every CON
  std::vector<std::string> con_grant_status = {"A"};
  std::vector<std::string> con_withdraw_status = {"R", "X"};
};

// kConfig naming the first path that does not parse.
Result<void> check_config(const ConsentConfig& config);

// The consent events a message carries: one per relevant CON segment when there are any; else, for
// an ADT message with a configured trigger, one from flag_path (kUnknown when the field is absent,
// empty or holds another value: "no statement", not a withdrawal). Other messages: none.
// kProtocol when a relevant message has no PID or no identifier in PID-3.
Result<std::vector<ConsentEvent>> extract_consent(const Message& message,
                                                  const ConsentConfig& config);

struct LinkConfig {
  std::vector<std::string> message_types = {"ADT"};
  // MRN: PID-3 repetitions whose authority is mrn_authority; when that is empty, whose type is
  // mrn_type.
  std::string mrn_authority;
  std::string mrn_type = "MR";
  // Health number: authority health_number_authority, or no authority and type
  // health_number_type.
  std::string health_number_authority = "ON";
  std::string health_number_type = "JHN";
};

struct HealthNumberLink {
  Phi<std::string> mrn;
  std::string mrn_authority;
  Phi<std::string> health_number;  // as sent; the caller validates it
  std::string health_number_authority;
};

// MRN -> health number pairs for the coercion table: one per MRN repetition when PID-3 carries
// exactly one distinct health number; none when it carries none or several (ambiguous).
std::vector<HealthNumberLink> extract_health_number_links(const Message& message,
                                                          const LinkConfig& config);

// HL7 DTM: YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ], with plausible ranges.
bool valid_dtm(std::string_view value);

}  // namespace dirgw::hl7
