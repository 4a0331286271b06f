// The catalog's value types: what its parts take and return (catalog.h lists the parts).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "audit/audit.h"
#include "catalog/lifecycle.h"
#include "catalog/send_gate.h"
#include "common/clock.h"
#include "common/result.h"

namespace dirgw::catalog {

// Study states, per destination after policy (see docs/design.md).
inline constexpr const char* kReceiving = "RECEIVING";
inline constexpr const char* kStable = "STABLE";
inline constexpr const char* kReady = "READY";
inline constexpr const char* kSending = "SENDING";
inline constexpr const char* kSent = "SENT";
inline constexpr const char* kRetryWait = "RETRY_WAIT";
inline constexpr const char* kFailed = "FAILED";

struct NewInstance {
  std::string study_uid, series_uid, sop_instance_uid, sop_class_uid, transfer_syntax, modality;
  std::string sha256;
  std::uint64_t size = 0;
  std::string calling_ae, peer;
  // Patient ID and issuer as received (patient data: compared, never logged). Two versions of
  // one SOP Instance UID with different identities (or studies) are an identity conflict.
  std::string patient_identity;
  // Where the object came from: "dicom:<calling AE>" or "folder:<name>" (shown by dirgw study).
  std::string source;
  // When set, called inside the transaction after the instance's rows are written and before
  // they can commit: it makes the object's data durable (the SCP's slot flush, begun when the
  // last byte arrived, runs meanwhile). Failing, it rolls this instance back alone.
  std::function<Result<void>()> before_commit;
  // When set, how to tell the same instance in other bytes (another door's meta header, another
  // VR form) from a new version: the object's content key (nullopt when it cannot be read: the
  // instance then fails, to be sent again, never taken for a new version unread), a held
  // object's (by its sha256; "" when its file is gone or unreadable) and whether two keys are
  // one instance's (ingest::content_key_file, same_content). Called only for an SOP Instance UID
  // held already with other bytes, inside the transaction, for what was not read before it.
  // `defer` (CatalogSink): nothing is read inside the transaction, where a large object would
  // hold every door's commit meanwhile; the instance is then not recorded and the outcome says
  // `content_needed`: the caller reads the keys (`own`, `stored`: IngestLedger::held_versions)
  // and records it again. With `own` set, `present` only checks that the object's file is still
  // there (another door's duplicate of the same bytes may have removed it).
  struct ContentCheck {
    std::function<std::optional<std::string>()> key;
    std::function<std::string(const std::string& sha256)> stored_key;
    std::function<bool(std::string_view, std::string_view)> same;
    std::optional<std::string> own;
    std::map<std::string, std::string> stored;  // held object's sha256 -> its key
    std::function<bool()> present;
    bool defer = false;
  };
  std::optional<ContentCheck> content;
};

// kIdentityConflict: the SOP Instance UID is held already for another patient or study; both are
// kept and every study involved is QUARANTINED (reason::kIdentityConflict); nothing is superseded.
enum class RecordKind { kNew, kDuplicate, kNewVersion, kIdentityConflict };

// What to do with an SOP instance received again with different bytes.
enum class NewVersionPolicy { kSend, kHold };
struct RecordOutcome {
  RecordKind kind;
  std::int64_t instance_id = 0;
  // The study, or one of its destinations, began RECEIVING with this instance (new, or reopened
  // after it had moved on), or the instance is a new version or an identity conflict: what the
  // readiness and report threads need to be woken for.
  bool opened = false;
  // kDuplicate of an instance held in other bytes (NewInstance::content): the object's file is
  // not the held one's and is not kept.
  bool other_bytes = false;
  // Nothing was recorded: the SOP Instance UID is held in other bytes and ContentCheck::defer
  // asked for the keys to be read outside the transaction first (`kind` means nothing then).
  bool content_needed = false;
};

struct DueItem {
  std::int64_t instance_id = 0;
  std::int64_t study_id = 0;
  std::string study_uid, sop_instance_uid, sop_class_uid, sha256;
  std::uint64_t size = 0;
  int attempts = 0;
  std::int64_t received_at = 0;
  std::int64_t first_failure_at = 0;  // 0: has not failed yet
  bool derived = false;  // sha256/size/UID are of a derived (coerced or de-identified) copy
};

enum class DeliveryResult { kDelivered, kRetry, kRefused };
struct DeliveryUpdate {
  std::int64_t instance_id = 0;
  DeliveryResult result = DeliveryResult::kRetry;
  std::string error;  // our words, never patient data
  std::int64_t next_attempt_at = 0;
  // With kRefused: the repository kept taking it without evidence of storage until the limit
  // was spent; the study is QUARANTINED (reason::kUnconfirmed) instead of FAILED.
  bool unconfirmed = false;
};

struct StateCount {
  std::string state;
  std::int64_t studies = 0;
  std::int64_t instances = 0;
};

struct DestinationStatus {
  std::string name;
  std::vector<StateCount> states;
  std::int64_t pending_instances = 0;
  std::int64_t held_instances = 0;  // of pending_instances, those of HELD studies
  std::int64_t pending_bytes = 0;
  std::int64_t oldest_pending_at = 0;
  std::int64_t last_success_at = 0;
  std::int64_t last_error_at = 0;
  std::string last_error;
  // require_report: studies HELD for their report, and studies let go without one.
  std::int64_t waiting_report = 0, without_report = 0;
};

struct Refusal {
  std::int64_t at = 0;
  std::string source, calling_ae, peer, reason;
  std::string code;  // ingest::refusal::k* ("" in rows from before schema 11)
};

struct Reconciliation {
  std::int64_t at = 0;
  int temporaries = 0, adopted = 0, quarantined = 0, missing = 0;
};

struct Status {
  int schema_version = 0;
  std::int64_t studies = 0;
  std::int64_t instances = 0;
  std::int64_t bytes = 0;
  std::vector<StateCount> ingest_states;  // RECEIVING / STABLE
  std::vector<DestinationStatus> destinations;
  std::int64_t refusals = 0;
  std::optional<Refusal> last_refusal;
  std::optional<Reconciliation> last_reconciliation;
};

struct StudySummary {
  std::string study_uid, state;
  std::int64_t instances = 0, bytes = 0, first_received_at = 0, last_received_at = 0;
  int priority = 0;  // 0 routine, 1 STAT by a rule (attribute, calling AE, HL7 order), 2 operator
  std::vector<std::pair<std::string, std::string>> destination_states;  // name, state
};

struct DeliveryDetail {
  std::string destination, state, last_error;
  int attempts = 0, round = 1;
  std::int64_t next_attempt_at = 0, sent_at = 0;
  std::int64_t verified_at = 0;  // 0: not verified
  int resends = 0;               // sent again after verification found it missing
};

struct InstanceDetail {
  std::string sop_instance_uid, sop_class_uid, series_uid, modality, transfer_syntax, sha256, flags,
      calling_ae, source;
  std::int64_t size = 0, received_at = 0;
  bool purged = false;  // its spool file was removed by retention (catalog row kept)
  std::vector<DeliveryDetail> deliveries;
};

struct RoundDetail {
  std::string destination;
  int round = 1;
  std::int64_t instances = 0, sent = 0, failed = 0, pending = 0;
  std::int64_t first_sent_at = 0, last_sent_at = 0;
};

struct DestinationStateDetail {
  std::string destination, state, reason;
  int round = 1;
  std::int64_t updated_at = 0, sent_at = 0;
  std::string verify_error;      // why the last verification could not run ("" if it ran)
  std::int64_t verified_at = 0;  // 0: not VERIFIED
  std::string report_note;       // require_report: "waiting for report", ... ("" otherwise)
};

struct StudyDetail {
  StudySummary summary;
  std::vector<DestinationStateDetail> destinations;
  std::vector<RoundDetail> rounds;
  std::vector<InstanceDetail> instances;
};

// The result of an operator action: how many studies changed, and why others did not.
struct ActionResult {
  int changed = 0;
  std::vector<std::string> refused;  // "<study uid> <destination>: HELD cannot become READY"
};

// The spool files of a study whose rows were deleted that no other study uses (the caller
// removes them).
struct DeletedObjects {
  std::vector<std::string> received;  // spool/objects
  std::vector<std::string> derived;   // spool/derived: coerced, de-identified, converted copies
};

// --- Policy and consent (schema 4)

struct PatientKey {
  std::string kind;    // "hn" | "mrn"
  std::string issuer;  // "ON", "LGH-MRN"
  std::string value;
  bool operator<(const PatientKey& o) const {
    return std::tie(kind, issuer, value) < std::tie(o.kind, o.issuer, o.value);
  }
  bool operator==(const PatientKey& o) const = default;
};

enum class ConsentState { kUnknown, kGranted, kWithdrawn };

struct ConsentChange {
  std::vector<PatientKey> identifiers;
  bool grant = true;  // false: withdraw
  std::string scope = "*";
  std::string source;  // cli | csv | hl7
  std::string operator_name;
  std::string reference;
  std::int64_t at = 0;  // 0: now
  // Destinations with a withdrawal notification endpoint: a withdrawal queues one for each.
  std::vector<std::string> notify;
};

struct Notification {
  std::int64_t id = 0;
  std::string body;
  int attempts = 0;
};

struct ConsentEffect {
  std::int64_t patient_id = 0;
  int notifications = 0;
  int studies_withdrawn = 0;  // study/destination rows stopped
  int studies_released = 0;   // HELD for want of consent, now READY
};

struct ConsentEventRow {
  std::int64_t at = 0;
  std::string decision, scope, source, operator_name, reference;
};

struct PatientConsent {
  std::int64_t patient_id = 0;
  std::vector<PatientKey> identifiers;
  std::vector<ConsentEventRow> history;
  std::vector<std::string> study_uids;
};

struct Finding {
  std::string sop_instance_uid, code, tag, message;
};

// Why a study/destination row is HELD, QUARANTINED or WITHDRAWN, as stored in reason_code:
// decisions compare these, never the words shown to people.
namespace reason {
inline constexpr const char* kNoConsent = "no-consent";
inline constexpr const char* kConsentWithdrawn = "consent-withdrawn";
inline constexpr const char* kValidation = "validation";
inline constexpr const char* kOperator = "operator";
inline constexpr const char* kNewVersion = "new-version";
inline constexpr const char* kDeidRefused = "deid-refused";  // not de-identifiable as configured
// Explicit VR Big Endian where the destination says big_endian: refuse (or it did not convert).
inline constexpr const char* kBigEndianRefused = "big-endian-refused";
// One SOP Instance UID received with different patient or study identity (issue 17).
inline constexpr const char* kIdentityConflict = "identity-conflict";
inline constexpr const char* kIdentityConflictText =
    "conflicting identity for one SOP Instance UID";
// The repository kept answering without evidence of storage, or kept not listing it (issue 17,
// item 10): a person must look; releasing it sends it again.
inline constexpr const char* kUnconfirmed = "repository-unconfirmed";
// require_report: held until the study's final report is an object of it, or max_wait passed.
inline constexpr const char* kWaitingReport = "waiting-report";
}  // namespace reason

// A per-destination copy the policy stage wrote (coerced, or de-identified), sent instead of the
// original. A de-identified copy has its own SOP Instance UID.
struct DerivedObject {
  std::int64_t instance_id = 0;
  std::string destination;
  std::string sha256;
  std::uint64_t size = 0;
  std::string kind = "coerced";  // coerced | deidentified | converted (big endian)
  std::string sop_instance_uid;  // empty: the original's
};

// What the policy stage decided for one study and one destination. READY is a proposal that
// consent still decides: record_policy reads the consent registry in the same transaction that
// commits the decision, so a withdrawal is seen either by the decision or the decision by it.
struct PolicyDecision {
  std::string destination;
  StudyState state = StudyState::kReady;  // READY, HELD, QUARANTINED or WITHDRAWN
  std::string reason;
  std::string code;     // reason::k*
  bool opt_in = false;  // READY needs a recorded grant (else HELD "no consent recorded")
  // require_report: what the report meant for this decision ("" when not required); kept in
  // study_destinations.report_note, whatever consent then decides.
  std::string report_note;
};

// Consent's say over a study that passed validation: READY, HELD or WITHDRAWN, and why.
PolicyDecision consent_decision(const std::string& destination, ConsentState consent, bool opt_in);

// A batch the forwarder may send now: the items still sendable, their deliveries marked
// 'sending', and the permit that keeps withdrawals waiting until the request has left.
struct SendBatch {
  std::vector<DueItem> items;
  int dropped = 0;  // items whose study may no longer be sent (withdrawn, held...)
  SendPermit permit;
};

struct PolicyWork {
  std::int64_t study_id = 0;
  std::string study_uid;
  std::vector<std::string> destinations;  // rows in STABLE
  struct Instance {
    std::int64_t id = 0;
    std::string sop_instance_uid, sha256;
    std::int64_t received_at = 0;
    std::string calling_ae;  // who sent it over DICOM ("" for other sources)
  };
  std::vector<Instance> instances;
  // SOP Instance UIDs of this study also held with another patient identity or in another
  // study: the study stays QUARANTINED whatever else policy finds (until one side is deleted).
  std::vector<std::string> identity_conflicts;
  std::int64_t first_received_at = 0;
  // A final (or corrected) HL7 report of the study is an object of it (require_report).
  bool final_report = false;
  // Destinations whose burned-in screen an operator waived for this study (schema 29): the
  // instances with an id up to the value were reviewed.
  std::map<std::string, std::int64_t> burned_in_reviewed;
};

// send_while_receiving (issue 16): a RECEIVING study's instances not yet checked on their own.
// `destinations`: those that send while receiving, for which the study is RECEIVING and may
// still send early; `blocked`: those for which an instance of the study was already held back
// (nothing more of it goes early: its new instances are held back unchecked).
struct EarlyWork : PolicyWork {
  std::vector<std::string> blocked;
};

// What the policy stage found for one destination in an early round: instances whose own checks
// passed, and instances held back (a finding; or all of the round's when any failed).
struct EarlyDecision {
  std::string destination;
  bool opt_in = false;
  std::vector<std::int64_t> cleared, held;
};

// What record_early committed: instances cleared to go now and held back, and the destinations
// for which the study was held back for the first time (consent, a finding).
struct EarlyOutcome {
  int cleared = 0, held = 0;
  std::vector<std::string> newly_blocked;
};

// require_report: studies held for their report that may go now (released to STABLE, so policy
// judges them again with the report), and when the next one's wait ends (0: none waiting).
struct ReportHoldRelease {
  int released = 0;
  std::int64_t next_at = 0;
};

}  // namespace dirgw::catalog

namespace dirgw::catalog {

// Verification and retention at a glance (issue 15), for dirgw status and the metrics.
struct VerificationCounts {
  struct Destination {
    std::string name;
    std::int64_t verified = 0;  // deliveries verified
    std::int64_t awaiting = 0;  // acknowledged ('sent'), not verified yet
    std::int64_t resent = 0;    // deliveries sent again after verification found them missing
    std::int64_t lost = 0;      // failed by verification (lost too often, or another SOP Class)
    std::int64_t failing_studies = 0;  // studies whose last check could not run
    std::string last_check_error;      // one of their reasons
  };
  std::vector<Destination> destinations;
  std::int64_t purged_objects = 0, purged_bytes = 0;
  std::int64_t verified_kept_objects = 0, verified_kept_bytes = 0;  // verified, file still held
};

}  // namespace dirgw::catalog
