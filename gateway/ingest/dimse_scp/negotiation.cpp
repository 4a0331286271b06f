#include "ingest/dimse_scp/negotiation.h"

#include <algorithm>
#include <array>

#include "common/uid.h"

namespace dirgw::ingest {

namespace {

constexpr std::string_view kVerification = "1.2.840.10008.1.1";
constexpr std::string_view kStorageFamily = "1.2.840.10008.5.1.4.1.1.";
constexpr std::array<std::string_view, 2> kEchoSyntaxes = {"1.2.840.10008.1.2.1",
                                                           "1.2.840.10008.1.2"};

// Storage SOP classes outside the 1.2.840.10008.5.1.4.1.1 family (PS3.4 B.5), some newer than
// Debian's DCMTK 3.6.7 dictionary.
constexpr std::array<std::string_view, 7> kOtherStorageClasses = {
    "1.2.840.10008.5.1.4.38.1",   // Hanging Protocol Storage
    "1.2.840.10008.5.1.4.39.1",   // Color Palette Storage
    "1.2.840.10008.5.1.4.43.1",   // Generic Implant Template Storage
    "1.2.840.10008.5.1.4.44.1",   // Implant Assembly Template Storage
    "1.2.840.10008.5.1.4.45.1",   // Implant Template Group Storage
    "1.2.840.10008.5.1.4.34.10",  // RT Brachy Application Setup Delivery Instruction Storage
    "1.2.840.10008.5.1.4.34.7",   // RT Beams Delivery Instruction Storage
};

template <typename Offered>
ContextDecision pick(const ProposedContext& pc, const Offered& offered) {
  for (const auto& ts : pc.transfer_syntaxes) {
    if (std::find(offered.begin(), offered.end(), ts) != offered.end())
      return {pc.id, ContextResult::kAccepted, ts};
  }
  return {pc.id, ContextResult::kTransferSyntaxesNotSupported, ""};
}

}  // namespace

bool is_storage_class(std::string_view uid, const NegotiationRules& rules) {
  if (!uid_syntax_ok(uid)) return false;
  if (uid.size() > kStorageFamily.size() && uid.substr(0, kStorageFamily.size()) == kStorageFamily)
    return true;
  if (std::find(kOtherStorageClasses.begin(), kOtherStorageClasses.end(), uid) !=
      kOtherStorageClasses.end())
    return true;
  return rules.known_storage_classes.contains(uid) || rules.extra_sop_classes.contains(uid);
}

std::vector<ContextDecision> negotiate(const std::vector<ProposedContext>& proposed,
                                       const NegotiationRules& rules) {
  std::vector<ContextDecision> out;
  out.reserve(proposed.size());
  for (const auto& pc : proposed) {
    if (pc.abstract_syntax == kVerification) {
      out.push_back(pick(pc, kEchoSyntaxes));
    } else if (is_storage_class(pc.abstract_syntax, rules)) {
      out.push_back(pick(pc, rules.storage_transfer_syntaxes));
    } else {
      out.push_back({pc.id, ContextResult::kAbstractSyntaxNotSupported, ""});
    }
  }
  return out;
}

std::string_view describe(ContextResult result) {
  switch (result) {
    case ContextResult::kAccepted:
      return "accepted";
    case ContextResult::kAbstractSyntaxNotSupported:
      return "abstract syntax not supported";
    case ContextResult::kTransferSyntaxesNotSupported:
      return "no proposed transfer syntax is offered";
  }
  return "unknown";
}

}  // namespace dirgw::ingest
