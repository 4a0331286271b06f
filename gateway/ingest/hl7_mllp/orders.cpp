#include "ingest/hl7_mllp/orders.h"

#include <strings.h>
#include <algorithm>

#include "common/text.h"

namespace dirgw::hl7 {

namespace {

std::string trimmed(std::string_view s) { return std::string(trim_whitespace(s)); }

// The value at `path` in the n-th (1-based) occurrence of its segment; "" when absent or the HL7
// null.
std::string value_in_group(const Message& m, const std::string& path, std::size_t n) {
  auto p = Path::parse(path);
  if (!p) return "";
  p->occurrence = n;
  std::string v = trimmed(m.get(*p).value_or(""));
  return v == "\"\"" ? "" : v;
}

}  // namespace

Result<void> check_config(const OrderConfig& config) {
  for (const auto* paths : {&config.accession_paths, &config.priority_paths})
    for (const auto& p : *paths)
      if (!Path::parse(p))
        return make_error(ErrorCode::kConfig,
                          "'" + p + "' is not an HL7 field path such as OBR-18");
  return {};
}

bool is_order_message(const Message& message) {
  const std::string type = message.message_type(), event = message.trigger_event();
  return (type == "ORM" && event == "O01") || (type == "OMI" && event == "O23");
}

Result<std::vector<Order>> extract_orders(const Message& message, const OrderConfig& config) {
  const std::size_t groups =
      std::max<std::size_t>({std::size_t{1}, message.count("ORC"), message.count("OBR")});
  std::vector<Order> out;
  for (std::size_t n = 1; n <= groups; ++n) {
    Order o;
    for (const auto& path : config.accession_paths) {
      std::string v = value_in_group(message, path, n);
      if (v.empty()) continue;
      o.accession = Phi<std::string>(std::move(v));
      break;
    }
    if (o.accession.reveal().empty()) {
      std::string looked;
      for (const auto& p : config.accession_paths) looked += (looked.empty() ? "" : ", ") + p;
      return make_error(
          ErrorCode::kProtocol,
          "order " + std::to_string(n) + " has no accession number (looked in " + looked + ")");
    }
    for (const auto& path : config.priority_paths) {
      std::string v = value_in_group(message, path, n);
      if (v.empty()) continue;
      o.priority = std::move(v);
      o.priority_origin = path;
      break;
    }
    for (const auto& s : config.stat_values)
      if (!o.priority.empty() && strcasecmp(o.priority.c_str(), trimmed(s).c_str()) == 0)
        o.stat = true;
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace dirgw::hl7
