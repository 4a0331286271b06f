// The text helpers under the canonical form and the exporters.
#include <gtest/gtest.h>

#include <string>

#include "audit/text.h"

namespace dirgw::audit::text {
namespace {

TEST(AuditText, Utf8Validation) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));  // é € 😀
  EXPECT_FALSE(is_valid_utf8("\xFF"));
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xE0\x80\xAF"));      // overlong
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xE2\x82"));          // truncated
  EXPECT_FALSE(is_valid_utf8("\x80"));              // lone continuation
  EXPECT_EQ(sanitize_utf8("a\xFF"
                          "b\xE2\x82"),
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(AuditText, JsonStrings) {
  std::string out;
  append_json_string(out, std::string("a\"\\\x01\x1f\x7f\xC3\xA9\xFF", 9));
  EXPECT_EQ(out, "\"a\\\"\\\\\\u0001\\u001f\x7f\xC3\xA9\\u00ff\"");
}

TEST(AuditText, XmlEscaping) {
  EXPECT_EQ(xml_escaped("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;");
  EXPECT_EQ(xml_escaped(std::string("\t\n\r\x01\x7f", 5)), "&#9;&#10;&#13;\xEF\xBF\xBD\x7f");
  EXPECT_EQ(xml_escaped("\xEF\xBF\xBE"), "\xEF\xBF\xBD");  // U+FFFE is not an XML Char
  EXPECT_EQ(xml_escaped("\xFF\xC3\xA9"), "\xEF\xBF\xBD\xC3\xA9");
}

TEST(AuditText, UtcTimestamps) {
  EXPECT_EQ(utc_timestamp_ms(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(utc_timestamp_ms(1795000123456), "2026-11-18T11:08:43.456Z");
  EXPECT_EQ(utc_timestamp_ms(1795000123007), "2026-11-18T11:08:43.007Z");
  EXPECT_EQ(utc_timestamp_ms(-1), "1969-12-31T23:59:59.999Z");
}

TEST(AuditText, Base64) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64(std::string("\xFF\x00\x80", 3)), "/wCA");
}

}  // namespace
}  // namespace dirgw::audit::text
