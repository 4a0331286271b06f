// HL7 v2 orders (ORM^O01, OMI^O23): the order's priority and the accession number that will link
// it to a study. Pure, like extract_consent (hl7.h): a message in, values out. What a STAT order
// does to a study (docs/scheduling.md, "STAT from HL7 orders") lives in policy/orders/.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"
#include "ingest/hl7_mllp/hl7.h"
#include "log/log.h"

namespace dirgw::hl7 {

struct OrderConfig {
  // Tried in order for each order in the message (the n-th ORC/OBR group reads the n-th
  // occurrence of each segment): the first that holds a value is the accession number.
  // IPC-1 (Accession Identifier, OMI in HL7 2.5+ / IHE RAD-4) then OBR-18 (Placer Field 1, where
  // IHE Scheduled Workflow puts the accession number in ORM).
  std::vector<std::string> accession_paths = {"IPC-1", "OBR-18"};
  // Tried in order: TQ1-9 (HL7 2.5+ priority), ORC-7.6 and OBR-27.6 (Quantity/Timing priority).
  std::vector<std::string> priority_paths = {"TQ1-9", "ORC-7.6", "OBR-27.6"};
  // Priority values that mean STAT (HL7 table 0027: S stat, A ASAP, R routine, ...), compared
  // case-insensitively after trimming.
  std::vector<std::string> stat_values = {"S"};
};

// kConfig naming the first path that does not parse.
Result<void> check_config(const OrderConfig& config);

struct Order {
  Phi<std::string> accession{""};  // as sent (trimmed): never logged
  std::string priority;            // as sent (trimmed), "" when no priority field held a value
  std::string priority_origin;     // which path it came from, e.g. "ORC-7.6"
  bool stat = false;
};

bool is_order_message(const Message& message);  // ORM^O01 or OMI^O23

// One Order per ORC/OBR group of an order message (at least one). kProtocol when an order has no
// accession number in any of accession_paths (the reply names no value).
Result<std::vector<Order>> extract_orders(const Message& message, const OrderConfig& config);

}  // namespace dirgw::hl7
