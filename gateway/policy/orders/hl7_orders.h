// STAT from HL7 orders: an ORM^O01 or OMI^O23 on the MLLP listener records each order's
// priority by accession number in the catalog (durably, before the ACK AA); a STAT order makes
// the study with that accession STAT whether it arrived before or after the order
// (docs/scheduling.md). Every other message goes on to the next sink (consent, links) unchanged.
#pragma once

#include <functional>
#include <string>

#include "catalog/order_book.h"
#include "config/config.h"
#include "ingest/hl7_mllp/listener.h"
#include "ingest/hl7_mllp/orders.h"

namespace dirgw::policy {

hl7::OrderConfig order_config(const config::Hl7Orders& config);

class OrderHl7Sink final : public ingest::Hl7Sink {
 public:
  // stat_work: called when studies became STAT (wakes the forwarders: a STAT study may go
  // outside the upload windows).
  OrderHl7Sink(const config::Hl7Orders& config, catalog::OrderBook& orders, ingest::Hl7Sink& next,
               std::function<void()> stat_work);
  ingest::Hl7Verdict on_message(const hl7::Message& msg, const std::string& peer) override;

 private:
  hl7::OrderConfig config_;
  bool enabled_;
  catalog::OrderBook& orders_;
  ingest::Hl7Sink& next_;
  std::function<void()> stat_work_;
};

}  // namespace dirgw::policy
