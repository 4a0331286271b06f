#include "catalog/lifecycle.h"

#include <gtest/gtest.h>

#include <set>
#include <tuple>

namespace dirgw::catalog {
namespace {

using S = StudyState;
using C = Cause;

constexpr Cause kAllCauses[] = {C::kNewInstance,      C::kStableAge,   C::kPolicy,
                                C::kSendStarted,      C::kSendOutcome, C::kOperator,
                                C::kConsentWithdrawn, C::kVerified,    C::kRetention};

// Every allowed (from, to, cause); everything else must be refused.
const std::set<std::tuple<S, S, C>>& allowed() {
  static const std::set<std::tuple<S, S, C>> kAllowed = {
      {S::kReceiving, S::kStable, C::kStableAge},
      {S::kReceiving, S::kHeld, C::kOperator},
      {S::kReceiving, S::kWithdrawn, C::kConsentWithdrawn},
      {S::kStable, S::kReady, C::kPolicy},
      {S::kStable, S::kHeld, C::kPolicy},
      {S::kStable, S::kHeld, C::kOperator},
      {S::kStable, S::kQuarantined, C::kPolicy},
      {S::kStable, S::kReceiving, C::kNewInstance},
      {S::kStable, S::kWithdrawn, C::kConsentWithdrawn},
      {S::kReady, S::kSending, C::kSendStarted},
      {S::kReady, S::kHeld, C::kOperator},
      {S::kReady, S::kHeld, C::kPolicy},
      {S::kReady, S::kReceiving, C::kNewInstance},
      {S::kReady, S::kWithdrawn, C::kConsentWithdrawn},
      {S::kSending, S::kSent, C::kSendOutcome},
      {S::kSending, S::kRetryWait, C::kSendOutcome},
      {S::kSending, S::kFailed, C::kSendOutcome},
      {S::kSending, S::kSending, C::kSendOutcome},
      {S::kSending, S::kHeld, C::kOperator},
      {S::kSending, S::kHeld, C::kPolicy},
      {S::kSending, S::kReceiving, C::kNewInstance},
      {S::kSending, S::kWithdrawn, C::kConsentWithdrawn},
      {S::kRetryWait, S::kSending, C::kSendStarted},
      {S::kRetryWait, S::kFailed, C::kSendOutcome},
      {S::kRetryWait, S::kReady, C::kOperator},
      {S::kRetryWait, S::kHeld, C::kOperator},
      {S::kRetryWait, S::kHeld, C::kPolicy},
      {S::kRetryWait, S::kReceiving, C::kNewInstance},
      {S::kRetryWait, S::kWithdrawn, C::kConsentWithdrawn},
      {S::kFailed, S::kReady, C::kOperator},
      {S::kFailed, S::kHeld, C::kOperator},
      {S::kFailed, S::kReceiving, C::kNewInstance},
      {S::kFailed, S::kWithdrawn, C::kConsentWithdrawn},
      {S::kFailed, S::kQuarantined, C::kSendOutcome},
      {S::kFailed, S::kQuarantined, C::kVerified},
      {S::kHeld, S::kReady, C::kOperator},
      {S::kHeld, S::kReady, C::kPolicy},
      {S::kHeld, S::kReceiving, C::kOperator},
      {S::kHeld, S::kQuarantined, C::kPolicy},
      {S::kHeld, S::kStable, C::kPolicy},
      {S::kHeld, S::kWithdrawn, C::kConsentWithdrawn},
      {S::kQuarantined, S::kStable, C::kOperator},
      {S::kQuarantined, S::kReceiving, C::kNewInstance},
      {S::kQuarantined, S::kWithdrawn, C::kConsentWithdrawn},
      {S::kSent, S::kVerified, C::kVerified},
      {S::kSent, S::kReady, C::kVerified},
      {S::kSent, S::kFailed, C::kVerified},
      {S::kSent, S::kReceiving, C::kNewInstance},
      {S::kVerified, S::kPurged, C::kRetention},
      {S::kVerified, S::kReceiving, C::kNewInstance},
      {S::kPurged, S::kReceiving, C::kNewInstance},
  };
  return kAllowed;
}

TEST(Lifecycle, EveryTransitionIsAllowedOrRefusedExactlyAsSpecified) {
  int checked = 0;
  for (S from : kAllStudyStates)
    for (S to : kAllStudyStates)
      for (C cause : kAllCauses) {
        const bool expected = allowed().count({from, to, cause}) > 0;
        EXPECT_EQ(transition_allowed(from, to, cause), expected)
            << to_string(from) << " -> " << to_string(to) << " cause " << static_cast<int>(cause);
        ++checked;
      }
  EXPECT_EQ(checked, 12 * 12 * 9);
}

TEST(Lifecycle, NothingLeavesAfterSentExceptVerificationOrADelta) {
  for (S to : kAllStudyStates) {
    if (to == S::kReceiving) continue;
    for (C cause : kAllCauses) {
      if (cause == C::kVerified) continue;
      EXPECT_FALSE(transition_allowed(S::kSent, to, cause));
    }
    const bool by_verification = to == S::kVerified || to == S::kReady || to == S::kFailed;
    EXPECT_EQ(transition_allowed(S::kSent, to, C::kVerified), by_verification);
  }
}

TEST(Lifecycle, WithdrawalOnlyBeforeSentAndOnlyByConsent) {
  EXPECT_FALSE(transition_allowed(S::kSent, S::kWithdrawn, C::kConsentWithdrawn));
  EXPECT_FALSE(transition_allowed(S::kVerified, S::kWithdrawn, C::kConsentWithdrawn));
  EXPECT_FALSE(transition_allowed(S::kReady, S::kWithdrawn, C::kOperator));
  EXPECT_TRUE(transition_allowed(S::kSending, S::kWithdrawn, C::kConsentWithdrawn));
  // Terminal.
  for (S to : kAllStudyStates)
    for (C cause : kAllCauses) EXPECT_FALSE(transition_allowed(S::kWithdrawn, to, cause));
}

TEST(Lifecycle, NewInstanceOpensDeltaExceptForHeldWithdrawn) {
  EXPECT_EQ(on_new_instance(S::kSent), S::kReceiving);
  EXPECT_EQ(on_new_instance(S::kSending), S::kReceiving);
  EXPECT_EQ(on_new_instance(S::kFailed), S::kReceiving);
  EXPECT_FALSE(on_new_instance(S::kReceiving).has_value());
  EXPECT_FALSE(on_new_instance(S::kHeld).has_value());
  // A quarantined study's late instance is validated too: policy runs again over the study.
  EXPECT_EQ(on_new_instance(S::kQuarantined), S::kReceiving);
  EXPECT_FALSE(on_new_instance(S::kWithdrawn).has_value());
}

TEST(Lifecycle, OnlyReadySendingAndRetryWaitAreSendable) {
  std::set<S> sendable_states;
  for (S s : kAllStudyStates)
    if (sendable(s)) sendable_states.insert(s);
  EXPECT_EQ(sendable_states, (std::set<S>{S::kReady, S::kSending, S::kRetryWait}));
}

TEST(Lifecycle, NamesRoundTrip) {
  for (S s : kAllStudyStates) EXPECT_EQ(parse_study_state(to_string(s)), s);
  EXPECT_FALSE(parse_study_state("sent").has_value());
}

}  // namespace
}  // namespace dirgw::catalog
