// The catalog's order part (schema 17): HL7 order priorities by accession number, and each
// study's accession number, so that a STAT order and its study meet whichever comes first
// (docs/scheduling.md, "STAT from HL7 orders").
#pragma once

#include <string>

#include "catalog/database.h"

namespace dirgw::catalog {

struct OrderRecord {
  std::string accession;  // never logged
  std::string priority;   // as sent, "" when none
  bool stat = false;
  std::string control_id, source;
};

class OrderBook {
 public:
  explicit OrderBook(Database& db) : db_(db) {}
  // One transaction (synchronous=FULL: durable before the ACK). A STAT order is remembered (never
  // lowered by a later routine one) and makes the studies already catalogued with that accession
  // STAT (priority 1; never lowers a priority). Returns how many studies became STAT.
  Result<int> record_order(const OrderRecord& order);
  // The policy stage's note of a study's accession number. Returns whether a STAT order for it
  // is on record; the study is then STAT (priority 1) already.
  Result<bool> link_study(std::int64_t study_id, const std::string& accession);

 private:
  Database& db_;
};

}  // namespace dirgw::catalog
