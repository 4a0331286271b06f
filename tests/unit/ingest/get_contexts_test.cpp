// The storage presentation contexts of a C-GET association (get_contexts.h): the study's image
// classes in every syntax the receiver offers, the rest uncompressed, within the 127 contexts an
// association has room for beside the GET model.
#include "ingest/pull/get_contexts.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "config/config.h"

namespace dirgw::ingest::pull {
namespace {

const std::string kCt = "1.2.840.10008.5.1.4.1.1.2";
const std::string kSc = "1.2.840.10008.5.1.4.1.1.7";
const std::string kBasicTextSr = "1.2.840.10008.5.1.4.1.1.88.11";
const std::string kDoseSr = "1.2.840.10008.5.1.4.1.1.88.67";
const std::string kVideoEndoscopic = "1.2.840.10008.5.1.4.1.1.77.1.1.1";
const std::string kExplicit = "1.2.840.10008.1.2.1";
const std::string kImplicit = "1.2.840.10008.1.2";
const std::string kJpegLossless = "1.2.840.10008.1.2.4.70";
const std::string kJ2kLossless = "1.2.840.10008.1.2.4.90";
const std::string kRle = "1.2.840.10008.1.2.5";
const std::string kDeflated = "1.2.840.10008.1.2.1.99";
const std::string kMpeg4 = "1.2.840.10008.1.2.4.102";

// Every syntax proposed for each class.
std::map<std::string, std::vector<std::string>> by_class(const GetContextPlan& plan) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& pc : plan.contexts)
    for (const auto& ts : pc.transfer_syntaxes) out[pc.sop_class].push_back(ts);
  return out;
}

bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::vector<std::string> many_classes(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back("1.2.840.10008.5.1.4.1.1.999." + std::to_string(i));
  return out;
}

TEST(GetContexts, ReportedImageClassGetsEveryOfferedSyntaxOneContextEach) {
  const auto offered = config::default_storage_transfer_syntaxes();
  const auto plan = plan_get_contexts({kCt}, {}, offered, {}, 127);
  const auto classes = by_class(plan);
  ASSERT_TRUE(classes.count(kCt));
  // The first context of the class is the uncompressed one, explicit before implicit.
  const auto first = std::find_if(plan.contexts.begin(), plan.contexts.end(),
                                  [&](const StorageProposal& p) { return p.sop_class == kCt; });
  EXPECT_EQ(first->transfer_syntaxes, (std::vector<std::string>{kExplicit, kImplicit}));
  for (const auto& ts : {kJpegLossless, kJ2kLossless, kRle, kDeflated})
    EXPECT_TRUE(has(classes.at(kCt), ts)) << ts;
  // A compressed syntax is a context of its own: the PACS accepts one syntax per context.
  for (const auto& pc : plan.contexts) {
    if (pc.transfer_syntaxes.size() > 1) {
      EXPECT_EQ(pc.transfer_syntaxes, (std::vector<std::string>{kExplicit, kImplicit}));
    }
  }
  // No video syntax for a CT.
  EXPECT_FALSE(has(classes.at(kCt), kMpeg4));
  EXPECT_EQ(plan.dropped, 0u);
  EXPECT_LE(plan.contexts.size(), 127u);
}

TEST(GetContexts, ModalitiesBringTheirClassesAndSecondaryCaptureAlwaysComes) {
  const auto offered = config::default_storage_transfer_syntaxes();
  const auto plan = plan_get_contexts({}, {"CT"}, offered, {}, 127);
  const auto classes = by_class(plan);
  for (const auto& c : classes_of_modality("CT")) {
    ASSERT_TRUE(classes.count(c)) << c;
    EXPECT_TRUE(has(classes.at(c), kJpegLossless)) << c;
  }
  ASSERT_TRUE(classes.count(kSc));
  EXPECT_TRUE(has(classes.at(kSc), kJpegLossless));
  // The companions come uncompressed, before the rarer syntaxes of the image classes.
  ASSERT_TRUE(classes.count(kDoseSr));
  EXPECT_EQ(classes.at(kDoseSr), (std::vector<std::string>{kExplicit, kImplicit}));
  EXPECT_EQ(plan.image_classes, 3u + 5u);  // CT, enhanced CT, legacy CT; five SC classes
}

TEST(GetContexts, ReportedNonImageClassesAreUncompressedOrDeflated) {
  const auto offered = config::default_storage_transfer_syntaxes();
  const auto classes = by_class(plan_get_contexts({kBasicTextSr}, {}, offered, {}, 127));
  ASSERT_TRUE(classes.count(kBasicTextSr));
  EXPECT_EQ(classes.at(kBasicTextSr), (std::vector<std::string>{kExplicit, kImplicit, kDeflated}));
}

TEST(GetContexts, VideoSyntaxesOnlyForVideoClasses) {
  const auto offered = config::default_storage_transfer_syntaxes();
  const auto classes = by_class(plan_get_contexts({}, {"ES"}, offered, {}, 127));
  ASSERT_TRUE(classes.count(kVideoEndoscopic));
  EXPECT_TRUE(has(classes.at(kVideoEndoscopic), kMpeg4));
  EXPECT_FALSE(has(classes.at("1.2.840.10008.5.1.4.1.1.77.1.1"), kMpeg4));
}

TEST(GetContexts, OnlyWhatTheReceiverOffers) {
  const std::vector<std::string> offered = {kExplicit, kJpegLossless};
  const auto classes = by_class(plan_get_contexts({kCt}, {}, offered, {}, 127));
  EXPECT_EQ(classes.at(kCt), (std::vector<std::string>{kExplicit, kJpegLossless}));
}

