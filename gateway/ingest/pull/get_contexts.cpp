#include "ingest/pull/get_contexts.h"

#include <algorithm>
#include <array>
#include <map>
#include <string_view>

namespace dirgw::ingest::pull {

namespace {

constexpr std::string_view kStorage = "1.2.840.10008.5.1.4.1.1.";

// Uncompressed syntaxes, proposed together in one context: the PACS converts among them freely.
constexpr std::array<std::string_view, 3> kUncompressed = {
    "1.2.840.10008.1.2.1",  // explicit VR little endian
    "1.2.840.10008.1.2",    // implicit VR little endian
    "1.2.840.10008.1.2.2",  // explicit VR big endian (retired; only when offered)
};

// The compressed syntaxes most archives hold their images in, before the companion classes.
constexpr std::array<std::string_view, 4> kCommonCompressed = {
    "1.2.840.10008.1.2.4.70",  // JPEG lossless, first-order prediction
    "1.2.840.10008.1.2.4.90",  // JPEG 2000 lossless
    "1.2.840.10008.1.2.4.50",  // JPEG baseline
    "1.2.840.10008.1.2.4.80",  // JPEG-LS lossless
};

// Video syntaxes (MPEG-2, MPEG-4 AVC, HEVC): only for the classes that hold video.
bool is_video_syntax(std::string_view ts) {
  constexpr std::string_view prefix = "1.2.840.10008.1.2.4.10";
  return ts.size() == prefix.size() + 1 && ts.substr(0, prefix.size()) == prefix;
}

std::string storage(std::string_view suffix) { return std::string(kStorage) + std::string(suffix); }

bool is_video_class(const std::string& c) {
  return c == storage("77.1.1.1") || c == storage("77.1.2.1") || c == storage("77.1.4.1") ||
         c == storage("3.1");  // video endoscopic, microscopic, photographic; US multi-frame
}

// Classes whose objects hold no pixel data to compress: reports, waveforms, presentation states,
// documents, registrations, measurements, RT objects other than RT Image.
bool is_non_image_class(const std::string& c) {
  if (c.size() <= kStorage.size() || c.compare(0, kStorage.size(), kStorage) != 0) return true;
  const std::string_view s = std::string_view(c).substr(kStorage.size());
  if (s == "481.1") return false;  // RT Image
  for (std::string_view p :
       {"88.", "9.", "104.", "11.", "66", "67", "68.", "78.", "79.", "80.", "481.", "131"})
    if (s.substr(0, p.size()) == p) return true;
  return false;
}

// Classes that accompany images in most studies: reports, dose reports, key objects,
// presentation states, documents, raw data and segmentations.
const std::vector<std::string>& companion_classes() {
  static const std::vector<std::string> classes = {
      storage("88.11"), storage("88.22"), storage("88.33"), storage("88.34"), storage("88.67"),
      storage("88.68"), storage("88.59"), storage("88.50"), storage("11.1"),  storage("11.2"),
      storage("104.1"), storage("104.2"), storage("66"),    storage("66.4"),
  };
  return classes;
}

const std::vector<std::string>& secondary_capture_classes() {
  static const std::vector<std::string> classes = {storage("7"), storage("7.1"), storage("7.2"),
                                                   storage("7.3"), storage("7.4")};
  return classes;
}

}  // namespace

std::vector<std::string> classes_of_modality(const std::string& modality) {
  static const std::map<std::string, std::vector<std::string>, std::less<>> table = {
      {"CT", {storage("2"), storage("2.1"), storage("2.2")}},
      {"MR", {storage("4"), storage("4.1"), storage("4.3"), storage("4.4"), storage("4.2")}},
      {"CR", {storage("1")}},
      {"DX", {storage("1.1"), storage("1.1.1")}},
      {"PX", {storage("1.1"), storage("1.1.1")}},
      {"MG",
       {storage("1.2"), storage("1.2.1"), storage("13.1.3"), storage("1.1"), storage("1.1.1")}},
      {"IO", {storage("1.3"), storage("1.3.1")}},
      {"US", {storage("6.1"), storage("3.1"), storage("6.2")}},
      {"NM", {storage("20")}},
      {"PT", {storage("128"), storage("130"), storage("128.1")}},
      {"XA", {storage("12.1"), storage("12.1.1"), storage("13.1.1")}},
      {"RF", {storage("12.2"), storage("12.2.1")}},
      {"ES", {storage("77.1.1"), storage("77.1.1.1")}},
      {"XC", {storage("77.1.4"), storage("77.1.4.1")}},
      {"GM", {storage("77.1.2"), storage("77.1.2.1")}},
      {"SM", {storage("77.1.6"), storage("77.1.2")}},
      {"OP", {storage("77.1.5.1"), storage("77.1.5.2")}},
      {"OPT", {storage("77.1.5.4")}},
      {"IVOCT", {storage("14.1"), storage("14.2")}},
      {"RTIMAGE", {storage("481.1")}},
      // Objects without pixel data, for a PACS that does not report SOP Class UIDs at IMAGE
      // level (DCMTK's dcmqrscp, many others): without these an RT plan or an ECG finds no
      // context, since DCMTK's list of common classes does not fit beside the image classes.
      {"RTDOSE", {storage("481.2")}},
      {"RTSTRUCT", {storage("481.3")}},
      {"RTPLAN", {storage("481.5"), storage("481.8")}},
      {"RTRECORD", {storage("481.4"), storage("481.6"), storage("481.7"), storage("481.9")}},
      {"ECG", {storage("9.1.1"), storage("9.1.2"), storage("9.1.3")}},
      {"HD", {storage("9.2.1")}},
      {"EPS", {storage("9.3.1")}},
      {"AU", {storage("9.4.1"), storage("9.4.2")}},
      {"PR", {storage("11.1"), storage("11.2"), storage("11.3"), storage("11.4")}},
      {"KO", {storage("88.59")}},
      {"SR",
       {storage("88.11"), storage("88.22"), storage("88.33"), storage("88.34"), storage("88.35"),
        storage("88.50"), storage("88.65"), storage("88.67"), storage("88.68"), storage("88.69"),
        storage("88.73")}},
      {"SEG", {storage("66.4")}},
      {"REG", {storage("66.1"), storage("66.3")}},
      {"FID", {storage("66.2")}},
      {"DOC", {storage("104.1"), storage("104.2"), storage("104.3")}},
  };
  auto it = table.find(modality);
  return it == table.end() ? std::vector<std::string>{} : it->second;
}

GetContextPlan plan_get_contexts(const std::set<std::string>& sop_classes,
                                 const std::set<std::string>& modalities,
                                 const std::vector<std::string>& offered,
                                 const std::vector<std::string>& fallback, std::size_t budget,
                                 GetLayout layout) {
  auto is_offered = [&](std::string_view ts) {
    return std::find(offered.begin(), offered.end(), ts) != offered.end();
  };
  std::vector<std::string> uncompressed, common, rare;
  for (const auto& ts : offered) {
    if (std::find(kUncompressed.begin(), kUncompressed.end(), ts) != kUncompressed.end())
      uncompressed.push_back(ts);
  }
  for (std::string_view ts : kCommonCompressed)
    if (is_offered(ts)) common.emplace_back(ts);
  for (const auto& ts : offered) {
    const bool known =
        std::find(uncompressed.begin(), uncompressed.end(), ts) != uncompressed.end() ||
        std::find(common.begin(), common.end(), ts) != common.end();
    if (!known) rare.push_back(ts);
  }

  // The study's classes: image classes get every syntax, the others uncompressed (and deflated).
  std::vector<std::string> images, others;
  std::set<std::string> seen;
  auto add_class = [&](const std::string& c) {
    if (!seen.insert(c).second) return;
    (is_non_image_class(c) ? others : images).push_back(c);
  };
  for (const auto& c : sop_classes) add_class(c);
  for (const auto& m : modalities)
    for (const auto& c : classes_of_modality(m)) add_class(c);
  for (const auto& c : secondary_capture_classes()) add_class(c);

  GetContextPlan plan;
  plan.image_classes = images.size();
  auto propose = [&](const std::string& c, std::vector<std::string> syntaxes) {
    if (syntaxes.empty()) return;
    if (plan.contexts.size() >= budget) {
      ++plan.dropped;
      return;
    }
    plan.contexts.push_back({c, std::move(syntaxes)});
  };
  // 1. The study's classes: uncompressed, or (kPacsChoiceFirst) an image class's first context
  //    with every syntax, for the PACS to choose.
  for (const auto& c : images) {
    if (layout == GetLayout::kUncompressedFirst) {
      propose(c, uncompressed);
      continue;
    }
    std::vector<std::string> every = uncompressed;
    for (const auto* list : {&common, &rare})
      for (const auto& ts : *list)
        if (!is_video_syntax(ts) || is_video_class(c)) every.push_back(ts);
    propose(c, std::move(every));
  }
  for (const auto& c : others) propose(c, uncompressed);
  // 2. Its image classes in the common compressed syntaxes (and uncompressed, when the first
  //    context was the PACS's choice).
  for (const auto& ts : common)
    for (const auto& c : images) propose(c, {ts});
  if (layout == GetLayout::kPacsChoiceFirst)
    for (const auto& c : images) propose(c, uncompressed);
  // 3. The companion classes, uncompressed.
  for (const auto& c : companion_classes())
    if (seen.insert(c).second) propose(c, uncompressed);
  // 4. The rarer syntaxes: every other compressed one for the image classes (video ones for the
  //    video classes only), deflated for the others.
  constexpr std::string_view kDeflated = "1.2.840.10008.1.2.1.99";
  for (const auto& ts : rare) {
    for (const auto& c : images)
      if (!is_video_syntax(ts) || is_video_class(c)) propose(c, {ts});
    if (ts == kDeflated)
      for (const auto& c : others) propose(c, {ts});
  }
  // 5. Every further class of the fallback list, uncompressed.
  for (const auto& c : fallback)
    if (seen.insert(c).second) propose(c, uncompressed);
  return plan;
}

}  // namespace dirgw::ingest::pull
