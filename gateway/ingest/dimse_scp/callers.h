// Who may call: the calling AE titles admitted (allowed_callers) and, for an AE bound in
// `callers:`, the addresses and certificate subjects it may come from. Pure: a decision from
// the AE title, the peer's address and (with TLS) its certificate subject; no sockets.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "config/config.h"

namespace dirgw::ingest {

struct Ipv4Network {
  std::uint32_t address = 0;  // host order, already masked
  int prefix = 32;
  bool contains(std::uint32_t host_order_address) const;
};

std::optional<std::uint32_t> parse_ipv4(std::string_view text);
// "10.0.0.5" (a /32) or "10.0.0.0/24".
std::optional<Ipv4Network> parse_network(std::string_view text);

// A certificate subject as compared: RFC 2253 order as given, spaces around ',' '=' dropped,
// attribute names upper-cased ("cn = pacs1, o=Lakeside" -> "CN=pacs1,O=Lakeside").
std::string normalise_subject(std::string_view subject);

struct CallerDecision {
  bool admitted = false;
  const char* code = "";  // refusal::k* when refused
  std::string why;        // our words, for the log and the refusal row
};

class Callers {
 public:
  // Fails when a binding's address does not parse (the config check prevents it).
  static Result<Callers> make(const std::vector<std::string>& allowed_callers,
                              const std::vector<config::CallerBinding>& bindings);

  // `peer_address`: the IPv4 address, without port. `subject`: the client certificate's subject
  // (RFC 2253) when the association came over TLS with one; nullopt otherwise.
  CallerDecision decide(std::string_view calling_ae, std::string_view peer_address,
                        const std::optional<std::string>& subject) const;

 private:
  struct Binding {
    std::string ae_title;
    std::vector<Ipv4Network> networks;  // empty: any address
    std::vector<std::string> subjects;  // normalised; empty: any (or no) certificate
  };
  std::vector<std::string> allowed_;
  bool any_ = false;
  std::vector<Binding> bindings_;
};

}  // namespace dirgw::ingest
