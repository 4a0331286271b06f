// The audit trail's pure core: what an audit event is, its canonical form, the hash chain that
// links each event to the one before, the anchor that pins the newest entry, and verification.
// No SQL and no sockets here: the catalog stores events (in the same transaction as the state
// change they describe) and calls seal() / Verifier; see docs/audit.md.
//
// Privacy: an Event has no field for a patient value. A patient is referred to by a keyed HMAC
// tag (log::phi_tag), studies and instances by their UIDs, people and peers by name/AE title.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace dirgw::audit {

// What happened. The canonical form stores the name (event_type_name), never the number, so
// reordering this enum cannot change the hash of an existing entry. Append only.
enum class EventType {
  kObjectReceived,     // an object was received and kept (actor: the sending AE and address)
  kStudySent,          // a study (or a round of it) was delivered to a destination
  kStudyFailed,        // delivery of a study to a destination failed for good
  kConsentChanged,     // a consent grant or withdrawal was recorded
  kQuarantineAction,   // an object or study was quarantined, released or deleted from quarantine
  kPatientDataViewed,  // a CLI command showed patient data (actor: who ran it)
  kOperatorAction,     // a CLI command changed state: retry, hold, release ...
  kStarted,            // the daemon started
  kStopped,            // the daemon stopped
  kConfigChanged,      // the configuration was loaded with a different content than before
  kAuditExported,      // the audit trail was exported (or verified) by someone
  kConnectionRefused,  // the front door refused a caller: unknown or unbound AE title, TLS
  kStudyVerified,      // the repository lists every instance of a study sent to it (QIDO-RS)
  kDeliveryRequeued,   // verification found instances missing from the repository: sent again
  kObjectsPurged,      // retention removed verified spool files (age, or disk pressure)
  kPriorsSearched,     // the repository was searched for a patient's priors (issue 18)
  kPriorFetched,       // a prior study was retrieved and stored into the local PACS (or not)
  // Policy decisions per study and destination (issue 15: the trail alone rebuilds the daily
  // report): held (no consent, new version, operator), released from HELD or QUARANTINED, and
  // withdrawn (consent withdrawn before it left). Quarantine itself is a quarantine_action.
  kStudyHeld,
  kStudyReleased,
  kStudyWithdrawn,
};

// "object_received", "study_sent", ...: the stable name used in the canonical form.
std::string_view event_type_name(EventType type);
std::optional<EventType> parse_event_type(std::string_view name);
// Every event type, in enum order (for tests and tables).
const std::vector<EventType>& all_event_types();

// prev_hash of the first entry of a trail.
inline constexpr std::string_view kGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

struct Event {
  std::int64_t seq = 0;    // 1, 2, 3 ... set by seal() from the previous entry
  std::int64_t at_ms = 0;  // UTC, milliseconds since the epoch
  EventType type = EventType::kOperatorAction;
  std::string actor;    // see dicom_actor() / user_actor() / system_actor()
  std::string outcome;  // "success" | "failure:<reason in our words>"
  std::string study_uid, sop_instance_uid, destination;  // UIDs and a destination name only
  std::string patient_ref;  // keyed HMAC tag of the patient, never the value; may be empty
  nlohmann::json detail = nlohmann::json::object();  // small, no patient data; sorted keys
  std::string prev_hash;  // hash of the previous entry (kGenesisHash for the first)
  std::string hash;       // hex; SHA-256 or HMAC-SHA-256 of canonical(*this)

  bool operator==(const Event&) const = default;
};

inline constexpr std::string_view kSuccess = "success";
// "failure:<reason>"
std::string failure(std::string_view reason);
bool is_success(const Event& e);
// The reason of a failure outcome ("" for success).
std::string_view failure_reason(const Event& e);

// Actors, as one string so the store needs one column; parse_actor() reads them back.
//   "dicom:PACS1@10.0.0.5:4242", "dicom:PACS1@[fe80::1]:4242", "hl7:LAB@10.0.0.7:2575"
//   "user:alice(uid 1000)", "system:dirgwd"
std::string dicom_actor(std::string_view ae_title, std::string_view host, int port);
std::string hl7_actor(std::string_view application, std::string_view host, int port);
std::string user_actor(std::string_view name, long uid);
std::string system_actor(std::string_view name = "dirgwd");

// A caller refused at the door (DICOM Security Alert / Node Authentication): who, from where
// ("host:port"), and why (the refusal code and the words for people).
Event connection_refused(std::string_view calling_ae, std::string_view peer, std::string_view code,
                         std::string_view reason);

struct Actor {
  enum class Kind { kDicom, kHl7, kUser, kSystem, kOther };
  Kind kind = Kind::kOther;
  std::string id;    // AE title, HL7 application, user name, program name; the whole string for
                     // kOther
  std::string host;  // peer address (no brackets) for kDicom/kHl7
  int port = 0;
  std::optional<long> uid;  // kUser
};
Actor parse_actor(std::string_view actor);

