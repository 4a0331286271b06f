// The catalog: SQLite (WAL) as the system of record for objects, studies, instances and their
// delivery per destination. This is the only module with SQL in it. Every state change is one
// transaction. Thread-safe: one connection, serialised by an internal mutex.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "audit/audit.h"
#include "catalog/lifecycle.h"
#include "catalog/send_gate.h"
#include "common/clock.h"
#include "common/result.h"

namespace dirgw::catalog {

namespace sqlite {
class Connection;
}

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
};

enum class RecordKind { kNew, kDuplicate, kNewVersion };

// What to do with an SOP instance received again with different bytes.
enum class NewVersionPolicy { kSend, kHold };
struct RecordOutcome {
  RecordKind kind;
  std::int64_t instance_id = 0;
};

struct DueItem {
  std::int64_t instance_id = 0;
  std::int64_t study_id = 0;
  std::string study_uid, sop_instance_uid, sop_class_uid, sha256;
  std::uint64_t size = 0;
  int attempts = 0;
  std::int64_t received_at = 0;
  std::int64_t first_failure_at = 0;  // 0: has not failed yet
  bool derived = false;               // sha256/size are of a derived (coerced) object
};

enum class DeliveryResult { kDelivered, kRetry, kRefused };
struct DeliveryUpdate {
  std::int64_t instance_id = 0;
  DeliveryResult result = DeliveryResult::kRetry;
  std::string error;  // our words, never patient data
  std::int64_t next_attempt_at = 0;
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
  std::int64_t pending_bytes = 0;
  std::int64_t oldest_pending_at = 0;
  std::int64_t last_success_at = 0;
  std::int64_t last_error_at = 0;
  std::string last_error;
};

struct Refusal {
  std::int64_t at = 0;
  std::string source, calling_ae, peer, reason;
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
  std::vector<std::pair<std::string, std::string>> destination_states;  // name, state
};

struct DeliveryDetail {
  std::string destination, state, last_error;
  int attempts = 0, round = 1;
  std::int64_t next_attempt_at = 0, sent_at = 0;
};

struct InstanceDetail {
  std::string sop_instance_uid, sop_class_uid, series_uid, modality, transfer_syntax, sha256, flags,
      calling_ae;
  std::int64_t size = 0, received_at = 0;
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

// What the policy stage decided for one study and one destination. READY is a proposal that
// consent still decides: record_policy reads the consent registry in the same transaction that
// commits the decision, so a withdrawal is seen either by the decision or the decision by it.
struct PolicyDecision {
  std::string destination;
  StudyState state = StudyState::kReady;  // READY, HELD, QUARANTINED or WITHDRAWN
  std::string reason;
  bool opt_in = false;  // READY needs a recorded grant (else HELD "no consent recorded")
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
  };
  std::vector<Instance> instances;
};

class Catalog {
 public:
  // Opens (creating if needed) and migrates the catalog; WAL, synchronous=FULL.
  static Result<std::unique_ptr<Catalog>> open(const std::filesystem::path& path,
                                               std::vector<std::string> destinations,
                                               const Clock& clock);
  ~Catalog();
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;

  int schema_version();

  // Ingest: records an object and its instance in one transaction. An SOP instance already
  // held with identical bytes is a duplicate: nothing new is recorded or sent.
  Result<RecordOutcome> record_instance(const NewInstance& instance,
                                        NewVersionPolicy new_versions = NewVersionPolicy::kSend);
  Result<void> record_refusal(const Refusal& refusal);

  // Readiness: studies with no new instance since `cutoff` become STABLE and, while there is
  // no policy stage, READY for every destination. Returns how many studies moved.
  Result<int> promote_stable(std::int64_t cutoff_ms);
  // Earliest last_received_at of a RECEIVING study, if any: when the next promotion is due.
  Result<std::optional<std::int64_t>> oldest_receiving();

  // Scheduler: pending deliveries of READY/SENDING/RETRY_WAIT studies due at `now`, one study
  // at a time, within the batch limits.
  Result<std::vector<DueItem>> due_deliveries(const std::string& destination, std::int64_t now_ms,
                                              int max_count, std::uint64_t max_bytes);
  // Earliest next_attempt_at among pending deliveries of sendable studies.
  Result<std::optional<std::int64_t>> next_due(const std::string& destination);
  // The last check before a request, atomic with marking the batch in flight: keeps the items
  // whose study may still be sent, moves their deliveries to 'sending' and their studies to
  // SENDING. The returned permit holds the send gate; release it once the request has left.
  Result<SendBatch> begin_send(const std::string& destination, std::vector<DueItem> due);
  // The repository's answers for a batch begun with begin_send (or, after a lost outcome,
  // recorded again). An answer that arrives for a study withdrawn meanwhile is still recorded as
  // it is: accepted instances are 'sent' (the repository holds them), the rest 'withdrawn'.
  Result<void> record_deliveries(const std::string& destination,
                                 const std::vector<DeliveryUpdate>& updates);
  Result<void> record_destination_error(const std::string& destination, const std::string& error);

  Result<Status> status();
  Result<std::vector<StudySummary>> studies(const std::string& state_filter, int limit,
                                            const std::string& destination_filter = "");
  Result<std::optional<StudyDetail>> study(const std::string& study_uid);

  // Operator actions (dirgw retry / hold / release), checked against the life cycle.
  // destination empty: every destination.
  Result<ActionResult> retry(const std::string& study_uid, const std::string& destination);
  Result<ActionResult> retry_all_failed(const std::string& destination);
  Result<ActionResult> hold(const std::string& study_uid, const std::string& destination,
                            const std::string& reason);
  Result<ActionResult> release(const std::string& study_uid, const std::string& destination);

