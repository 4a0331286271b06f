#include "senders/dimse/plan.h"

#include <algorithm>
#include <map>

namespace dirgw::senders::dimse {

namespace {

struct SyntaxName {
  std::string_view uid;
  std::string_view name;
};

constexpr SyntaxName kSyntaxNames[] = {
    {"1.2.840.10008.1.2", "Implicit VR Little Endian"},
    {"1.2.840.10008.1.2.1", "Explicit VR Little Endian"},
    {"1.2.840.10008.1.2.1.99", "Deflated Explicit VR Little Endian"},
    {"1.2.840.10008.1.2.2", "Explicit VR Big Endian"},
    {"1.2.840.10008.1.2.4.50", "JPEG Baseline"},
    {"1.2.840.10008.1.2.4.51", "JPEG Extended"},
    {"1.2.840.10008.1.2.4.57", "JPEG Lossless"},
    {"1.2.840.10008.1.2.4.70", "JPEG Lossless SV1"},
    {"1.2.840.10008.1.2.4.80", "JPEG-LS Lossless"},
    {"1.2.840.10008.1.2.4.81", "JPEG-LS Near-Lossless"},
    {"1.2.840.10008.1.2.4.90", "JPEG 2000 Lossless"},
    {"1.2.840.10008.1.2.4.91", "JPEG 2000"},
    {"1.2.840.10008.1.2.5", "RLE Lossless"},
    {"1.2.840.10008.1.2.4.100", "MPEG-2 MP@ML"},
    {"1.2.840.10008.1.2.4.102", "MPEG-4 AVC/H.264 HP@4.1"},
    {"1.2.840.10008.1.2.4.103", "MPEG-4 AVC/H.264 BD"},
    {"1.2.840.10008.1.2.4.107", "HEVC/H.265 Main"},
};

// The fallbacks a native object may be re-encoded into, in order of preference: Explicit keeps
// the VRs (private attributes survive with their types), Implicit is what every SCP accepts.
constexpr std::string_view kFallbacks[] = {kExplicitVrLittleEndian, kImplicitVrLittleEndian};

struct ClassNeeds {
  std::string sop_class;
  std::vector<std::string> syntaxes;  // proposal order, distinct
  std::vector<std::size_t> items;
};

void add_unique(std::vector<std::string>& v, std::string_view s) {
  if (std::find(v.begin(), v.end(), s) == v.end()) v.emplace_back(s);
}

}  // namespace

bool is_native_syntax(std::string_view ts) {
  return ts == kImplicitVrLittleEndian || ts == kExplicitVrLittleEndian ||
         ts == kDeflatedExplicitVrLittleEndian || ts == kExplicitVrBigEndian;
}

bool decodable_syntax(std::string_view ts, bool lossy_too) {
  // DCMTK's decoders, and OpenJPEG's for JPEG 2000 (.90, .91; transcode/jpeg2000.h).
  constexpr std::string_view kLossless[] = {"1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
                                            "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90",
                                            "1.2.840.10008.1.2.5"};
  constexpr std::string_view kLossy[] = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
                                         "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.91"};
  auto in = [&](const auto& list) {
    return std::find(std::begin(list), std::end(list), ts) != std::end(list);
  };
  return in(kLossless) || (lossy_too && in(kLossy));
}

std::string describe_syntax(std::string_view ts) {
  for (const auto& s : kSyntaxNames)
    if (s.uid == ts) return std::string(s.name) + " (" + std::string(ts) + ")";
  return std::string(ts);
}

