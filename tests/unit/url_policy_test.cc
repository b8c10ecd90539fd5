#include "core/url_policy.h"

#include <gtest/gtest.h>

#include <string>
#include <variant>
#include <vector>

namespace core {
namespace {

using namespace std::string_literals;

struct AcceptCase {
  std::string input;
  std::string expected;
};

struct RejectCase {
  std::string input;
  std::string expected_code;
};

UrlPolicyOptions test_options() {
  UrlPolicyOptions options;
  options.own_hosts = {"sho.rt", "go.example.com"};
  return options;
}

// Printable form of an input for failure messages: control and non-ASCII bytes as \xNN.
std::string printable(const std::string& text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7f) {
      out += "\\x";
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0x0F]);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

const std::vector<AcceptCase>& accepted_cases() {
  static const std::vector<AcceptCase> kCases = {
      // Already normalized.
      {"https://example.com/", "https://example.com/"},
      {"http://example.com/a/b?c=d#e", "http://example.com/a/b?c=d#e"},
      // Empty path becomes "/", also before a query or fragment.
      {"http://example.com", "http://example.com/"},
      {"https://example.com?q=1", "https://example.com/?q=1"},
      {"https://example.com#top", "https://example.com/#top"},
      // Empty query and fragment markers are kept.
      {"https://example.com/?", "https://example.com/?"},
      {"https://example.com/#", "https://example.com/#"},
      // Scheme and host lowercased; path case kept.
      {"HTTPS://EXAMPLE.COM/Path?Q=A#F", "https://example.com/Path?Q=A#F"},
      {"HtTp://Example.Com/", "http://example.com/"},
      // Ports: default dropped, others kept in plain decimal.
      {"http://example.com:80/", "http://example.com/"},
      {"https://example.com:443/a", "https://example.com/a"},
      {"http://example.com:443/", "http://example.com:443/"},
      {"https://example.com:80/", "https://example.com:80/"},
      {"https://example.com:8443/", "https://example.com:8443/"},
      {"https://example.com:08443/", "https://example.com:8443/"},
      {"https://example.com:1/", "https://example.com:1/"},
      {"https://example.com:65535/", "https://example.com:65535/"},
      {"https://example.com:/", "https://example.com/"},
      {"https://example.com:443", "https://example.com/"},
      // IDN hosts become punycode (IDNA2008, non-transitional, UTS #46 mapping).
      {"https://bücher.example/", "https://xn--bcher-kva.example/"},
      {"https://BÜCHER.example/", "https://xn--bcher-kva.example/"},
      {"https://faß.de/", "https://xn--fa-hia.de/"},
      {"https://例え。テスト/", "https://xn--r8jz45g.xn--zckzah/"},
      {"https://ｅｘａｍｐｌｅ.com/", "https://example.com/"},
      {"https://XN--BCHER-KVA.example/", "https://xn--bcher-kva.example/"},
      {"https://bücher.example:8080/ü", "https://xn--bcher-kva.example:8080/%C3%BC"},
      // ASCII labels are not held to IDNA's "--" rule.
      {"https://r3---sn-abc.googlevideo.com/", "https://r3---sn-abc.googlevideo.com/"},
      {"https://a-b.example/", "https://a-b.example/"},
      {"https://" + std::string(63, 'a') + ".example/",
       "https://" + std::string(63, 'a') + ".example/"},
      // A single trailing dot is kept.
      {"https://example.com./", "https://example.com./"},
      // Non-ASCII path, query and fragment bytes are percent-encoded in uppercase hex.
      {"https://example.com/ä", "https://example.com/%C3%A4"},
      {"https://example.com/?q=日本", "https://example.com/?q=%E6%97%A5%E6%9C%AC"},
      {"https://example.com/#ü", "https://example.com/#%C3%BC"},
      // Valid escapes are kept byte for byte, broken ones have their '%' encoded.
      {"https://example.com/a%20b", "https://example.com/a%20b"},
      {"https://example.com/a%2fb?x=%C3%a4", "https://example.com/a%2fb?x=%C3%a4"},
      {"https://example.com/100%", "https://example.com/100%25"},
      {"https://example.com/%zz", "https://example.com/%25zz"},
      {"https://example.com/%4", "https://example.com/%254"},
      {"https://example.com/%4g", "https://example.com/%254g"},
      {"https://example.com/?q=%", "https://example.com/?q=%25"},
      {"https://example.com/#%g1", "https://example.com/#%25g1"},
      // Bytes outside the allowed set are encoded in path, query and fragment.
      {"https://example.com/\"quoted\"", "https://example.com/%22quoted%22"},
      {"https://example.com/a\\b", "https://example.com/a%5Cb"},
      {"https://example.com/<script>", "https://example.com/%3Cscript%3E"},
      {"https://example.com/a^b`c", "https://example.com/a%5Eb%60c"},
      {"https://example.com/{x}|y", "https://example.com/%7Bx%7D%7Cy"},
      {"https://example.com/?q=<b>&r={1}", "https://example.com/?q=%3Cb%3E&r=%7B1%7D"},
      {"https://example.com/#a|b\"c", "https://example.com/#a%7Cb%22c"},
      {"https://example.com/?a[]=1", "https://example.com/?a%5B%5D=1"},
      // The first '#' starts the fragment; later ones are encoded.
      {"https://example.com/p#frag#more", "https://example.com/p#frag%23more"},
      {"https://example.com/p?q=1#f?g=2", "https://example.com/p?q=1#f?g=2"},
      // Sub-delims, ':', '@', '/', '?' are kept.
      {"https://example.com/$price;v=1", "https://example.com/$price;v=1"},
      {"https://example.com/it's?a='b'", "https://example.com/it's?a='b'"},
      {"https://example.com/a?b?c", "https://example.com/a?b?c"},
      {"https://example.com/a:b@c/!*(),+=~_-.", "https://example.com/a:b@c/!*(),+=~_-."},
      // Dot segments are left alone.
      {"https://example.com/a/../b", "https://example.com/a/../b"},
      // IP literals.
      {"http://192.168.0.1/", "http://192.168.0.1/"},
      {"http://192.168.0.1:8080/x", "http://192.168.0.1:8080/x"},
      {"http://[::1]:8080/", "http://[::1]:8080/"},
      {"http://[::1]:80/", "http://[::1]/"},
      {"http://[2001:DB8::1]/", "http://[2001:db8::1]/"},
      {"http://[2001:db8:0:0:0:0:0:1]/", "http://[2001:db8::1]/"},
      {"http://[::ffff:192.0.2.1]/", "http://[::ffff:192.0.2.1]/"},
      // A different host of the same domain is not the service itself.
      {"https://www.sho.rt/", "https://www.sho.rt/"},
      {"https://example.com/" + std::string(2028, 'a'),
       "https://example.com/" + std::string(2028, 'a')},
  };
  return kCases;
}

const std::vector<RejectCase>& rejected_cases() {
  static const std::vector<RejectCase> kCases = {
      {"", "url_empty"},
      // Scheme.
      {"javascript:alert(1)", "url_scheme"},
      {"JavaScript:alert(1)", "url_scheme"},
      {"data:text/html,<script>alert(1)</script>", "url_scheme"},
      {"ftp://example.com/", "url_scheme"},
      {"mailto:a@example.com", "url_scheme"},
      {"file:///etc/passwd", "url_scheme"},
      {"localhost:8080/x", "url_scheme"},
      // Not absolute.
      {"http:/example.com", "url_not_absolute"},
      {"http:example.com", "url_not_absolute"},
      {"https:\\\\evil.com", "url_not_absolute"},
      {"https:/\\evil.com", "url_not_absolute"},
      {"//example.com/", "url_not_absolute"},
      {"example.com/path", "url_not_absolute"},
      {"/relative", "url_not_absolute"},
      {"1http://example.com/", "url_not_absolute"},
      {":", "url_not_absolute"},
      // Empty host.
      {"https://", "url_host"},
      {"https:///path", "url_host"},
      {"https:////evil.com", "url_host"},
      {"https://:443/", "url_host"},
      {"https://?q=1", "url_host"},
      // Port.
      {"https://example.com:0/", "url_port"},
      {"https://example.com:65536/", "url_port"},
      {"https://example.com:99999999999999999999/", "url_port"},
      {"https://example.com:8o/", "url_port"},
      {"https://example.com:-1/", "url_port"},
      {"https://example.com:+80/", "url_port"},
      {"https://example.com:80:80/", "url_port"},
      {"http://[::1]:0/", "url_port"},
      // Userinfo.
      {"https://bank.com@evil.example/", "url_userinfo"},
      {"https://user:pw@x.com/", "url_userinfo"},
      {"https://@x.com/", "url_userinfo"},
      {"https://bank.com:443@evil.example/", "url_userinfo"},
      // Percent-encoded hosts, backslashes.
      {"https://bank.com%40evil.example/", "url_host"},
      {"https://ex%61mple.com/", "url_host"},
      {"https://evil.com\\@good.com/", "url_host"},
      {"https://evil.com\\good.com", "url_host"},
      // Host characters and label rules.
      {"https://exa_mple.com/", "url_host"},
      {"https://ex!ample.com/", "url_host"},
      {"https://ex*ample.com/", "url_host"},
      {"https://a..b/", "url_host"},
      {"https://.example.com/", "url_host"},
      {"https://example.com../", "url_host"},
      {"https://./", "url_host"},
      {"https://-a.example/", "url_host"},
      {"https://a-.example/", "url_host"},
      {"https://" + std::string(64, 'a') + ".example/", "url_host"},
      {"https://" +
           std::string(250, 'a')
               .replace(50, 1, ".")
               .replace(100, 1, ".")
               .replace(150, 1, ".")
               .replace(200, 1, ".") +
           ".com/",
       "url_host"},
      {"https://a＠b.com/", "url_host"},
      {"https://a／b.com/", "url_host"},
      {"https://ü_x.com/", "url_host"},
      // Invalid IDN.
      {"https://☃.net/", "url_idn"},
      {"https://xn--zz.com/", "url_idn"},
      {"https://xn--n3h.com/", "url_idn"},
      {"https://a\u200db.com/", "url_idn"},
      {"https://ab--ü.com/", "url_idn"},
      {"https://" + std::string(70, 'a') + "ü.com/", "url_idn"},
      // Numeric hosts that browsers would read as other IPv4 addresses.
      {"http://2130706433/", "url_host"},
      {"http://0x7f.0.0.1/", "url_host"},
      {"http://example.0x7f/", "url_host"},
      {"http://010.0.0.1/", "url_host"},
      {"http://256.0.0.1/", "url_host"},
      {"http://1.2.3/", "url_host"},
      {"http://1.2.3.4.5/", "url_host"},
      // IPv6 literals.
      {"http://[::1/", "url_host"},
      {"http://[::g]/", "url_host"},
      {"http://[]/", "url_host"},
      {"http://[fe80::1%25eth0]/", "url_host"},
      {"http://[::1]x/", "url_host"},
      {"http://[v1.x]/", "url_host"},
      {"http://[1:2:3:4:5:6:7:8:9]/", "url_host"},
      // Own host, in any spelling.
      {"https://sho.rt/x", "url_own_host"},
      {"https://SHO.RT/", "url_own_host"},
      {"https://sho.rt:8443/", "url_own_host"},
      {"http://sho.rt:80/", "url_own_host"},
      {"https://sho.rt./", "url_own_host"},
      {"https://ｓｈｏ.ｒｔ/", "url_own_host"},
      {"https://sh\u00ado.rt/", "url_own_host"},
      {"https://Go.Example.Com/abc", "url_own_host"},
      // Control characters anywhere.
      {"https://example.com/\r\nSet-Cookie:x=1", "url_control_chars"},
      {"https://example.com/\n", "url_control_chars"},
      {"https://exa\tmple.com/", "url_control_chars"},
      {"\thttps://example.com/", "url_control_chars"},
      {"https://example.com/\0evil"s, "url_control_chars"},
      {"https://example.com/\x7f", "url_control_chars"},
      {"https://example.com/\x1b[31m", "url_control_chars"},
      {"https://example.com/\xc2\x85", "url_control_chars"},
      // Spaces anywhere.
      {" https://example.com/", "url_whitespace"},
      {"https://example.com/ ", "url_whitespace"},
      {"https://example.com/a b", "url_whitespace"},
      {"https://example.com/?q=a b", "url_whitespace"},
      {"https://exa mple.com/", "url_whitespace"},
      {"https://example.com/\xe3\x80\x80 ", "url_whitespace"},
      // Invalid UTF-8.
      {"https://example.com/\xff", "url_invalid_utf8"},
      {"https://example.com/\xc3", "url_invalid_utf8"},
      {"https://example.com/\xc0\xaf", "url_invalid_utf8"},
      {"https://example.com/\xe0\x80\xaf", "url_invalid_utf8"},
      {"https://example.com/\xed\xa0\x80", "url_invalid_utf8"},
      {"https://example.com/\xf4\x90\x80\x80", "url_invalid_utf8"},
      {"https://example.com/\x80", "url_invalid_utf8"},
      {"https://b\xfc"
       "cher.example/",
       "url_invalid_utf8"},
      // Length.
      {"https://example.com/" + std::string(2029, 'a'), "url_too_long"},
      {"https://example.com/" + std::string(700, '<'), "url_too_long"},
  };
  return kCases;
}

TEST(UrlPolicy, AcceptsAndNormalizesGoodTargets) {
  const UrlPolicyOptions options = test_options();
  for (const AcceptCase& test_case : accepted_cases()) {
    SCOPED_TRACE("input: " + printable(test_case.input));
    const auto result = normalize_target(test_case.input, options);
    ASSERT_TRUE(std::holds_alternative<std::string>(result))
        << "refused with " << std::get<UrlRejection>(result).code << ": "
        << std::get<UrlRejection>(result).message;
    EXPECT_EQ(std::get<std::string>(result), test_case.expected);
  }
}

TEST(UrlPolicy, RefusesHostileTargetsWithTheirCode) {
  const UrlPolicyOptions options = test_options();
  for (const RejectCase& test_case : rejected_cases()) {
    SCOPED_TRACE("input: " + printable(test_case.input));
    const auto result = normalize_target(test_case.input, options);
    ASSERT_TRUE(std::holds_alternative<UrlRejection>(result))
        << "accepted as " << printable(std::get<std::string>(result));
    EXPECT_EQ(std::get<UrlRejection>(result).code, test_case.expected_code)
        << std::get<UrlRejection>(result).message;
  }
}

TEST(UrlPolicy, NormalizingANormalizedTargetChangesNothing) {
  const UrlPolicyOptions options = test_options();
  for (const AcceptCase& test_case : accepted_cases()) {
    SCOPED_TRACE("input: " + printable(test_case.expected));
    const auto result = normalize_target(test_case.expected, options);
    ASSERT_TRUE(std::holds_alternative<std::string>(result));
    EXPECT_EQ(std::get<std::string>(result), test_case.expected);
  }
}

TEST(UrlPolicy, NormalizedTargetsHoldOnlySafePrintableAscii) {
  const UrlPolicyOptions options = test_options();
  for (const AcceptCase& test_case : accepted_cases()) {
    SCOPED_TRACE("input: " + printable(test_case.input));
    const auto result = normalize_target(test_case.input, options);
    ASSERT_TRUE(std::holds_alternative<std::string>(result));
    for (const char c : std::get<std::string>(result)) {
      EXPECT_TRUE(c > ' ' && c < 0x7f) << "byte " << static_cast<int>(c);
      EXPECT_EQ(std::string("\"\\<>^`{|}").find(c), std::string::npos) << "byte " << c;
    }
  }
}

TEST(UrlPolicy, MessagesAreOneSentenceAndDoNotEchoTheInput) {
  const UrlPolicyOptions options = test_options();
  for (const RejectCase& test_case : rejected_cases()) {
    SCOPED_TRACE("input: " + printable(test_case.input));
    const auto result = normalize_target(test_case.input, options);
    ASSERT_TRUE(std::holds_alternative<UrlRejection>(result));
    const std::string& message = std::get<UrlRejection>(result).message;
    ASSERT_FALSE(message.empty());
    EXPECT_EQ(message.back(), '.');
    EXPECT_LT(message.size(), 160u);
    // Past "https://", at least 8 bytes: long enough that a match means an echo.
    if (test_case.input.size() >= 16) {
      EXPECT_EQ(message.find(test_case.input.substr(8)), std::string::npos) << message;
    }
  }
  const auto result = normalize_target("https://user:SECRETPW@x.com/", options);
  ASSERT_TRUE(std::holds_alternative<UrlRejection>(result));
  EXPECT_EQ(std::get<UrlRejection>(result).message.find("SECRETPW"), std::string::npos);
}

TEST(UrlPolicy, InvalidIdnMessageNamesTheProblem) {
  const auto result = normalize_target("https://☃.net/", test_options());
  ASSERT_TRUE(std::holds_alternative<UrlRejection>(result));
  EXPECT_EQ(std::get<UrlRejection>(result).message,
            "The host is not a valid internationalized domain name (string contains a "
            "disallowed character).");
}

TEST(UrlPolicy, AcceptsExactlyMaxLengthAndRefusesOneMore) {
  const std::string prefix = "https://example.com/";
  const std::string exact = prefix + std::string(2048 - prefix.size(), 'x');
  ASSERT_EQ(exact.size(), 2048u);
  const auto accepted = normalize_target(exact, test_options());
  ASSERT_TRUE(std::holds_alternative<std::string>(accepted));
  EXPECT_EQ(std::get<std::string>(accepted), exact);

  const auto refused = normalize_target(exact + "x", test_options());
  ASSERT_TRUE(std::holds_alternative<UrlRejection>(refused));
  EXPECT_EQ(std::get<UrlRejection>(refused).code, "url_too_long");
}

TEST(UrlPolicy, MaxLengthOptionBoundsInputAndResult) {
  UrlPolicyOptions options;
  options.max_length = 24;
  const auto fits = normalize_target("https://example.com/abcd", options);
  ASSERT_TRUE(std::holds_alternative<std::string>(fits));

  const auto grows = normalize_target("https://example.com/ab<", options);
  ASSERT_TRUE(std::holds_alternative<UrlRejection>(grows));
  EXPECT_EQ(std::get<UrlRejection>(grows).code, "url_too_long");

  const auto empty_path = normalize_target("https://example.com:443", options);
  ASSERT_TRUE(std::holds_alternative<std::string>(empty_path));
  EXPECT_EQ(std::get<std::string>(empty_path), "https://example.com/");
}

TEST(UrlPolicy, RefusesOwnHostGivenAsIpLiteralInAnySpelling) {
  UrlPolicyOptions options;
  options.own_hosts = {"127.0.0.1", "[::1]", "xn--bcher-kva.example"};
  const std::vector<std::string> inputs = {
      "http://127.0.0.1:8080/", "http://[::1]/", "http://[0:0:0:0:0:0:0:1]:8080/",
      "https://bücher.example/", "https://XN--BCHER-KVA.EXAMPLE./"};
  for (const std::string& input : inputs) {
    SCOPED_TRACE("input: " + printable(input));
    const auto result = normalize_target(input, options);
    ASSERT_TRUE(std::holds_alternative<UrlRejection>(result));
    EXPECT_EQ(std::get<UrlRejection>(result).code, "url_own_host");
  }
}

TEST(UrlPolicy, NormalizeQueryEncodesLikeATargetQuery) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", ""},
      {"a=1&b=2", "a=1&b=2"},
      {"q=a b", "q=a%20b"},
      {"q=\"x\"", "q=%22x%22"},
      {"q=ü", "q=%C3%BC"},
      {"q=<script>", "q=%3Cscript%3E"},
      {"a#b", "a%23b"},
      {"%41%2f", "%41%2f"},
      {"%", "%25"},
      {"%4g", "%254g"},
      {"x=\xff", "x=%FF"},
      {"x=\n", "x=%0A"},
      {"a+b=c?d/e:f@g", "a+b=c?d/e:f@g"},
      {"a[0]={|}^`\\", "a%5B0%5D=%7B%7C%7D%5E%60%5C"},
  };
  for (const auto& [query, expected] : cases) {
    SCOPED_TRACE("query: " + printable(query));
    EXPECT_EQ(normalize_query(query), expected);
  }
  for (const AcceptCase& test_case : accepted_cases()) {
    const std::size_t question = test_case.input.find('?');
    if (question == std::string::npos) continue;
    const std::string query =
        test_case.input.substr(question + 1, test_case.input.find('#') - question - 1);
    const std::string& expected = test_case.expected;
    const std::size_t expected_question = expected.find('?');
    SCOPED_TRACE("input: " + printable(test_case.input));
    EXPECT_EQ(normalize_query(query),
              expected.substr(expected_question + 1, expected.find('#') - expected_question - 1));
  }
}

}  // namespace
}  // namespace core