// How entries are hashed. Plain SHA-256 makes the trail tamper-evident against partial edits and
// verifiable by anyone; a key (kept outside the database) also makes it unforgeable by someone
// who can rewrite the whole database but cannot read the key. See docs/audit.md.
class ChainHasher {
 public:
  static ChainHasher plain();
  // HMAC-SHA-256 under `key`; at least 32 bytes.
  static Result<ChainHasher> keyed(std::string key);

  bool is_keyed() const { return !key_.empty(); }
  std::string hash(const Event& e) const;  // over canonical(e)

 private:
  ChainHasher() = default;
  std::string key_;
};

// Deterministic serialisation of everything but `hash`: JSON, keys sorted, no whitespace,
// strings escaped the same way every time, detail serialised by the same rules. Invalid UTF-8
// is escaped byte for byte (\u00XX with XX >= 80, which a valid string never produces), so two
// different events never share a canonical form.
std::string canonical(const Event& e);
// The detail object's part of canonical(): the same rules, so a store that keeps detail as text
// should write this (nlohmann's dump() throws on invalid UTF-8; this never throws).
std::string canonical_detail(const nlohmann::json& detail);
// The inverse, for a store that keeps the canonical text: the event with `hash` set to `hash`.
Result<Event> from_canonical(std::string_view text, std::string hash = {});

// SHA-256 of canonical(e), hex. Same as ChainHasher::plain().hash(e).
std::string compute_hash(const Event& e);

// The newest entry of a trail as (seq, hash): what the next entry links to, and what the anchor
// file keeps. The empty trail's is {0, kGenesisHash}.
struct Anchor {
  std::int64_t seq = 0;
  std::string hash = std::string(kGenesisHash);
  bool operator==(const Anchor&) const = default;
};
inline Anchor anchor_of(const Event& e) { return Anchor{e.seq, e.hash}; }

// Links `e` after `prev`: sets seq = prev.seq + 1 and prev_hash, replaces invalid UTF-8 in every
// string (and in detail) by U+FFFD so that what is stored is exactly what was hashed, then sets
// hash. The store calls this inside the transaction that inserts the entry.
Event seal(Event e, const Anchor& prev, const ChainHasher& hasher = ChainHasher::plain());

// The anchor file: a small JSON object {"hash":"...","seq":N} written beside the database after
// entries commit, so that deleting the newest entries is detected too.
std::string format_anchor(const Anchor& a);
Result<Anchor> parse_anchor(std::string_view text);
Result<void> write_anchor(const std::filesystem::path& path, const Anchor& a);
// nullopt when the file does not exist (a trail that never wrote one).
Result<std::optional<Anchor>> read_anchor(const std::filesystem::path& path);

struct VerifyResult {
  bool ok = true;
  std::int64_t checked = 0;  // entries that verified (all entries before first_bad_seq)
  std::optional<std::int64_t> first_bad_seq;  // the entry where verification failed
  std::string reason;                         // our words; names the entry
  Anchor last;                                // the newest entry that verified (the start, if none)
  // Entries newer than the anchor: protected by the chain only (the anchor is written after
  // commits, so it may lag behind by the entries of the last moments before a crash).
  std::int64_t beyond_anchor = 0;
};

// Verifies entries fed in seq order without holding them: each hash recomputes, each prev_hash
// is the hash of the entry before, seq rises by exactly one (a removed entry leaves a gap, a
// reordered one breaks the order or the links). The first entry must follow `start`: by default
// the empty trail {0, kGenesisHash}, so it must be seq 1; a trusted (seq, hash) kept from an
// earlier run allows incremental verification, or a trail whose oldest entries were pruned.
// `end` is the anchor: the trail must reach end.seq and hold end.hash there, or its newest
// entries were removed or rewritten. Stops at the first bad entry; later add() calls are ignored.
//
// first_bad_seq is where verification fails. An edited entry fails its own hash. With a plain
// (unkeyed) chain, someone who edits entry N and recomputes its hash moves the failure to N+1,
// whose prev_hash no longer matches; the reason then names both.
class Verifier {
 public:
  explicit Verifier(ChainHasher hasher = ChainHasher::plain(), Anchor start = {},
                    std::optional<Anchor> end = {});
  // false once the trail is known bad.
  bool add(const Event& e);
  // For the store: a row that cannot even be read back as an Event (unknown type name, detail
  // that is not JSON) is bad too. Records it as the first bad entry unless one was found before.
  void reject(std::int64_t seq, std::string reason);
  VerifyResult finish() const;
  bool ok() const { return result_.ok; }

 private:
  void fail(std::int64_t seq, std::string reason);
  ChainHasher hasher_;
  Anchor start_;
  std::optional<Anchor> end_;
  bool end_seen_ = false;
  VerifyResult result_;
};

VerifyResult verify(const std::vector<Event>& events, const std::optional<Anchor>& end = {},
                    const ChainHasher& hasher = ChainHasher::plain(), const Anchor& start = {});

}  // namespace dirgw::audit
