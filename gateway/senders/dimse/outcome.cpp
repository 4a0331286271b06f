#include "senders/dimse/outcome.h"

#include <cstdio>

#include "senders/dicomweb/stow.h"

namespace dirgw::senders::dimse {

std::string hex_status(std::uint16_t status) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%04X", static_cast<unsigned>(status));
  return buf;
}

Verdict classify_store_status(std::uint16_t status) {
  using S = InstanceStatus;
  const std::string code = "DIMSE status " + hex_status(status);
  if (status == 0x0000) return {S::kAccepted, ""};
  switch (status) {
    case 0x0001:
      return {S::kAccepted, code + " (warning: requested optional attributes not supported)"};
    case 0xB000:
      return {S::kAccepted, code + " (warning: coercion of data elements)"};
    case 0xB006:
      return {S::kAccepted, code + " (warning: elements discarded)"};
    case 0xB007:
      return {S::kAccepted, code + " (warning: data set does not match SOP class)"};
    case 0xFE00:
      return {S::kRetry, code + " (cancelled)"};
    default:
      break;
  }
  if ((status & 0xF000) == 0xB000) return {S::kAccepted, code + " (warning)"};
  const auto c = dicomweb::classify_failure_reason(status);
  return {c.status, code + " (" + std::string(c.meaning) + ")"};
}

namespace {

std::string_view reason_text(int source, int reason) {
  switch (source) {
    case 1:
      switch (reason) {
        case 1:
          return "no reason given";
        case 2:
          return "application context name not supported";
        case 3:
          return "calling AE title not recognised";
        case 7:
          return "called AE title not recognised";
        default:
          return "unknown reason";
      }
    case 2:
      switch (reason) {
        case 1:
          return "no reason given";
        case 2:
          return "protocol version not supported";
        default:
          return "unknown reason";
      }
    case 3:
      switch (reason) {
        case 1:
          return "temporary congestion";
        case 2:
          return "local limit exceeded";
        default:
          return "unknown reason";
      }
    default:
      return "unknown reason";
  }
}

std::string_view source_text(int source) {
  switch (source) {
    case 1:
      return "service user";
    case 2:
      return "service provider, ACSE";
    case 3:
      return "service provider, presentation";
    default:
      return "unknown source";
  }
}

}  // namespace

Verdict classify_reject(const AssociateReject& rj, std::string_view called_ae,
                        std::string_view calling_ae) {
  using S = InstanceStatus;
  const bool permanent_result = rj.result == 1;
  std::string fields = "association rejected (" +
                       std::string(permanent_result ? "permanent"
                                   : rj.result == 2 ? "transient"
                                                    : "result " + std::to_string(rj.result)) +
                       ", " + std::string(source_text(rj.source)) +
                       "): " + std::string(reason_text(rj.source, rj.reason));
  const std::string nothing_sent = "; nothing was sent";
  if (rj.source == 1 && rj.reason == 7)
    return {S::kPermanent, fields + " - the destination does not know itself as called AE '" +
                               std::string(called_ae) +
                               "': fix called_ae in the destination's configuration" +
                               nothing_sent};
  if (rj.source == 1 && rj.reason == 3)
    return {S::kPermanent, fields + " - the destination does not know our calling AE '" +
                               std::string(calling_ae) +
                               "': it must be added on the destination's side" + nothing_sent};
  if ((rj.source == 1 && rj.reason == 2) || (rj.source == 2 && rj.reason == 2))
    return {S::kPermanent, fields + nothing_sent};
  if ((rj.source == 1 && rj.reason == 1) || (rj.source == 2 && rj.reason == 1) ||
      (rj.source == 3 && (rj.reason == 1 || rj.reason == 2)))
    return {S::kRetry, fields + nothing_sent};
  return {permanent_result ? S::kPermanent : S::kRetry, fields + nothing_sent};
}

}  // namespace dirgw::senders::dimse
