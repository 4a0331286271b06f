#include "senders/dimse/plan.h"

#include <gtest/gtest.h>

#include <set>

namespace dirgw::senders::dimse {
namespace {

constexpr const char* kCt = "1.2.840.10008.5.1.4.1.1.2";
constexpr const char* kMr = "1.2.840.10008.5.1.4.1.1.4";
constexpr const char* kJpegLs = "1.2.840.10008.1.2.4.80";
constexpr const char* kRle = "1.2.840.10008.1.2.5";
const std::string kEle(kExplicitVrLittleEndian);
const std::string kIle(kImplicitVrLittleEndian);

std::vector<std::pair<std::string, std::string>> pairs(const AssociationRound& r) {
  std::vector<std::pair<std::string, std::string>> v;
  for (const auto& c : r.contexts) v.emplace_back(c.abstract_syntax, c.transfer_syntax);
  return v;
}

std::vector<NegotiatedContext> answer(const AssociationRound& r,
                                      const std::set<std::pair<std::string, std::string>>& ok) {
  std::vector<NegotiatedContext> v;
  for (const auto& c : r.contexts)
    v.push_back({c.id, c.abstract_syntax, c.transfer_syntax,
                 ok.count({c.abstract_syntax, c.transfer_syntax}) > 0});
  return v;
}

TEST(DimsePlan, NativeObjectProposesItsOwnSyntaxThenExplicitThenImplicit) {
  auto rounds = plan_rounds({{kCt, kIle}});
  ASSERT_EQ(rounds.size(), 1u);
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(pairs(rounds[0]), (std::vector<P>{{kCt, kIle}, {kCt, kEle}}));
  EXPECT_EQ(rounds[0].items, (std::vector<std::size_t>{0}));
}

TEST(DimsePlan, ExplicitObjectDoesNotProposeExplicitTwice) {
  auto rounds = plan_rounds({{kCt, kEle}, {kCt, kEle}});
  ASSERT_EQ(rounds.size(), 1u);
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(pairs(rounds[0]), (std::vector<P>{{kCt, kEle}, {kCt, kIle}}));
  EXPECT_EQ(rounds[0].items, (std::vector<std::size_t>{0, 1}));
}

TEST(DimsePlan, EncapsulatedOnlyClassGetsNoFallbacks) {
  auto rounds = plan_rounds({{kMr, kJpegLs}, {kCt, kEle}});
  ASSERT_EQ(rounds.size(), 1u);
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(pairs(rounds[0]), (std::vector<P>{{kMr, kJpegLs}, {kCt, kEle}, {kCt, kIle}}));
}

TEST(DimsePlan, MixedClassProposesEveryStoredSyntaxThenFallbacks) {
  auto rounds = plan_rounds({{kCt, kRle},
                             {kCt, std::string(kDeflatedExplicitVrLittleEndian)},
                             {kCt, kJpegLs},
                             {kCt, kRle}});
  ASSERT_EQ(rounds.size(), 1u);
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(pairs(rounds[0]), (std::vector<P>{{kCt, kRle},
                                              {kCt, std::string(kDeflatedExplicitVrLittleEndian)},
                                              {kCt, kJpegLs},
                                              {kCt, kEle},
                                              {kCt, kIle}}));
}

TEST(DimsePlan, ContextIdsAreOddAndDistinct) {
  auto rounds = plan_rounds({{kCt, kEle}, {kMr, kJpegLs}, {kMr, kIle}});
  ASSERT_EQ(rounds.size(), 1u);
  std::set<int> ids;
  for (const auto& c : rounds[0].contexts) {
    EXPECT_EQ(c.id % 2, 1);
    ids.insert(c.id);
  }
  EXPECT_EQ(ids.size(), rounds[0].contexts.size());
  EXPECT_EQ(rounds[0].contexts.front().id, 1);
}

TEST(DimsePlan, EmptyBatchHasNoRound) { EXPECT_TRUE(plan_rounds({}).empty()); }

TEST(DimsePlan, MoreThan128ContextsAreSplitIntoRoundsByWholeSopClass) {
  std::vector<PlanItem> items;
  for (int i = 0; i < 100; ++i) items.push_back({"1.2.3." + std::to_string(i), kIle});
  auto rounds = plan_rounds(items);  // 2 contexts per class: 200 in all
  ASSERT_EQ(rounds.size(), 2u);
  EXPECT_EQ(rounds[0].contexts.size(), 128u);
  EXPECT_EQ(rounds[1].contexts.size(), 72u);
  EXPECT_EQ(rounds[0].items.size() + rounds[1].items.size(), 100u);
  for (const auto& r : rounds) {
    EXPECT_LE(r.contexts.size(), kMaxContexts);
    EXPECT_EQ(r.contexts.back().id, 2 * r.contexts.size() - 1);
    for (std::size_t i : r.items) {
      bool found = false;
      for (const auto& c : r.contexts) found = found || c.abstract_syntax == items[i].sop_class_uid;
      EXPECT_TRUE(found) << "item " << i << " in a round without its SOP class";
    }
  }
}

TEST(DimsePlan, ExtraAbstractSyntaxesAreProposedInEveryRound) {
  const std::string commitment = "1.2.840.10008.1.20.1";
  auto rounds = plan_rounds({{kCt, kEle}}, {commitment});
  ASSERT_EQ(rounds.size(), 1u);
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(pairs(rounds[0]),
            (std::vector<P>{{kCt, kEle}, {kCt, kIle}, {commitment, kEle}, {commitment, kIle}}));
}

TEST(DimseAssign, OwnSyntaxAcceptedGoesAsIs) {
  auto r = plan_rounds({{kCt, kIle}})[0];
  auto a = assign_context({kCt, kIle}, answer(r, {{kCt, kIle}, {kCt, kEle}}));
  EXPECT_EQ(a.kind, Assignment::Kind::kAsIs);
  EXPECT_EQ(a.transfer_syntax, kIle);
  EXPECT_EQ(a.context_id, 1);
}

TEST(DimseAssign, NativeObjectFallsBackToExplicitThenImplicit) {
  const std::string deflated(kDeflatedExplicitVrLittleEndian);
  auto r = plan_rounds({{kCt, deflated}})[0];
  auto a = assign_context({kCt, deflated}, answer(r, {{kCt, kEle}, {kCt, kIle}}));
  EXPECT_EQ(a.kind, Assignment::Kind::kConvert);
  EXPECT_EQ(a.transfer_syntax, kEle);
  a = assign_context({kCt, deflated}, answer(r, {{kCt, kIle}}));
  EXPECT_EQ(a.kind, Assignment::Kind::kConvert);
  EXPECT_EQ(a.transfer_syntax, kIle);
  EXPECT_EQ(a.context_id, 5);
}

TEST(DimseAssign, BigEndianIsConvertedLosslessly) {
  const std::string be(kExplicitVrBigEndian);
  auto r = plan_rounds({{kCt, be}})[0];
  auto a = assign_context({kCt, be}, answer(r, {{kCt, kIle}}));
  EXPECT_EQ(a.kind, Assignment::Kind::kConvert);
}

TEST(DimseAssign, EncapsulatedObjectIsNotConvertedUnlessDecompressible) {
  auto r = plan_rounds({{kCt, kRle}, {kCt, kEle}})[0];
  PlanItem rle{kCt, kRle, ""};
  rle.not_decompressed = "the destination's decompress is never";
  auto a = assign_context(rle, answer(r, {{kCt, kEle}, {kCt, kIle}}));
  EXPECT_EQ(a.kind, Assignment::Kind::kRefused);
  EXPECT_NE(a.reason.find("destination does not accept transfer syntax RLE Lossless (" +
                          std::string(kRle) + ")"),
            std::string::npos)
      << a.reason;
  EXPECT_NE(a.reason.find(kCt), std::string::npos);
  EXPECT_NE(a.reason.find("(not decompressed: the destination's decompress is never)"),
            std::string::npos)
      << a.reason;
}

// A compressed object the destination refuses in its own syntax goes decompressed, when it may.
TEST(DimseAssign, DecompressibleObjectGoesDecompressed) {
  PlanItem jpeg{kCt, "1.2.840.10008.1.2.4.50", ""};
  jpeg.decompressible = true;
  // Alone in its class, it still brings the native fallbacks into the proposal.
  auto r = plan_rounds({jpeg})[0];
  ASSERT_EQ(r.contexts.size(), 3u);
  EXPECT_EQ(r.contexts[1].transfer_syntax, kEle);
  EXPECT_EQ(r.contexts[2].transfer_syntax, kIle);
  auto a = assign_context(jpeg, answer(r, {{kCt, kIle}}));
  EXPECT_EQ(a.kind, Assignment::Kind::kDecompress);
  EXPECT_EQ(a.transfer_syntax, kIle);
  // Its own syntax accepted: it goes as it is.
  EXPECT_EQ(assign_context(jpeg, answer(r, {{kCt, "1.2.840.10008.1.2.4.50"}, {kCt, kEle}})).kind,
            Assignment::Kind::kAsIs);
  // Without the flag, the proposal has its own syntax only.
  EXPECT_EQ(plan_rounds({{kCt, "1.2.840.10008.1.2.4.50"}})[0].contexts.size(), 1u);
}

TEST(DimseAssign, DecodableSyntaxes) {
  for (const char* lossless :
       {"1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5"}) {
    EXPECT_TRUE(decodable_syntax(lossless, false)) << lossless;
    EXPECT_TRUE(decodable_syntax(lossless, true)) << lossless;
  }
  for (const char* lossy : {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
                            "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.91"}) {
    EXPECT_FALSE(decodable_syntax(lossy, false)) << lossy;
    EXPECT_TRUE(decodable_syntax(lossy, true)) << lossy;
  }
  // JPEG 2000 through OpenJPEG (transcode/jpeg2000.h); no MPEG or HTJ2K decoder here; native
  // syntaxes are not "decoded".
  for (const char* no :
       {"1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.1"})
    EXPECT_FALSE(decodable_syntax(no, true)) << no;
}

TEST(DimseAssign, UnknownSyntaxIsTreatedAsEncapsulated) {
  const std::string priv = "1.2.3.4.5.6.7";
  EXPECT_FALSE(is_native_syntax(priv));
  auto r = plan_rounds({{kCt, priv}})[0];
  EXPECT_EQ(r.contexts.size(), 1u);
  auto a = assign_context({kCt, priv}, answer(r, {}));
  EXPECT_EQ(a.kind, Assignment::Kind::kRefused);
}

TEST(DimseAssign, SopClassNotAcceptedAtAll) {
  auto r = plan_rounds({{kMr, kEle}})[0];
  auto a = assign_context({kMr, kEle}, answer(r, {}));
  EXPECT_EQ(a.kind, Assignment::Kind::kRefused);
  EXPECT_EQ(a.reason, std::string("destination accepted no presentation context for SOP class ") +
                          kMr +
                          " (proposed: Explicit VR Little Endian (1.2.840.10008.1.2.1), "
                          "Implicit VR Little Endian (1.2.840.10008.1.2))");
}

TEST(DimseAssign, NativeRefusedWhenNoNativeSyntaxAccepted) {
  auto r = plan_rounds({{kCt, kEle}, {kCt, kJpegLs}})[0];
  auto a = assign_context({kCt, kEle}, answer(r, {{kCt, kJpegLs}}));
  EXPECT_EQ(a.kind, Assignment::Kind::kRefused);
  EXPECT_NE(a.reason.find("nor Explicit or Implicit VR Little Endian"), std::string::npos);
  // ...while the JPEG-LS object of the same class goes as it is.
  EXPECT_EQ(assign_context({kCt, kJpegLs}, answer(r, {{kCt, kJpegLs}})).kind,
            Assignment::Kind::kAsIs);
}

TEST(DimseAssign, ContextOfAnotherClassIsNotUsed) {
  auto r = plan_rounds({{kCt, kEle}, {kMr, kEle}})[0];
  auto a = assign_context({kMr, kEle}, answer(r, {{kCt, kEle}, {kCt, kIle}}));
  EXPECT_EQ(a.kind, Assignment::Kind::kRefused);
}

TEST(DimseSyntax, Names) {
  EXPECT_EQ(describe_syntax(kJpegLs), "JPEG-LS Lossless (1.2.840.10008.1.2.4.80)");
  EXPECT_EQ(describe_syntax("1.9"), "1.9");
  EXPECT_TRUE(is_native_syntax(kEle));
  EXPECT_TRUE(is_native_syntax(kIle));
  EXPECT_FALSE(is_native_syntax(kRle));
}

// A transcoded copy (JPEG-LS) carries its stored original's syntax: both are proposed, with the
// native fallbacks, and the original goes when the destination refuses JPEG-LS.
TEST(DimsePlan, TranscodedCopyProposesItsOriginalSyntaxToo) {
  auto rounds = plan_rounds({{kCt, kJpegLs, kEle}});
  ASSERT_EQ(rounds.size(), 1u);
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(pairs(rounds[0]), (std::vector<P>{{kCt, kJpegLs}, {kCt, kEle}, {kCt, kIle}}));
}

TEST(DimsePlan, TranscodedCopyGoesAsItselfWhenJpegLsIsAccepted) {
  const PlanItem item{kCt, kJpegLs, kEle};
  auto rounds = plan_rounds({item});
  auto a = assign_context(item, answer(rounds[0], {{kCt, kJpegLs}, {kCt, kEle}}));
  EXPECT_EQ(a.kind, Assignment::Kind::kAsIs);
  EXPECT_EQ(a.transfer_syntax, kJpegLs);
  EXPECT_FALSE(a.original);
}

TEST(DimsePlan, TranscodedCopyFallsBackToItsOriginalWhenJpegLsIsRefused) {
  const PlanItem item{kCt, kJpegLs, kEle};
  auto rounds = plan_rounds({item});
  auto a = assign_context(item, answer(rounds[0], {{kCt, kEle}}));
  EXPECT_EQ(a.kind, Assignment::Kind::kAsIs);
  EXPECT_EQ(a.transfer_syntax, kEle);
  EXPECT_TRUE(a.original);
  // Only Implicit accepted: the original is re-encoded, as any native object would be.
  a = assign_context(item, answer(rounds[0], {{kCt, kIle}}));
  EXPECT_EQ(a.kind, Assignment::Kind::kConvert);
  EXPECT_TRUE(a.original);
  // The class refused altogether: nothing goes.
  a = assign_context(item, answer(rounds[0], {}));
  EXPECT_EQ(a.kind, Assignment::Kind::kRefused);
}

}  // namespace
}  // namespace dirgw::senders::dimse
