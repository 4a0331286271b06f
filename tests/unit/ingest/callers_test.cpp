// Who may call: allowed_callers, and AE titles bound to addresses and certificate subjects.
#include "ingest/dimse_scp/callers.h"

#include <gtest/gtest.h>

#include "ingest/dimse_scp/refusal.h"

namespace dirgw::ingest {
namespace {

Callers make(std::vector<std::string> allowed, std::vector<config::CallerBinding> bindings) {
  auto c = Callers::make(allowed, bindings);
  EXPECT_TRUE(c.ok());
  return std::move(c).value();
}

TEST(Callers, ParsesAddressesAndNetworks) {
  EXPECT_EQ(parse_ipv4("10.0.0.5"), 0x0a000005u);
  EXPECT_FALSE(parse_ipv4("10.0.0"));
  EXPECT_FALSE(parse_ipv4("10.0.0.256"));
  EXPECT_FALSE(parse_ipv4("10.0.0.5 "));
  EXPECT_FALSE(parse_ipv4("1000.0.0.5"));
  auto n = parse_network("10.1.2.3/16");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->address, 0x0a010000u);
  EXPECT_TRUE(n->contains(0x0a01ffffu));
  EXPECT_FALSE(n->contains(0x0a020000u));
  auto any = parse_network("0.0.0.0/0");
  ASSERT_TRUE(any);
  EXPECT_TRUE(any->contains(0xffffffffu));
  EXPECT_FALSE(parse_network("10.0.0.0/33"));
  EXPECT_FALSE(parse_network("10.0.0.0/"));
  EXPECT_EQ(parse_network("10.0.0.7")->prefix, 32);
}

TEST(Callers, AllowedCallersWithoutBindingsAdmitFromAnywhere) {
  auto c = make({"PACS1"}, {});
  EXPECT_TRUE(c.decide("PACS1", "192.168.9.9", std::nullopt).admitted);
  auto d = c.decide("PACS2", "192.168.9.9", std::nullopt);
  EXPECT_FALSE(d.admitted);
  EXPECT_STREQ(d.code, refusal::kCallerUnknown);
}

TEST(Callers, StarAdmitsAnyUnboundTitle) {
  auto c = make({"*"}, {{"PACS1", {"10.0.0.5"}, {}}});
  EXPECT_TRUE(c.decide("ANYONE", "1.2.3.4", std::nullopt).admitted);
  // A binding tightens even "*": PACS1 only from its address.
  auto d = c.decide("PACS1", "1.2.3.4", std::nullopt);
  EXPECT_FALSE(d.admitted);
  EXPECT_STREQ(d.code, refusal::kCallerAddress);
}

TEST(Callers, BoundTitleOnlyFromItsNetworks) {
  auto c = make({}, {{"PACS1", {"10.0.0.5", "10.1.0.0/16"}, {}}});
  EXPECT_TRUE(c.decide("PACS1", "10.0.0.5", std::nullopt).admitted);
  EXPECT_TRUE(c.decide("PACS1", "10.1.200.3", std::nullopt).admitted);
  auto d = c.decide("PACS1", "10.0.0.6", std::nullopt);
  EXPECT_FALSE(d.admitted);
  EXPECT_STREQ(d.code, refusal::kCallerAddress);
  EXPECT_STREQ(c.decide("OTHER", "10.0.0.5", std::nullopt).code, refusal::kCallerUnknown);
}

TEST(Callers, BoundTitleNeedsItsCertificateSubject) {
  auto c = make({}, {{"PACS1", {"127.0.0.1"}, {"CN=pacs1,O=Lakeside"}}});
  EXPECT_TRUE(c.decide("PACS1", "127.0.0.1", "CN=pacs1,O=Lakeside").admitted);
  EXPECT_TRUE(c.decide("PACS1", "127.0.0.1", "cn = pacs1, O=Lakeside").admitted);
  auto wrong = c.decide("PACS1", "127.0.0.1", "CN=intruder,O=Lakeside");
  EXPECT_FALSE(wrong.admitted);
  EXPECT_STREQ(wrong.code, refusal::kCallerCertificate);
  auto none = c.decide("PACS1", "127.0.0.1", std::nullopt);
  EXPECT_FALSE(none.admitted);
  EXPECT_STREQ(none.code, refusal::kCallerCertificate);
  EXPECT_NE(none.why.find("needs a client certificate"), std::string::npos);
  // Values are compared case-sensitively: only attribute names are normalised.
  EXPECT_FALSE(c.decide("PACS1", "127.0.0.1", "CN=PACS1,O=Lakeside").admitted);
}

TEST(Callers, AnyOfSeveralBindingsForOneTitle) {
  auto c = make({}, {{"PACS1", {"10.0.0.5"}, {"CN=a"}}, {"PACS1", {"10.0.0.6"}, {"CN=b"}}});
  EXPECT_TRUE(c.decide("PACS1", "10.0.0.6", "CN=b").admitted);
  // The right subject from the other binding's address is not enough.
  EXPECT_STREQ(c.decide("PACS1", "10.0.0.6", "CN=a").code, refusal::kCallerCertificate);
  EXPECT_STREQ(c.decide("PACS1", "10.0.0.7", "CN=a").code, refusal::kCallerAddress);
}

TEST(Callers, UnparseablePeerAddressMatchesNoNetwork) {
  auto c = make({}, {{"PACS1", {"0.0.0.0/0"}, {}}});
  EXPECT_TRUE(c.decide("PACS1", "8.8.8.8", std::nullopt).admitted);
  EXPECT_FALSE(c.decide("PACS1", "?", std::nullopt).admitted);
}

TEST(Callers, NormalisesSubjects) {
  EXPECT_EQ(normalise_subject("cn = pacs1 , o = Lakeside General"), "CN=pacs1,O=Lakeside General");
  EXPECT_EQ(normalise_subject("CN=pacs1,O=Lakeside"), "CN=pacs1,O=Lakeside");
}

TEST(Callers, BadBindingAddressIsAnError) {
  EXPECT_FALSE(Callers::make({}, {{"PACS1", {"10.0.0"}, {}}}).ok());
}

}  // namespace
}  // namespace dirgw::ingest
