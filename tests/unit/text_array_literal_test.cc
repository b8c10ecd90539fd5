#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "origin/pg_link_store.h"

namespace origin {
namespace {

TEST(TextArrayLiteral, QuotesEveryElementAndEscapesQuotesAndBackslashes) {
  struct Case {
    std::vector<std::string> values;
    std::string literal;
  };
  const Case cases[] = {
      {{}, "{}"},
      {{"abc"}, R"({"abc"})"},
      {{"a", "b-c", "d_1"}, R"({"a","b-c","d_1"})"},
      {{""}, R"({""})"},
      {{"NULL"}, R"({"NULL"})"},
      {{"a,b", "{x}", " sp "}, R"({"a,b","{x}"," sp "})"},
      {{R"(say "hi")"}, R"({"say \"hi\""})"},
      {{R"(back\slash)", R"(\)"}, R"({"back\\slash","\\"})"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(text_array_literal(c.values), c.literal) << "for " << c.literal;
  }
}

}  // namespace
}  // namespace origin
