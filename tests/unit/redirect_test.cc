#include "core/redirect.h"

#include <gtest/gtest.h>

#include <string>
#include <variant>
#include <vector>

#include "core/url_policy.h"

namespace core {
namespace {

struct LocationCase {
  std::string name;
  std::string target;
  std::string request_query;
  bool forward_query;
  std::string expected;
};

const std::vector<LocationCase>& location_cases() {
  static const std::vector<LocationCase> kCases = {
      {"no request query", "https://e.com/p?x=1", "", true, "https://e.com/p?x=1"},
      {"forward off", "https://e.com/p", "a=1", false, "https://e.com/p"},
      {"forward off keeps target query", "https://e.com/p?x=1#f", "a=1", false,
       "https://e.com/p?x=1#f"},
      {"empty request query with fragment", "https://e.com/p#f", "", true, "https://e.com/p#f"},
      {"target without query", "https://e.com/p", "a=1", true, "https://e.com/p?a=1"},
      {"target with query", "https://e.com/p?x=1", "a=1&b=2", true, "https://e.com/p?x=1&a=1&b=2"},
      {"target with empty query", "https://e.com/?", "a=1", true, "https://e.com/?a=1"},
      {"target query ending in '&'", "https://e.com/?x=1&", "a=1", true, "https://e.com/?x=1&a=1"},
      {"conflicting key: link wins", "https://e.com/?a=1", "a=2", true, "https://e.com/?a=1"},
      {"conflicting keys dropped, others kept in order", "https://e.com/?a=1&b=2", "b=9&c=3&a=8&d",
       true, "https://e.com/?a=1&b=2&c=3&d"},
      {"duplicate request keys kept in order", "https://e.com/", "c=1&d=2&c=3", true,
       "https://e.com/?c=1&d=2&c=3"},
      {"key without '='", "https://e.com/", "flag&x=1", true, "https://e.com/?flag&x=1"},
      {"target key without '=' wins", "https://e.com/?flag", "flag=1&y=2", true,
       "https://e.com/?flag&y=2"},
      {"request key without '=' conflicts", "https://e.com/?a=1", "a&b", true,
       "https://e.com/?a=1&b"},
      {"key ends at first '='", "https://e.com/?a=1", "a==b&a=b=c&ab=1", true,
       "https://e.com/?a=1&ab=1"},
      {"empty key is a key", "https://e.com/", "=1", true, "https://e.com/?=1"},
      {"keys compare case-sensitively", "https://e.com/?A=1", "a=2", true,
       "https://e.com/?A=1&a=2"},
      {"empty pieces dropped", "https://e.com/", "a=1&&b=2", true, "https://e.com/?a=1&b=2"},
      {"leading and trailing '&' dropped", "https://e.com/", "&a=1&", true, "https://e.com/?a=1"},
      {"only empty pieces", "https://e.com/p", "&&&", true, "https://e.com/p"},
      {"every key overridden", "https://e.com/?a=1#f", "a=2&a=3", true, "https://e.com/?a=1#f"},
      {"fragment kept after new query", "https://e.com/p#sec", "a=1", true,
       "https://e.com/p?a=1#sec"},
      {"fragment kept after merged query", "https://e.com/p?x=1#sec", "a=1", true,
       "https://e.com/p?x=1&a=1#sec"},
      {"'?' inside fragment is not a query", "https://e.com/p#s?x=1", "x=2", true,
       "https://e.com/p?x=2#s?x=1"},
      {"space encoded", "https://e.com/", "q=a b", true, "https://e.com/?q=a%20b"},
      {"quote encoded", "https://e.com/", "q=\"x\"", true, "https://e.com/?q=%22x%22"},
      {"non-ASCII encoded", "https://e.com/", "q=ü", true, "https://e.com/?q=%C3%BC"},
      {"'<' encoded", "https://e.com/", "q=<script>", true, "https://e.com/?q=%3Cscript%3E"},
      {"valid escapes kept", "https://e.com/", "q=%20x%2f", true, "https://e.com/?q=%20x%2f"},
      {"bare '%' encoded", "https://e.com/", "q=100%", true, "https://e.com/?q=100%25"},
      {"'#' in request query encoded", "https://e.com/#f", "q=a#b", true,
       "https://e.com/?q=a%23b#f"},
      {"keys compared after encoding", "https://e.com/?a%20b=1", "a b=2&c=3", true,
       "https://e.com/?a%20b=1&c=3"},
  };
  return kCases;
}

TEST(BuildLocation, MergesTheRequestQueryIntoTheTarget) {
  for (const LocationCase& test_case : location_cases()) {
    SCOPED_TRACE(test_case.name + ": target=" + test_case.target +
                 " query=" + test_case.request_query);
    EXPECT_EQ(build_location(test_case.target, test_case.request_query, test_case.forward_query),
              test_case.expected);
  }
}

TEST(BuildLocation, ResultIsStillANormalizedTarget) {
  const UrlPolicyOptions options;
  for (const LocationCase& test_case : location_cases()) {
    SCOPED_TRACE(test_case.name);
    const auto target = normalize_target(test_case.target, options);
    ASSERT_TRUE(std::holds_alternative<std::string>(target));
    ASSERT_EQ(std::get<std::string>(target), test_case.target) << "table target not normalized";
    const std::string location =
        build_location(test_case.target, test_case.request_query, test_case.forward_query);
    const auto renormalized = normalize_target(location, options);
    ASSERT_TRUE(std::holds_alternative<std::string>(renormalized));
    EXPECT_EQ(std::get<std::string>(renormalized), location);
  }
}

}  // namespace
}  // namespace core