TEST(GetContexts, FallbackFillsTheRestUncompressedAndTheBudgetHolds) {
  const auto offered = config::default_storage_transfer_syntaxes();
  const auto fallback = many_classes(200);
  const auto plan = plan_get_contexts({}, {}, offered, fallback, 127);
  EXPECT_EQ(plan.contexts.size(), 127u);
  EXPECT_GT(plan.dropped, 0u);
  // The SC family keeps its compressed syntaxes; the fallback classes come after, uncompressed.
  const auto classes = by_class(plan);
  EXPECT_TRUE(has(classes.at(kSc), kJpegLossless));
  ASSERT_TRUE(classes.count(fallback[0]));
  EXPECT_EQ(classes.at(fallback[0]), (std::vector<std::string>{kExplicit, kImplicit}));
  EXPECT_FALSE(classes.count(fallback[199]));
  // Every class appears with the uncompressed context once, never twice.
  std::map<std::string, int> uncompressed;
  for (const auto& pc : plan.contexts) {
    if (pc.transfer_syntaxes.size() == 2) ++uncompressed[pc.sop_class];
  }
  for (const auto& [c, n] : uncompressed) EXPECT_EQ(n, 1) << c;
}

TEST(GetContexts, ASmallBudgetKeepsTheStudysClassesUncompressedFirst) {
  const auto offered = config::default_storage_transfer_syntaxes();
  const auto plan = plan_get_contexts({kCt}, {"MR"}, offered, many_classes(50), 10);
  ASSERT_EQ(plan.contexts.size(), 10u);
  EXPECT_EQ(plan.contexts[0].sop_class, kCt);
  for (const auto& pc : plan.contexts)
    EXPECT_EQ(pc.transfer_syntaxes, (std::vector<std::string>{kExplicit, kImplicit}));
  EXPECT_GT(plan.dropped, 0u);
}

TEST(GetContexts, PacsChoiceFirstOffersEverySyntaxInTheClasssFirstContext) {
  const auto offered = config::default_storage_transfer_syntaxes();
  const auto plan = plan_get_contexts({kCt}, {}, offered, {}, 127, GetLayout::kPacsChoiceFirst);
  ASSERT_FALSE(plan.contexts.empty());
  // The first context of the CT class: every offered syntax but the video ones, ours first.
  const StorageProposal& first = plan.contexts.front();
  EXPECT_EQ(first.sop_class, kCt);
  EXPECT_EQ(first.transfer_syntaxes.front(), kExplicit);
  for (const auto& ts : {kImplicit, kJpegLossless, kJ2kLossless, kRle, kDeflated})
    EXPECT_TRUE(has(first.transfer_syntaxes, ts)) << ts;
  EXPECT_FALSE(has(first.transfer_syntaxes, kMpeg4));
  // Then one context per compressed syntax and one uncompressed, as in the other layout.
  int uncompressed = 0, jpeg = 0;
  for (const auto& pc : plan.contexts) {
    if (pc.sop_class != kCt) continue;
    if (pc.transfer_syntaxes == std::vector<std::string>{kExplicit, kImplicit}) ++uncompressed;
    if (pc.transfer_syntaxes == std::vector<std::string>{kJpegLossless}) ++jpeg;
  }
  EXPECT_EQ(uncompressed, 1);
  EXPECT_EQ(jpeg, 1);
  EXPECT_EQ(plan.dropped, 0u);
}

// A PACS that does not report SOP Class UIDs (dcmqrscp): an RT plan, a structure set or an ECG
// study still finds its classes, uncompressed, before DCMTK's long list fills the rest (found
// with pydicom's rtplan.dcm, rtstruct.dcm and waveform_ecg.dcm over C-GET from dcmqrscp).
TEST(GetContexts, NonImageModalitiesBringTheirClassesBeforeTheFallback) {
  const auto offered = config::default_storage_transfer_syntaxes();
  const auto fallback = many_classes(200);
  const std::string rt_plan = "1.2.840.10008.5.1.4.1.1.481.5";
  const std::string rt_ion_plan = "1.2.840.10008.5.1.4.1.1.481.8";
  const std::string rt_struct = "1.2.840.10008.5.1.4.1.1.481.3";
  const std::string ecg = "1.2.840.10008.5.1.4.1.1.9.1.1";
  for (const auto& [modality, wanted] :
       std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"RTPLAN", {rt_plan, rt_ion_plan}}, {"RTSTRUCT", {rt_struct}}, {"ECG", {ecg}}}) {
    const auto plan = plan_get_contexts({}, {modality}, offered, fallback, 127);
    const auto classes = by_class(plan);
    for (const auto& c : wanted) {
      ASSERT_TRUE(classes.count(c)) << modality << " " << c;
      EXPECT_TRUE(has(classes.at(c), kExplicit) && has(classes.at(c), kImplicit)) << c;
      EXPECT_FALSE(has(classes.at(c), kJpegLossless)) << c;  // no pixel data to compress
    }
    EXPECT_GT(plan.dropped, 0u);  // the fallback did not all fit, and these came first
  }
}

TEST(GetContexts, UnknownModalityHasNoClasses) {
  EXPECT_TRUE(classes_of_modality("XYZ").empty());
  EXPECT_FALSE(classes_of_modality("MG").empty());
}

}  // namespace
}  // namespace dirgw::ingest::pull