  // Start-up reconciliation of spool and catalog.
  Result<bool> has_object(const std::string& sha256);
  Result<std::vector<std::string>> object_hashes();
  // Pending deliveries of instances whose object is missing become failed, with the reason.
  Result<int> flag_missing_object(const std::string& sha256);
  Result<void> record_reconciliation(const Reconciliation& r);
  // At start: deliveries left 'sending' by a stop mid-request go back to 'pending' (or to
  // 'withdrawn', marked in doubt, when their study was withdrawn); waiting withdrawal
  // notifications are written out. Returns how many deliveries were in flight.
  Result<int> recover_interrupted_sends();

  // Audit trail: append one entry (sealed onto the chain in its own transaction); stream the
  // trail through a verifier; read entries since a time; the newest (seq, hash).
  Result<void> audit(audit::Event event);
  Result<audit::VerifyResult> verify_audit(const std::optional<audit::Anchor>& anchor);
  Result<std::vector<audit::Event>> audit_since(std::int64_t since_ms, int limit);
  Result<std::vector<audit::Event>> audit_after(std::int64_t after_seq, int limit);
  Result<audit::Anchor> audit_head();

  SendGate& send_gate_for_test() { return send_gate_; }

  // Policy stage: studies with a destination row in STABLE, and the outcome for them.
  Result<std::vector<PolicyWork>> policy_work(int limit);
  // Returns the decisions as committed (READY proposals resolved against consent).
  Result<std::vector<PolicyDecision>> record_policy(
      std::int64_t study_id, const std::vector<PatientKey>& identifiers,
      const std::vector<Finding>& findings, const std::vector<PolicyDecision>& decisions,
      const std::vector<std::tuple<std::int64_t, std::string, std::string, std::uint64_t>>&
          derived);
  Result<std::vector<Finding>> findings(const std::string& study_uid);

  // Consent registry: every change kept; withdrawal stops the patient's unsent studies at once.
  // A withdrawal first waits at the send gate for requests already past their last check, so
  // that when it returns no request carrying the patient's instances can start.
  Result<ConsentEffect> record_consent(const ConsentChange& change);
  Result<ConsentState> consent_for(const std::vector<PatientKey>& identifiers,
                                   const std::string& destination);
  Result<std::optional<PatientConsent>> patient_consent(const PatientKey& key);

  // Withdrawal notifications (outbox): due ones for a destination, and their outcome.
  Result<std::vector<Notification>> due_notifications(const std::string& destination,
                                                      std::int64_t now_ms);
  Result<void> record_notification(std::int64_t id, bool sent, const std::string& error,
                                   std::int64_t next_attempt_at);
  Result<std::optional<std::int64_t>> next_notification(const std::string& destination);

  // MRN -> health number table (coercion).
  Result<void> put_mrn_health_number(const std::string& mrn_issuer, const std::string& mrn,
                                     const std::string& health_number, const std::string& source);
  Result<std::optional<std::string>> health_number_for(const std::string& mrn_issuer,
                                                       const std::string& mrn);

  // Quarantine: list, release (re-run policy from STABLE), delete (drop the study's rows).
  Result<std::vector<StudySummary>> quarantined(int limit);
  Result<ActionResult> release_quarantine(const std::string& study_uid);
  Result<ActionResult> delete_quarantined(const std::string& study_uid,
                                          std::vector<std::string>* objects_to_remove);
  // The object a destination should receive for an instance: derived if there is one.
  Result<std::optional<std::pair<std::string, std::uint64_t>>> derived_object(
      std::int64_t instance_id, const std::string& destination);

 private:
  Catalog(std::unique_ptr<sqlite::Connection> db, std::vector<std::string> destinations,
          const Clock& clock);
  // Returns the state the row moved to, if it moved.
  std::optional<StudyState> refresh_study_state(std::int64_t study_id,
                                                const std::string& destination);
  // Audit entries matching `where` (a condition on ?1 = bound), oldest first.
  Result<std::vector<audit::Event>> read_audit(const char* where, std::int64_t bound, int limit);
  // Inside an open transaction: notifications of `destination` waiting for answers that are
  // now all known get their body (every instance the destination may hold) and become due.
  void finish_waiting_notifications(const std::string& destination);
  // Inside an open transaction: an instance of a withdrawn study turned out to be held by the
  // destination after its notification went out: another notification follows.
  void queue_late_notification(std::int64_t study_id, const std::string& destination,
                               std::int64_t now);
  // Inside an open transaction: the withdrawal notification body for a patient's studies.
  std::string notification_body(std::int64_t patient_id, const std::string& destination,
                                std::int64_t at);
  // Inside an open transaction: WITHDRAWN, and its pending deliveries never sent.
  bool withdraw(std::int64_t study_id, const std::string& destination, const std::string& reason);
  // Inside an open transaction: seals `e` onto the chain and inserts it.
  void append_audit(audit::Event e);
  // Moves one study/destination row if the life cycle allows it; false when it does not.
  bool transition(std::int64_t study_id, const std::string& destination, StudyState to, Cause cause,
                  const std::string& reason);
  Result<ActionResult> operator_action(const std::string& study_uid, const std::string& destination,
                                       StudyState to, const std::string& reason);

  SendGate send_gate_;  // taken before mutex_, never after
  std::mutex mutex_;
  std::unique_ptr<sqlite::Connection> db_;
  std::vector<std::string> destinations_;
  const Clock& clock_;
};

}  // namespace dirgw::catalog
