// The study life cycle, per study per destination (docs/lifecycle.md):
//
//   RECEIVING -(stable_age)-> STABLE -(policy)-> READY -> SENDING -> SENT -> VERIFIED -> PURGED
//                                                           (verification: missing -> READY)
//                                      |-> HELD          |-> RETRY_WAIT -> SENDING
//                                      '-> QUARANTINED   '-> FAILED
//   any state before SENT -(consent withdrawn)-> WITHDRAWN
//   a new instance for a study past RECEIVING opens a delta: back to RECEIVING, only the new
//   instances go (except HELD, QUARANTINED and WITHDRAWN, which only people or policy end).
//
// The table of allowed transitions lives here, pure, so that every change the catalog makes is
// checked against it and every refusal is a clear error, not a silent no-op.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace dirgw::catalog {

enum class StudyState {
  kReceiving,
  kStable,
  kReady,
  kSending,
  kSent,
  kRetryWait,
  kFailed,
  kHeld,
  kQuarantined,
  kWithdrawn,
  kVerified,
  kPurged,
};

inline constexpr StudyState kAllStudyStates[] = {
    StudyState::kReceiving,   StudyState::kStable,    StudyState::kReady,    StudyState::kSending,
    StudyState::kSent,        StudyState::kRetryWait, StudyState::kFailed,   StudyState::kHeld,
    StudyState::kQuarantined, StudyState::kWithdrawn, StudyState::kVerified, StudyState::kPurged};

std::string_view to_string(StudyState s);
std::optional<StudyState> parse_study_state(std::string_view s);

// Why a study changes state; the same pair of states can be allowed for one cause and refused
// for another (an operator may release a HELD study; a new instance may not).
enum class Cause {
  kNewInstance,  // an instance arrived
  kStableAge,    // no instance for stable_age
  kPolicy,       // consent / validation decided
  kSendStarted,  // the forwarder picked it up
  kSendOutcome,  // the repository answered (or did not)
  kOperator,     // dirgw hold / release / retry
  kConsentWithdrawn,
  kVerified,  // the verifier's outcome: listed by the repository, missing, or lost too often
  kRetention,
};

bool transition_allowed(StudyState from, StudyState to, Cause cause);

// For a new instance: the state the study moves to, or nullopt when it keeps its state.
std::optional<StudyState> on_new_instance(StudyState current);

// States in which pending deliveries may be sent.
bool sendable(StudyState s);

}  // namespace dirgw::catalog
