// The string-level rules: health numbers, UIDs, dates, character sets, identifiers, tags.
#include "policy/validate/rules.h"

#include <gtest/gtest.h>

#include "policy/decision.h"
#include "policy/tag.h"

namespace dirgw::policy {
namespace {

TEST(HealthNumber, ValidNumbers) {
  EXPECT_TRUE(valid_ontario_health_number("1234567897"));
  EXPECT_TRUE(valid_ontario_health_number("9876543217"));
  EXPECT_TRUE(valid_ontario_health_number("1000000008"));
  EXPECT_TRUE(valid_ontario_health_number("0000000000"));
}

TEST(HealthNumber, ValidWithVersionCode) {
  EXPECT_TRUE(valid_ontario_health_number("1234567897A"));
  EXPECT_TRUE(valid_ontario_health_number("1234567897AB"));
  EXPECT_TRUE(valid_ontario_health_number("1234567897ZZ"));
}

TEST(HealthNumber, CheckDigit) {
  EXPECT_EQ(check_ontario_health_number("1234567890"), HealthNumberProblem::kCheckDigit);
  EXPECT_EQ(check_ontario_health_number("1234567898"), HealthNumberProblem::kCheckDigit);
  EXPECT_EQ(check_ontario_health_number("1234567890AB"), HealthNumberProblem::kCheckDigit);
  // Two neighbouring digits swapped: Luhn catches it.
  EXPECT_EQ(check_ontario_health_number("2134567897"), HealthNumberProblem::kCheckDigit);
}

TEST(HealthNumber, WrongLength) {
  EXPECT_EQ(check_ontario_health_number(""), HealthNumberProblem::kWrongLength);
  EXPECT_EQ(check_ontario_health_number("123456789"), HealthNumberProblem::kWrongLength);
  EXPECT_EQ(check_ontario_health_number("12345678971"), HealthNumberProblem::kWrongLength);
  EXPECT_EQ(check_ontario_health_number("123456789712345"), HealthNumberProblem::kWrongLength);
}

TEST(HealthNumber, NonDigit) {
  EXPECT_EQ(check_ontario_health_number("12345X7897"), HealthNumberProblem::kNonDigit);
  EXPECT_EQ(check_ontario_health_number("123456789X"), HealthNumberProblem::kNonDigit);
  EXPECT_EQ(check_ontario_health_number("ABCDEFGHIJ"), HealthNumberProblem::kNonDigit);
  EXPECT_EQ(check_ontario_health_number("1234-567-897"), HealthNumberProblem::kNonDigit);
  EXPECT_EQ(check_ontario_health_number(" 1234567897"), HealthNumberProblem::kNonDigit);
}

TEST(HealthNumber, BadVersionCode) {
  EXPECT_EQ(check_ontario_health_number("1234567897ab"), HealthNumberProblem::kBadVersionCode);
  EXPECT_EQ(check_ontario_health_number("1234567897ABC"), HealthNumberProblem::kBadVersionCode);
  EXPECT_EQ(check_ontario_health_number("1234567897A1"), HealthNumberProblem::kBadVersionCode);
  EXPECT_EQ(check_ontario_health_number("1234567897 A"), HealthNumberProblem::kBadVersionCode);
  EXPECT_EQ(check_ontario_health_number("1234567897-"), HealthNumberProblem::kBadVersionCode);
}

TEST(HealthNumber, ReasonNames) {
  EXPECT_EQ(reason_name(HealthNumberProblem::kCheckDigit), "check_digit");
  EXPECT_EQ(reason_name(HealthNumberProblem::kWrongLength), "wrong_length");
  EXPECT_EQ(reason_name(HealthNumberProblem::kNonDigit), "non_digit");
  EXPECT_EQ(reason_name(HealthNumberProblem::kBadVersionCode), "bad_version_code");
  EXPECT_EQ(ontario_check_digit("123456789"), 7);
  EXPECT_EQ(ontario_check_digit("12345678"), -1);
  EXPECT_EQ(ontario_check_digit("12345678A"), -1);
}

TEST(Uid, WellFormed) {
  EXPECT_TRUE(check_uid("1.2.840.10008.5.1.4.1.1.2").empty());
  EXPECT_TRUE(check_uid("1.2.0.3").empty());  // a lone "0" component is fine
  EXPECT_TRUE(check_uid("0").empty());
  EXPECT_TRUE(check_uid(std::string(64, '1')).empty());
}

TEST(Uid, EachProblem) {
  using V = std::vector<UidProblem>;
  EXPECT_EQ(check_uid(""), V{UidProblem::kEmpty});
  EXPECT_EQ(check_uid(std::string(65, '1')), V{UidProblem::kTooLong});
  EXPECT_EQ(check_uid("1.2.a"), V{UidProblem::kBadCharacter});
  EXPECT_EQ(check_uid("1.2 .3"), V{UidProblem::kBadCharacter});
  EXPECT_EQ(check_uid(".1.2"), V{UidProblem::kLeadingDot});
  EXPECT_EQ(check_uid("1.2."), V{UidProblem::kTrailingDot});
  EXPECT_EQ(check_uid("1..2"), V{UidProblem::kEmptyComponent});
  EXPECT_EQ(check_uid("1.02.3"), V{UidProblem::kLeadingZero});
  EXPECT_EQ(check_uid("00"), V{UidProblem::kLeadingZero});
}

TEST(Uid, AllProblemsAtOnce) {
  std::vector<UidProblem> p = check_uid("." + std::string(70, '1') + "..01/x.");
  EXPECT_EQ(p, (std::vector<UidProblem>{UidProblem::kTooLong, UidProblem::kBadCharacter,
                                        UidProblem::kLeadingDot, UidProblem::kTrailingDot,
                                        UidProblem::kEmptyComponent, UidProblem::kLeadingZero}));
}

TEST(Da, Dates) {
  EXPECT_TRUE(valid_da("20240105"));
  EXPECT_TRUE(valid_da("20240229"));
  EXPECT_TRUE(valid_da("20000229"));
  EXPECT_FALSE(valid_da("19000229"));
  EXPECT_FALSE(valid_da("20230229"));
  EXPECT_FALSE(valid_da("20241301"));
  EXPECT_FALSE(valid_da("20240100"));
  EXPECT_FALSE(valid_da("20240431"));
  EXPECT_FALSE(valid_da("2024.01.05"));
  EXPECT_FALSE(valid_da("2024-01-05"));
  EXPECT_FALSE(valid_da("2024010"));
  EXPECT_FALSE(valid_da(""));
  EXPECT_FALSE(valid_da("20240105-20240106"));
}

TEST(Charset, SingleValues) {
  using S = std::vector<std::string>;
  EXPECT_EQ(check_specific_character_set(S{}), CharsetProblem::kNone);
  EXPECT_EQ(check_specific_character_set(S{""}), CharsetProblem::kNone);
  for (const char* term : {"ISO_IR 100", "ISO_IR 192", "GB18030", "GBK", "ISO_IR 13", "ISO_IR 166",
                           "ISO_IR 203", "ISO 2022 IR 6", "ISO 2022 IR 87"}) {
    EXPECT_EQ(check_specific_character_set(S{term}), CharsetProblem::kNone) << term;
  }
  EXPECT_EQ(check_specific_character_set(S{"ISO_IR 6"}), CharsetProblem::kAsciiAlias);
  EXPECT_EQ(check_specific_character_set(S{"ISO_IR 6", "ISO 2022 IR 87"}),
            CharsetProblem::kUnknownTerm);
  EXPECT_EQ(check_specific_character_set(S{"UTF-8"}), CharsetProblem::kUnknownTerm);
  EXPECT_EQ(check_specific_character_set(S{"iso_ir 100"}), CharsetProblem::kUnknownTerm);
}

TEST(Charset, CodeExtensions) {
  using S = std::vector<std::string>;
  EXPECT_EQ(check_specific_character_set(S{"", "ISO 2022 IR 87"}), CharsetProblem::kNone);
  EXPECT_EQ(check_specific_character_set(S{"ISO 2022 IR 6", "ISO 2022 IR 87", "ISO 2022 IR 159"}),
            CharsetProblem::kNone);
  EXPECT_EQ(check_specific_character_set(S{"ISO 2022 IR 13", "ISO 2022 IR 87"}),
            CharsetProblem::kNone);
  EXPECT_EQ(check_specific_character_set(S{"ISO_IR 100", "ISO 2022 IR 87"}),
            CharsetProblem::kInvalidCombination);
  EXPECT_EQ(check_specific_character_set(S{"ISO_IR 192", "ISO_IR 100"}),
            CharsetProblem::kInvalidCombination);
  EXPECT_EQ(check_specific_character_set(S{"ISO 2022 IR 87", "ISO 2022 IR 87"}),
            CharsetProblem::kInvalidCombination);
  EXPECT_EQ(check_specific_character_set(S{"", "ISO 2022 IR 999"}), CharsetProblem::kUnknownTerm);
  // Only the first value may be empty.
  EXPECT_EQ(check_specific_character_set(S{"ISO 2022 IR 6", ""}), CharsetProblem::kUnknownTerm);
}

TEST(Identifier, SafeValues) {
  for (const char* v : {"MRN000123", "LGH-MRN", "A.B", "LGH MRN 7", "1.2.840.10008", "x_y+z:1",
                        "ACC#12", "A^B", "a=b,c@d"}) {
    EXPECT_EQ(unsafe_identifier(v), UnsafeKind::kNone) << v;
  }
}

TEST(Identifier, UnsafeValues) {
  EXPECT_EQ(unsafe_identifier("a/b"), UnsafeKind::kPathSeparator);
  EXPECT_EQ(unsafe_identifier("a\\b"), UnsafeKind::kPathSeparator);
  EXPECT_EQ(unsafe_identifier("../etc"), UnsafeKind::kPathSeparator);
  EXPECT_EQ(unsafe_identifier(".."), UnsafeKind::kDotDot);
  EXPECT_EQ(unsafe_identifier("a..b"), UnsafeKind::kDotDot);
  EXPECT_EQ(unsafe_identifier(std::string("a\0b", 3)), UnsafeKind::kControl);
  EXPECT_EQ(unsafe_identifier("a\nb"), UnsafeKind::kControl);
  EXPECT_EQ(unsafe_identifier("a\x7f"), UnsafeKind::kControl);
  for (const char* v :
       {"x;rm", "a|b", "a&b", "$HOME", "`id`",         "a<b",   "a>b",  "(x)",  "{x}",  "[x]",
        "a*",   "a?",  "a!",  "~root", "1' OR '1'='1", "\"q\"", "100%", "a--b", "a/*b", "b*/"}) {
    EXPECT_NE(unsafe_identifier(v), UnsafeKind::kNone) << v;
  }
  EXPECT_EQ(unsafe_identifier("1' OR '1'='1"), UnsafeKind::kMetacharacter);
}

TEST(Tag, ParseAndPrint) {
  EXPECT_EQ(Tag::parse("(0010,0020)"), (Tag{0x0010, 0x0020}));
  EXPECT_EQ(Tag::parse("0010,0020"), (Tag{0x0010, 0x0020}));
  EXPECT_EQ(Tag::parse("7fe00010"), (Tag{0x7FE0, 0x0010}));
  EXPECT_FALSE(Tag::parse("(0010,002G)"));
  EXPECT_FALSE(Tag::parse("(0010,00200)"));
  EXPECT_FALSE(Tag::parse(""));
  EXPECT_EQ((Tag{0x7FE0, 0x0010}).to_string(), "(7FE0,0010)");
}

TEST(Decision, Kinds) {
  EXPECT_TRUE(Decision::accept().accepted());
  Decision h = Decision::hold("consent.none");
  EXPECT_TRUE(h.held());
  EXPECT_EQ(h.reasons, std::vector<std::string>{"consent.none"});
  Decision r = Decision::reject({"a", "b"});
  EXPECT_TRUE(r.rejected());
  EXPECT_EQ(r.reasons.size(), 2u);
}

}  // namespace
}  // namespace dirgw::policy
