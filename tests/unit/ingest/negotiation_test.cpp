#include "ingest/dimse_scp/negotiation.h"

#include <gtest/gtest.h>

#include "config/config.h"

namespace dirgw::ingest {
namespace {

constexpr const char* kExplicitLE = "1.2.840.10008.1.2.1";
constexpr const char* kImplicitLE = "1.2.840.10008.1.2";
constexpr const char* kBigEndian = "1.2.840.10008.1.2.2";
constexpr const char* kDeflate = "1.2.840.10008.1.2.1.99";
constexpr const char* kJpegBaseline = "1.2.840.10008.1.2.4.50";
constexpr const char* kJpegLossless = "1.2.840.10008.1.2.4.70";
constexpr const char* kJpegLs = "1.2.840.10008.1.2.4.80";
constexpr const char* kJ2k = "1.2.840.10008.1.2.4.90";
constexpr const char* kRle = "1.2.840.10008.1.2.5";
constexpr const char* kCt = "1.2.840.10008.5.1.4.1.1.2";
constexpr const char* kColorPalette = "1.2.840.10008.5.1.4.39.1";

NegotiationRules defaults() {
  NegotiationRules r;
  r.storage_transfer_syntaxes = config::default_storage_transfer_syntaxes();
  return r;
}

TEST(Negotiation, TheSendersFirstOfferedSyntaxWinsEvenWhenCompressed) {
  for (const char* ts : {kJpegBaseline, kJpegLossless, kJpegLs, kJ2k, kRle, kDeflate}) {
    auto d = negotiate({{1, kCt, {ts, kExplicitLE, kImplicitLE}}}, defaults());
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].result, ContextResult::kAccepted);
    EXPECT_EQ(d[0].transfer_syntax, ts);
    EXPECT_EQ(d[0].id, 1);
  }
  // And the sender's order, not ours, among uncompressed ones too.
  auto d = negotiate({{3, kCt, {kImplicitLE, kExplicitLE}}}, defaults());
  EXPECT_EQ(d[0].transfer_syntax, kImplicitLE);
}

TEST(Negotiation, ASyntaxNotOfferedIsSkippedForTheSendersNext) {
  NegotiationRules r = defaults();
  r.storage_transfer_syntaxes = {kExplicitLE, kImplicitLE};
  auto d = negotiate({{1, kCt, {kJpegBaseline, kImplicitLE}}}, r);
  EXPECT_EQ(d[0].transfer_syntax, kImplicitLE);
  auto none = negotiate({{1, kCt, {kJpegBaseline}}}, r);
  EXPECT_EQ(none[0].result, ContextResult::kTransferSyntaxesNotSupported);
  EXPECT_EQ(describe(none[0].result), "no proposed transfer syntax is offered");
}

TEST(Negotiation, BigEndianIsNotOfferedByDefault) {
  auto d = negotiate({{1, kCt, {kBigEndian}}, {3, kCt, {kBigEndian, kExplicitLE}}}, defaults());
  EXPECT_EQ(d[0].result, ContextResult::kTransferSyntaxesNotSupported);
  EXPECT_EQ(d[1].transfer_syntax, kExplicitLE);
  NegotiationRules r = defaults();
  r.storage_transfer_syntaxes.push_back(kBigEndian);
  EXPECT_EQ(negotiate({{1, kCt, {kBigEndian}}}, r)[0].transfer_syntax, kBigEndian);
}

TEST(Negotiation, StorageClassesBeyondTheDictionaryAreAccepted) {
  NegotiationRules r = defaults();
  EXPECT_TRUE(is_storage_class(kColorPalette, r));
  EXPECT_TRUE(is_storage_class("1.2.840.10008.5.1.4.1.1.999.1", r));  // a future family member
  EXPECT_FALSE(is_storage_class("1.2.840.10008.5.1.4.1.2.1.1", r));   // Q/R FIND: not storage
  EXPECT_FALSE(is_storage_class("1.2.3.4.5", r));
  EXPECT_FALSE(is_storage_class("1.2.840.10008.5.1.4.1.1.x", r));
  r.extra_sop_classes.insert("1.2.3.4.5");
  EXPECT_TRUE(is_storage_class("1.2.3.4.5", r));
  r.known_storage_classes.insert("1.2.840.10008.5.1.4.34.5");
  EXPECT_TRUE(is_storage_class("1.2.840.10008.5.1.4.34.5", r));
}

TEST(Negotiation, EveryContextGetsADecisionWithItsReason) {
  auto d = negotiate({{1, "1.2.840.10008.1.1", {kJpegBaseline, kImplicitLE}},
                      {3, kColorPalette, {kExplicitLE}},
                      {5, "1.2.840.10008.5.1.4.1.2.2.1", {kExplicitLE}},
                      {7, "1.2.840.10008.1.1", {kJpegBaseline}}},
                     defaults());
  ASSERT_EQ(d.size(), 4u);
  EXPECT_EQ(d[0].transfer_syntax, kImplicitLE);  // verification: native syntaxes only
  EXPECT_EQ(d[1].result, ContextResult::kAccepted);
  EXPECT_EQ(d[2].result, ContextResult::kAbstractSyntaxNotSupported);
  EXPECT_EQ(d[2].id, 5);
  EXPECT_EQ(d[3].result, ContextResult::kTransferSyntaxesNotSupported);
}

}  // namespace
}  // namespace dirgw::ingest
