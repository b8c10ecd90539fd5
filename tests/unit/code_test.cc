#include "core/code.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

namespace core {
namespace {

TEST(CodeGeneration, UsesOnlyTheAlphabetAndTheRequestedLength) {
  for (std::size_t length : {1u, 4u, 7u, 12u, 32u, 64u}) {
    std::string code = generate_code(length);
    EXPECT_EQ(code.size(), length) << "length " << length;
    for (char c : code) {
      EXPECT_NE(kCodeAlphabet.find(c), std::string_view::npos) << "char '" << c << "' in " << code;
    }
  }
}

TEST(CodeGeneration, AlphabetHasNoLookAlikesAndNoUppercase) {
  for (char c : std::string("01ilo")) {
    EXPECT_EQ(kCodeAlphabet.find(c), std::string_view::npos) << "look-alike '" << c << "'";
  }
  for (char c : kCodeAlphabet) {
    EXPECT_FALSE(c >= 'A' && c <= 'Z') << c;
  }
  EXPECT_EQ(kCodeAlphabet.size(), 31u);
  EXPECT_EQ(std::set<char>(kCodeAlphabet.begin(), kCodeAlphabet.end()).size(), 31u);
}

TEST(CodeGeneration, DefaultLengthIsSeven) { EXPECT_EQ(kDefaultCodeLength, 7u); }

TEST(CodeGeneration, SymbolsAreUniformlyDistributed) {
  // 31 symbols, 310,000 draws: each expected 10,000 times. A chi-square
  // statistic with 30 degrees of freedom above 70 has probability < 1e-4 for a
  // uniform source; a modulo-biased generator (256 % 31 != 0) lands far above.
  std::map<char, int> counts;
  constexpr int kDraws = 310000;
  std::string all = generate_code(kDraws);
  for (char c : all) ++counts[c];
  ASSERT_EQ(counts.size(), 31u);
  double chi2 = 0;
  for (auto& [symbol, count] : counts) {
    double diff = count - 10000.0;
    chi2 += diff * diff / 10000.0;
  }
  EXPECT_LT(chi2, 70.0);
}

TEST(CodeGeneration, CodesDoNotRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 20000; ++i) seen.insert(generate_code(7));
  // 20k draws from 31^7 ~ 2.75e10: a repeat has probability ~7e-3; allow one.
  EXPECT_GE(seen.size(), 19999u);
}

TEST(Aliases, FollowTheCodeRules) {
  struct Case {
    std::string alias;
    AliasCheck expected;
  };
  const Case cases[] = {
      {"promo", AliasCheck::kOk},
      {"summer-sale_2026", AliasCheck::kOk},
      {"a", AliasCheck::kOk},
      {std::string(64, 'x'), AliasCheck::kOk},
      {std::string(65, 'x'), AliasCheck::kInvalid},
      {"", AliasCheck::kInvalid},
      {"has space", AliasCheck::kInvalid},
      {"dot.ted", AliasCheck::kInvalid},
      {"slash/ed", AliasCheck::kInvalid},
      {"../etc", AliasCheck::kInvalid},
      {"caf\xc3\xa9", AliasCheck::kInvalid},
      {"per%20cent", AliasCheck::kInvalid},
      {"Upper", AliasCheck::kInvalid},  // callers lowercase first
      {"api", AliasCheck::kReserved},
      {"shorten", AliasCheck::kReserved},
      {"healthz", AliasCheck::kReserved},
      {"readyz", AliasCheck::kReserved},
      {"metrics", AliasCheck::kReserved},
      {"stats", AliasCheck::kReserved},
      {"apis", AliasCheck::kOk},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(check_alias(c.alias), c.expected) << "alias '" << c.alias << "'";
  }
}

TEST(Aliases, LowercasingIsAsciiOnly) {
  EXPECT_EQ(lowercase_ascii("PrOmO-2026_X"), "promo-2026_x");
  EXPECT_EQ(lowercase_ascii("\xc3\x89t\xc3\xa9"), "\xc3\x89t\xc3\xa9");
}

}  // namespace
}  // namespace core
