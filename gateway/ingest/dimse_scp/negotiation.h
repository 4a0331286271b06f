// Presentation-context negotiation for the DICOM receiver, as a pure rule: what the sender
// proposed in, a decision per context out. No DCMTK here (scp.cpp reads and answers the
// association); unit-tested in tests/unit/ingest/negotiation_test.cpp.
//
// - Storage: any storage SOP class (the 1.2.840.10008.5.1.4.1.1 family, the classes DCMTK knows,
//   the non-family storage classes listed here, and ingest.dicom.extra_sop_classes) is accepted
//   in the first transfer syntax *of the sender's list* that we offer: objects are kept as the
//   sender has them, so a sender that proposes JPEG first is never made to decompress.
// - Verification: implicit or explicit VR little endian, again in the sender's order.
// - Anything else is refused, and every refusal carries its reason (counted and logged).
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace dirgw::ingest {

struct ProposedContext {
  int id = 0;
  std::string abstract_syntax;
  std::vector<std::string> transfer_syntaxes;  // in the sender's order of preference
};

enum class ContextResult { kAccepted, kAbstractSyntaxNotSupported, kTransferSyntaxesNotSupported };

struct ContextDecision {
  int id = 0;
  ContextResult result = ContextResult::kAccepted;
  std::string transfer_syntax;  // when accepted
};

struct NegotiationRules {
  std::vector<std::string> storage_transfer_syntaxes;        // what is offered (UIDs)
  std::set<std::string, std::less<>> known_storage_classes;  // DCMTK's list, say
  std::set<std::string, std::less<>> extra_sop_classes;      // from the configuration
};

// Whether `uid` names a storage SOP class we accept.
bool is_storage_class(std::string_view uid, const NegotiationRules& rules);

std::vector<ContextDecision> negotiate(const std::vector<ProposedContext>& proposed,
                                       const NegotiationRules& rules);

// "abstract syntax not supported" / "no proposed transfer syntax is offered": for logs and
// refusal rows.
std::string_view describe(ContextResult result);

}  // namespace dirgw::ingest
