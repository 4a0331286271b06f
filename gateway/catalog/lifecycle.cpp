#include "catalog/lifecycle.h"

namespace dirgw::catalog {

std::string_view to_string(StudyState s) {
  switch (s) {
    case StudyState::kReceiving:
      return "RECEIVING";
    case StudyState::kStable:
      return "STABLE";
    case StudyState::kReady:
      return "READY";
    case StudyState::kSending:
      return "SENDING";
    case StudyState::kSent:
      return "SENT";
    case StudyState::kRetryWait:
      return "RETRY_WAIT";
    case StudyState::kFailed:
      return "FAILED";
    case StudyState::kHeld:
      return "HELD";
    case StudyState::kQuarantined:
      return "QUARANTINED";
    case StudyState::kWithdrawn:
      return "WITHDRAWN";
    case StudyState::kVerified:
      return "VERIFIED";
    case StudyState::kPurged:
      return "PURGED";
  }
  return "?";
}

std::optional<StudyState> parse_study_state(std::string_view s) {
  for (auto st : kAllStudyStates)
    if (to_string(st) == s) return st;
  return std::nullopt;
}

bool sendable(StudyState s) {
  return s == StudyState::kReady || s == StudyState::kSending || s == StudyState::kRetryWait;
}

std::optional<StudyState> on_new_instance(StudyState current) {
  switch (current) {
    case StudyState::kHeld:
    case StudyState::kWithdrawn:
    case StudyState::kReceiving:
      return std::nullopt;
    // A late instance of a quarantined study is validated too: the study waits for stable age
    // again and policy judges every instance (issue 17; a conflict stays, policy reads it).
    case StudyState::kQuarantined:
      return StudyState::kReceiving;
    default:
      return StudyState::kReceiving;
  }
}

bool transition_allowed(StudyState from, StudyState to, Cause cause) {
  using S = StudyState;
  using C = Cause;
  // Withdrawal of consent stops anything not yet sent, whatever it is doing.
  if (to == S::kWithdrawn)
    return cause == C::kConsentWithdrawn &&
           (from == S::kReceiving || from == S::kStable || from == S::kReady ||
            from == S::kSending || from == S::kRetryWait || from == S::kFailed ||
            from == S::kHeld || from == S::kQuarantined);
  if (to == S::kReceiving) {
    if (cause == C::kNewInstance) return on_new_instance(from) == S::kReceiving;
    // Releasing a held study whose instances are still arriving.
    return cause == C::kOperator && from == S::kHeld;
  }
  switch (from) {
    case S::kReceiving:
      return (to == S::kStable && cause == C::kStableAge) ||
             (to == S::kHeld && cause == C::kOperator);
    case S::kStable:
      return (cause == C::kPolicy &&
              (to == S::kReady || to == S::kHeld || to == S::kQuarantined)) ||
             (to == S::kHeld && cause == C::kOperator);
    case S::kReady:
      return (to == S::kSending && cause == C::kSendStarted) ||
             (to == S::kHeld && (cause == C::kOperator || cause == C::kPolicy));
    case S::kSending:
      return (cause == C::kSendOutcome &&
              (to == S::kSent || to == S::kRetryWait || to == S::kFailed || to == S::kSending)) ||
             (to == S::kHeld && (cause == C::kOperator || cause == C::kPolicy));
    case S::kRetryWait:
      return (to == S::kSending && cause == C::kSendStarted) ||
             (to == S::kFailed && cause == C::kSendOutcome) ||
             (to == S::kReady && cause == C::kOperator) ||
             (to == S::kHeld && (cause == C::kOperator || cause == C::kPolicy));
    case S::kFailed:
      // Taken but never confirmed by the repository (issue 17, item 10): held for a person.
      return (to == S::kReady && cause == C::kOperator) ||
             (to == S::kHeld && cause == C::kOperator) ||
             (to == S::kQuarantined && (cause == C::kSendOutcome || cause == C::kVerified));
    case S::kHeld:
      // Policy judges a study again (STABLE) when what held it ends: its report came, or the
      // wait for it did (require_report).
      return (to == S::kReady && (cause == C::kOperator || cause == C::kPolicy)) ||
             (to == S::kQuarantined && cause == C::kPolicy) ||
             (to == S::kStable && cause == C::kPolicy);
    case S::kQuarantined:
      // Release re-runs policy from STABLE.
      return to == S::kStable && cause == C::kOperator;
    case S::kSent:
      // Verification: all listed (VERIFIED), some missing and sent again (READY), or lost too
      // often / listed as something else (FAILED).
      return cause == C::kVerified && (to == S::kVerified || to == S::kReady || to == S::kFailed);
    case S::kVerified:
      return to == S::kPurged && cause == C::kRetention;
    case S::kWithdrawn:
    case S::kPurged:
      return false;
  }
  return false;
}

}  // namespace dirgw::catalog
