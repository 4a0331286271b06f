// HL7 orders: accession number and priority from ORM^O01 (ORC-7.6, OBR-18) and OMI^O23
// (TQ1-9, IPC-1); STAT values; one order per ORC/OBR group; no accession is an error.
#include "ingest/hl7_mllp/orders.h"

#include <gtest/gtest.h>

namespace dirgw::hl7 {
namespace {

Message parse_order(const std::string& text) { return std::move(Message::parse(text)).value(); }

const char* kOrm =
    "MSH|^~\\&|RIS|LGH|DIRGW|LGH|20261203100000||ORM^O01|C1|P|2.3.1\r"
    "ORC|NW|PL1|||||^^^^^S\r"
    "OBR|1|PL1||CT^HEAD||||||||||||||ACC1\r";

TEST(Orders, OrmPriorityFromOrc76AndAccessionFromObr18) {
  const auto m = parse_order(kOrm);
  EXPECT_TRUE(is_order_message(m));
  auto orders = extract_orders(m, {});
  ASSERT_TRUE(orders.ok());
  ASSERT_EQ(orders->size(), 1u);
  EXPECT_EQ((*orders)[0].accession.reveal(), "ACC1");
  EXPECT_EQ((*orders)[0].priority, "S");
  EXPECT_EQ((*orders)[0].priority_origin, "ORC-7.6");
  EXPECT_TRUE((*orders)[0].stat);
}

TEST(Orders, OmiPriorityFromTq19AndAccessionFromIpc1) {
  const auto m = parse_order(
      "MSH|^~\\&|RIS|LGH|DIRGW|LGH|20261203100000||OMI^O23^OMI_O23|C2|P|2.5.1\r"
      "ORC|NW|PL2\r"
      "TQ1|1||||||||s\r"
      "OBR|1|PL2||CT^HEAD||||||||||||||NOTTHIS\r"
      "IPC|ACC2|REQ2|1.2.3|SPS2\r");
  EXPECT_TRUE(is_order_message(m));
  auto orders = extract_orders(m, {});
  ASSERT_TRUE(orders.ok());
  ASSERT_EQ(orders->size(), 1u);
  EXPECT_EQ((*orders)[0].accession.reveal(), "ACC2");  // IPC-1 first
  EXPECT_EQ((*orders)[0].priority_origin, "TQ1-9");
  EXPECT_TRUE((*orders)[0].stat);  // case-insensitive
}

TEST(Orders, RoutineAndConfiguredValuesAndFields) {
  const auto m = parse_order(
      "MSH|^~\\&|RIS|LGH|DIRGW|LGH|20261203100000||ORM^O01|C3|P|2.3.1\r"
      "ORC|NW|PL3|FL3||||^^^^^A\r"
      "OBR|1|PL3|FL3|CT^HEAD\r");
  auto none = extract_orders(m, {});
  ASSERT_FALSE(none.ok());                                        // no OBR-18, no IPC
  EXPECT_EQ(none.error().detail.find("FL3"), std::string::npos);  // never quotes the message
  OrderConfig c;
  c.accession_paths = {"OBR-3"};
  auto asap = extract_orders(m, c);
  ASSERT_TRUE(asap.ok());
  EXPECT_EQ((*asap)[0].accession.reveal(), "FL3");
  EXPECT_FALSE((*asap)[0].stat);  // A (ASAP) is not S
  c.stat_values = {"S", "A"};
  EXPECT_TRUE((*extract_orders(m, c))[0].stat);
}

TEST(Orders, OneOrderPerGroup) {
  const auto m = parse_order(
      "MSH|^~\\&|RIS|LGH|DIRGW|LGH|20261203100000||ORM^O01|C4|P|2.3.1\r"
      "ORC|NW|PL4|||||^^^^^R\r"
      "OBR|1|PL4||CT^HEAD||||||||||||||ACC4A\r"
      "ORC|NW|PL5|||||^^^^^S\r"
      "OBR|2|PL5||CT^CHEST||||||||||||||ACC4B\r");
  auto orders = extract_orders(m, {});
  ASSERT_TRUE(orders.ok());
  ASSERT_EQ(orders->size(), 2u);
  EXPECT_EQ((*orders)[0].accession.reveal(), "ACC4A");
  EXPECT_FALSE((*orders)[0].stat);
  EXPECT_EQ((*orders)[1].accession.reveal(), "ACC4B");
  EXPECT_TRUE((*orders)[1].stat);
}

TEST(Orders, OtherMessagesAreNotOrders) {
  EXPECT_FALSE(is_order_message(
      parse_order("MSH|^~\\&|RIS|LGH|DIRGW|LGH|20261203100000||ADT^A08|C5|P|2.5\r")));
  EXPECT_FALSE(is_order_message(
      parse_order("MSH|^~\\&|RIS|LGH|DIRGW|LGH|20261203100000||ORM^O02|C6|P|2.5\r")));
  OrderConfig bad;
  bad.accession_paths = {"not a path"};
  EXPECT_FALSE(check_config(bad).ok());
  EXPECT_TRUE(check_config(OrderConfig{}).ok());
}

}  // namespace
}  // namespace dirgw::hl7
