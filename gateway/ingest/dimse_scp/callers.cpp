#include "ingest/dimse_scp/callers.h"

#include <cctype>

#include "ingest/dimse_scp/refusal.h"

namespace dirgw::ingest {

bool Ipv4Network::contains(std::uint32_t a) const {
  const std::uint32_t mask = prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
  return (a & mask) == address;
}

std::optional<std::uint32_t> parse_ipv4(std::string_view text) {
  std::uint32_t out = 0;
  int parts = 0;
  std::size_t i = 0;
  while (parts < 4) {
    std::size_t digits = 0;
    unsigned value = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) && digits < 3) {
      value = value * 10 + static_cast<unsigned>(text[i] - '0');
      ++i;
      ++digits;
    }
    if (digits == 0 || value > 255) return std::nullopt;
    out = (out << 8) | value;
    ++parts;
    if (parts < 4) {
      if (i >= text.size() || text[i] != '.') return std::nullopt;
      ++i;
    }
  }
  if (i != text.size()) return std::nullopt;
  return out;
}

std::optional<Ipv4Network> parse_network(std::string_view text) {
  const auto slash = text.find('/');
  auto address = parse_ipv4(text.substr(0, slash));
  if (!address) return std::nullopt;
  int prefix = 32;
  if (slash != std::string_view::npos) {
    const auto p = text.substr(slash + 1);
    if (p.empty() || p.size() > 2) return std::nullopt;
    prefix = 0;
    for (char c : p) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
      prefix = prefix * 10 + (c - '0');
    }
    if (prefix > 32) return std::nullopt;
  }
  Ipv4Network n{*address, prefix};
  n.address &= prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
  return n;
}

std::string normalise_subject(std::string_view subject) {
  std::string out;
  bool in_name = true;  // an attribute name: before '=' in each RDN
  for (std::size_t i = 0; i < subject.size(); ++i) {
    const char c = subject[i];
    if (c == ' ') {
      // Spaces next to a separator are dropped; inside a value they are kept.
      const bool before_sep =
          i + 1 < subject.size() &&
          (subject[i + 1] == ',' || subject[i + 1] == '=' || subject[i + 1] == ' ');
      const bool after_sep = out.empty() || out.back() == ',' || out.back() == '=';
      if (before_sep || after_sep || i + 1 == subject.size()) continue;
    }
    if (c == '=') in_name = false;
    if (c == ',') in_name = true;
    out += in_name ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
  }
  return out;
}

Result<Callers> Callers::make(const std::vector<std::string>& allowed,
                              const std::vector<config::CallerBinding>& bindings) {
  Callers c;
  for (const auto& ae : allowed) {
    if (ae == "*")
      c.any_ = true;
    else
      c.allowed_.push_back(ae);
  }
  for (const auto& b : bindings) {
    Binding out{b.ae_title, {}, {}};
    for (const auto& n : b.networks) {
      auto parsed = parse_network(n);
      if (!parsed)
        return make_error(ErrorCode::kConfig, "caller " + b.ae_title + ": bad address " + n);
      out.networks.push_back(*parsed);
    }
    for (const auto& s : b.subjects) out.subjects.push_back(normalise_subject(s));
    c.bindings_.push_back(std::move(out));
  }
  return c;
}

CallerDecision Callers::decide(std::string_view ae, std::string_view peer_address,
                               const std::optional<std::string>& subject) const {
  const auto address = parse_ipv4(peer_address);
  const std::optional<std::string> normalised =
      subject ? std::optional<std::string>(normalise_subject(*subject)) : std::nullopt;
  bool bound = false, address_matched = false;
  for (const auto& b : bindings_) {
    if (b.ae_title != ae) continue;
    bound = true;
    bool address_ok = b.networks.empty();
    for (const auto& n : b.networks) address_ok = address_ok || (address && n.contains(*address));
    if (!address_ok) continue;
    address_matched = true;
    bool subject_ok = b.subjects.empty();
    for (const auto& s : b.subjects) subject_ok = subject_ok || (normalised && *normalised == s);
    if (subject_ok) return {true, "", ""};
  }
  if (bound && !address_matched)
    return {false, refusal::kCallerAddress, "calling AE title not bound to this address"};
  if (bound)
    return {false, refusal::kCallerCertificate,
            subject ? "calling AE title not bound to this certificate subject"
                    : "calling AE title needs a client certificate"};
  for (const auto& a : allowed_)
    if (a == ae) return {true, "", ""};
  if (any_) return {true, "", ""};
  return {false, refusal::kCallerUnknown, "calling AE title not in allowed_callers"};
}

}  // namespace dirgw::ingest
