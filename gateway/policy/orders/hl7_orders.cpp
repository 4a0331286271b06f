#include "policy/orders/hl7_orders.h"

#include "log/log.h"

namespace dirgw::policy {

hl7::OrderConfig order_config(const config::Hl7Orders& c) {
  hl7::OrderConfig o;
  o.accession_paths = c.accession_fields;
  o.priority_paths = c.priority_fields;
  o.stat_values = c.stat_values;
  return o;
}

OrderHl7Sink::OrderHl7Sink(const config::Hl7Orders& config, catalog::OrderBook& orders,
                           ingest::Hl7Sink& next, std::function<void()> stat_work)
    : config_(order_config(config)),
      enabled_(config.enabled),
      orders_(orders),
      next_(next),
      stat_work_(std::move(stat_work)) {}

ingest::Hl7Verdict OrderHl7Sink::on_message(const hl7::Message& msg, const std::string& peer) {
  using hl7::AckCode;
  using hl7::AckError;
  if (!enabled_ || !hl7::is_order_message(msg)) return next_.on_message(msg, peer);
  if (auto h = hl7::check_header(msg); !h)
    return {AckCode::kAR, "message header not acceptable", AckError::kRequiredFieldMissing};
  auto orders = hl7::extract_orders(msg, config_);
  if (!orders) {
    log::warn(
        "hl7 order refused",
        {{"control_id", msg.control_id()}, {"peer", peer}, {"reason", orders.error().detail}});
    return {AckCode::kAE, "no accession number in the order", AckError::kRequiredFieldMissing};
  }
  const std::string source = msg.sending_application() + "/" + msg.sending_facility();
  int became_stat = 0;
  for (const auto& o : *orders) {
    catalog::OrderRecord rec{o.accession.reveal(), o.priority, o.stat, msg.control_id(), source};
    auto r = orders_.record_order(rec);
    if (!r)
      return {AckCode::kAE, "order could not be recorded", AckError::kApplicationInternalError};
    became_stat += *r;
    // The accession number is a patient value: a keyed HMAC tag only.
    log::info(o.stat ? "hl7 order recorded: STAT" : "hl7 order recorded",
              {{"control_id", msg.control_id()},
               {"accession", log::phi_tag(o.accession.reveal())},
               {"priority", o.priority},
               {"priority_field", o.priority_origin},
               {"studies_made_stat", std::to_string(*r)}});
  }
  if (became_stat > 0 && stat_work_) stat_work_();
  return {AckCode::kAA, "", AckError::kApplicationInternalError};
}

}  // namespace dirgw::policy