std::vector<AssociationRound> plan_rounds(const std::vector<PlanItem>& items,
                                          const std::vector<std::string>& extra) {
  // Per SOP class in order of first appearance.
  std::vector<ClassNeeds> classes;
  std::map<std::string, std::size_t, std::less<>> index;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const PlanItem& item = items[i];
    auto [it, inserted] = index.try_emplace(item.sop_class_uid, classes.size());
    if (inserted) classes.push_back({item.sop_class_uid, {}, {}});
    ClassNeeds& c = classes[it->second];
    add_unique(c.syntaxes, item.transfer_syntax);
    if (!item.original_syntax.empty()) add_unique(c.syntaxes, item.original_syntax);
    c.items.push_back(i);
  }
  for (ClassNeeds& c : classes) {
    const bool any_native = std::any_of(c.items.begin(), c.items.end(), [&](std::size_t i) {
      return is_native_syntax(items[i].transfer_syntax) ||
             is_native_syntax(items[i].original_syntax) || items[i].decompressible;
    });
    if (any_native)
      for (auto f : kFallbacks) add_unique(c.syntaxes, f);
  }

  const std::size_t extra_contexts = extra.size() * std::size(kFallbacks);
  const std::size_t budget = kMaxContexts > extra_contexts ? kMaxContexts - extra_contexts : 0;
  std::vector<AssociationRound> rounds;
  auto finish_round = [&](AssociationRound& r) {
    for (const auto& abstract : extra)
      for (auto ts : kFallbacks) r.contexts.push_back({0, abstract, std::string(ts)});
    for (std::size_t k = 0; k < r.contexts.size(); ++k)
      r.contexts[k].id = static_cast<std::uint8_t>(2 * k + 1);
    rounds.push_back(std::move(r));
  };
  AssociationRound current;
  std::size_t used = 0;
  for (ClassNeeds& c : classes) {
    // A class never needs more syntaxes than there are (well under 128), so it always fits in
    // an empty round; the check keeps a pathological budget from looping.
    if (used > 0 && used + c.syntaxes.size() > budget) {
      finish_round(current);
      current = {};
      used = 0;
    }
    for (const auto& ts : c.syntaxes) current.contexts.push_back({0, c.sop_class, ts});
    used += c.syntaxes.size();
    current.items.insert(current.items.end(), c.items.begin(), c.items.end());
  }
  if (!current.items.empty()) finish_round(current);
  for (auto& r : rounds) std::sort(r.items.begin(), r.items.end());
  return rounds;
}

Assignment assign_context(const PlanItem& item, const std::vector<NegotiatedContext>& contexts) {
  const NegotiatedContext* own = nullptr;
  const NegotiatedContext* fallback[std::size(kFallbacks)] = {};
  bool class_accepted = false;
  for (const auto& c : contexts) {
    if (!c.accepted || c.abstract_syntax != item.sop_class_uid) continue;
    class_accepted = true;
    if (c.transfer_syntax == item.transfer_syntax && own == nullptr) own = &c;
    for (std::size_t f = 0; f < std::size(kFallbacks); ++f)
      if (c.transfer_syntax == kFallbacks[f] && fallback[f] == nullptr) fallback[f] = &c;
  }
  Assignment a;
  if (own != nullptr) {
    a.kind = Assignment::Kind::kAsIs;
    a.context_id = own->id;
    a.transfer_syntax = own->transfer_syntax;
    return a;
  }
  const std::string why_not =
      item.not_decompressed.empty() ? "" : " (not decompressed: " + item.not_decompressed + ")";
  if (!class_accepted) {
    std::string proposed;  // only when refused: this runs for every instance sent
    for (const auto& c : contexts)
      if (c.abstract_syntax == item.sop_class_uid)
        proposed += (proposed.empty() ? "" : ", ") + describe_syntax(c.transfer_syntax);
    a.reason = "destination accepted no presentation context for SOP class " + item.sop_class_uid +
               " (proposed: " + (proposed.empty() ? "none" : proposed) + ")" + why_not;
    return a;
  }
  if (!item.original_syntax.empty()) {
    // A transcoded copy the destination does not take in its syntax: the stored original goes.
    a = assign_context({item.sop_class_uid, item.original_syntax, ""}, contexts);
    a.original = true;
    return a;
  }
  if (is_native_syntax(item.transfer_syntax) || item.decompressible) {
    for (const auto* f : fallback) {
      if (f == nullptr) continue;
      a.kind = item.decompressible ? Assignment::Kind::kDecompress : Assignment::Kind::kConvert;
      a.context_id = f->id;
      a.transfer_syntax = f->transfer_syntax;
      return a;
    }
    a.reason = "destination does not accept transfer syntax " +
               describe_syntax(item.transfer_syntax) + " for SOP class " + item.sop_class_uid +
               ", nor Explicit or Implicit VR Little Endian";
    return a;
  }
  a.reason = "destination does not accept transfer syntax " +
             describe_syntax(item.transfer_syntax) + " for SOP class " + item.sop_class_uid +
             why_not;
  return a;
}

}  // namespace dirgw::senders::dimse
