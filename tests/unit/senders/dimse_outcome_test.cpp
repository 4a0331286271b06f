#include "senders/dimse/outcome.h"

#include <gtest/gtest.h>

namespace dirgw::senders::dimse {
namespace {

using S = InstanceStatus;

TEST(DimseStoreStatus, SuccessHasNoReason) {
  auto v = classify_store_status(0x0000);
  EXPECT_EQ(v.status, S::kAccepted);
  EXPECT_EQ(v.reason, "");
}

TEST(DimseStoreStatus, WarningsAreAcceptedAndKeepTheirText) {
  struct Case {
    std::uint16_t code;
    const char* text;
  } cases[] = {
      {0xB000, "DIMSE status 0xB000 (warning: coercion of data elements)"},
      {0xB006, "DIMSE status 0xB006 (warning: elements discarded)"},
      {0xB007, "DIMSE status 0xB007 (warning: data set does not match SOP class)"},
      {0x0001, "DIMSE status 0x0001 (warning: requested optional attributes not supported)"},
      {0xB123, "DIMSE status 0xB123 (warning)"},
  };
  for (const auto& c : cases) {
    auto v = classify_store_status(c.code);
    EXPECT_EQ(v.status, S::kAccepted) << c.text;
    EXPECT_EQ(v.reason, c.text);
  }
}

TEST(DimseStoreStatus, OutOfResourcesIsRetried) {
  for (std::uint16_t code : {0xA700, 0xA701, 0xA7FF}) {
    auto v = classify_store_status(code);
    EXPECT_EQ(v.status, S::kRetry) << code;
    EXPECT_NE(v.reason.find("out of resources"), std::string::npos);
  }
  EXPECT_EQ(classify_store_status(0xA700).reason, "DIMSE status 0xA700 (out of resources)");
}

TEST(DimseStoreStatus, RefusalsArePermanentWithTheCode) {
  auto v = classify_store_status(0xA900);
  EXPECT_EQ(v.status, S::kPermanent);
  EXPECT_EQ(v.reason, "DIMSE status 0xA900 (data set does not match SOP class)");
  v = classify_store_status(0xC000);
  EXPECT_EQ(v.status, S::kPermanent);
  EXPECT_EQ(v.reason, "DIMSE status 0xC000 (cannot understand)");
  EXPECT_EQ(classify_store_status(0xC123).status, S::kPermanent);
  EXPECT_EQ(classify_store_status(0xA9FF).status, S::kPermanent);
  EXPECT_EQ(classify_store_status(0x0122).status, S::kPermanent);  // SOP class not supported
  EXPECT_EQ(classify_store_status(0x0124).status, S::kPermanent);  // not authorized
}

TEST(DimseStoreStatus, TransientGeneralFailuresAndCancelAreRetried) {
  EXPECT_EQ(classify_store_status(0x0110).status, S::kRetry);  // processing failure
  EXPECT_EQ(classify_store_status(0x0213).status, S::kRetry);  // resource limitation
  EXPECT_EQ(classify_store_status(0xFE00).status, S::kRetry);  // cancel
  EXPECT_EQ(classify_store_status(0x1234).status, S::kRetry);  // unknown: bounded by give-up
}

TEST(DimseStoreStatus, DuplicateIsAccepted) {
  EXPECT_EQ(classify_store_status(0x0111).status, S::kAccepted);
}

TEST(DimseReject, CalledAeNotRecognisedIsPermanentAndSaysWhatToFix) {
  auto v = classify_reject({1, 1, 7}, "PACS", "DIRGW");
  EXPECT_EQ(v.status, S::kPermanent);
  EXPECT_NE(v.reason.find("called AE title not recognised"), std::string::npos) << v.reason;
  EXPECT_NE(v.reason.find("'PACS'"), std::string::npos);
  EXPECT_NE(v.reason.find("nothing was sent"), std::string::npos);
  // A transient result does not make a configuration problem go away.
  EXPECT_EQ(classify_reject({2, 1, 7}, "PACS", "DIRGW").status, S::kPermanent);
}

TEST(DimseReject, CallingAeNotRecognisedIsPermanent) {
  auto v = classify_reject({1, 1, 3}, "PACS", "DIRGW");
  EXPECT_EQ(v.status, S::kPermanent);
  EXPECT_NE(v.reason.find("'DIRGW'"), std::string::npos);
}

TEST(DimseReject, ApplicationContextAndProtocolVersionArePermanent) {
  EXPECT_EQ(classify_reject({1, 1, 2}, "A", "B").status, S::kPermanent);
  EXPECT_EQ(classify_reject({1, 2, 2}, "A", "B").status, S::kPermanent);
}

TEST(DimseReject, NoReasonCongestionAndLocalLimitAreTransient) {
  auto v = classify_reject({1, 1, 1}, "A", "B");
  EXPECT_EQ(v.status, S::kRetry);
  EXPECT_NE(v.reason.find("no reason given"), std::string::npos);
  EXPECT_EQ(classify_reject({1, 2, 1}, "A", "B").status, S::kRetry);
  v = classify_reject({2, 3, 1}, "A", "B");
  EXPECT_EQ(v.status, S::kRetry);
  EXPECT_NE(v.reason.find("temporary congestion"), std::string::npos);
  v = classify_reject({2, 3, 2}, "A", "B");
  EXPECT_EQ(v.status, S::kRetry);
  EXPECT_EQ(v.reason,
            "association rejected (transient, service provider, presentation): local limit "
            "exceeded; nothing was sent");
}

TEST(DimseReject, UnknownReasonsFollowTheResultField) {
  EXPECT_EQ(classify_reject({1, 1, 5}, "A", "B").status, S::kPermanent);
  EXPECT_EQ(classify_reject({2, 1, 5}, "A", "B").status, S::kRetry);
  EXPECT_EQ(classify_reject({2, 9, 9}, "A", "B").status, S::kRetry);
}

TEST(DimseStatusText, Hex) {
  EXPECT_EQ(hex_status(0xA700), "0xA700");
  EXPECT_EQ(hex_status(0x0001), "0x0001");
}

}  // namespace
}  // namespace dirgw::senders::dimse
