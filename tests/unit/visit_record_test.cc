#include "core/visit_record.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <variant>

namespace core {
namespace {

constexpr std::int64_t kSampleMs = 1795812400123;  // 2026-11-27T20:46:40.123Z

VisitRecord sample_record() {
  VisitRecord record;
  record.time = from_unix_ms(kSampleMs);
  record.code = "abc";
  record.ip = "203.0.113.0";
  record.user_agent = "Mozilla/5.0";
  record.referrer = "https://example.com/";
  record.status = 307;
  record.source = "origin";
  return record;
}

// Returns the parsed record; fails the calling test (tagged with `line`) if
// the line is refused.
VisitRecord parse_ok(const std::string& line) {
  auto result = parse_visit_line(line);
  if (const auto* reason = std::get_if<std::string>(&result)) {
    ADD_FAILURE() << "refused: " << *reason << "\nline: " << line;
    return {};
  }
  return std::get<VisitRecord>(result);
}

std::string parse_error(const std::string& line) {
  auto result = parse_visit_line(line);
  if (const auto* reason = std::get_if<std::string>(&result)) return *reason;
  return "";
}

bool is_valid_utf8(const std::string& text) { return to_valid_utf8(text) == text; }

// A line as nginx's escape=json would write it around the given raw values.
std::string nginx_line(const std::string& time, const std::string& code, const std::string& ua,
                       const std::string& status = "307") {
  return "{\"time\":\"" + time + "\",\"code\":\"" + code + "\",\"ip\":\"203.0.113.7\",\"ua\":\"" +
         ua + "\",\"ref\":\"\",\"status\":" + status + ",\"src\":\"edge\"}\n";
}

TEST(VisitRecord, FormatsTheDocumentedShape) {
  EXPECT_EQ(format_visit_line(sample_record()),
            "{\"time\":\"2026-11-27T20:46:40.123Z\",\"code\":\"abc\",\"ip\":\"203.0.113.0\","
            "\"ua\":\"Mozilla/5.0\",\"ref\":\"https://example.com/\",\"status\":307,"
            "\"src\":\"origin\"}\n");
}

TEST(VisitRecord, RoundTripsHostileText) {
  struct Case {
    const char* name;
    std::string input;     // written as user agent and referrer
    std::string expected;  // what parsing the line gives back
  };
  const std::string fffd = "\xEF\xBF\xBD";
  const Case cases[] = {
      {"plain", "Mozilla/5.0 (X11)", "Mozilla/5.0 (X11)"},
      {"quotes", "say \"hi\" 'there'", "say \"hi\" 'there'"},
      {"backslashes", "C:\\path\\\\x\\", "C:\\path\\\\x\\"},
      {"newlines", "a\nb\r\nc", "a\nb\r\nc"},
      {"tab and controls", "a\tb\x01\x1f\x7f", "a\tb\x01\x1f\x7f"},
      {"fake json", "\",\"status\":200,\"x\":\"", "\",\"status\":200,\"x\":\""},
      {"nul", std::string("a\0b", 3), "a" + fffd + "b"},
      {"non-ascii", "Gr\xC3\xBC\xC3\x9F \xE2\x82\xAC \xF0\x9F\x98\x80",
       "Gr\xC3\xBC\xC3\x9F \xE2\x82\xAC \xF0\x9F\x98\x80"},
      {"lone 0xff",
       "a\xFF"
       "b",
       "a" + fffd + "b"},
      {"truncated sequence", "a\xE2\x82", "a" + fffd},
      {"overlong slash", "\xC0\xAF", fffd + fffd},
      {"encoded surrogate", "\xED\xA0\x80", fffd + fffd + fffd},
      {"above U+10FFFF", "\xF4\x90\x80\x80", fffd + fffd + fffd + fffd},
      {"stray continuation", "\x80x", fffd + "x"},
      {"line separators", "\xE2\x80\xA8\xE2\x80\xA9", "\xE2\x80\xA8\xE2\x80\xA9"},
      {"empty", "", ""},
  };
  for (const Case& c : cases) {
    VisitRecord record = sample_record();
    record.user_agent = c.input;
    record.referrer = c.input;
    const std::string line = format_visit_line(record);
    EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << c.name;
    EXPECT_EQ(line.back(), '\n') << c.name;
    EXPECT_TRUE(is_valid_utf8(line)) << c.name;
    VisitRecord parsed = parse_ok(line);
    EXPECT_EQ(parsed.user_agent, c.expected) << c.name;
    EXPECT_EQ(parsed.referrer, c.expected) << c.name;
    EXPECT_EQ(parsed.code, "abc") << c.name;
    EXPECT_EQ(parsed.status, 307) << c.name;
    EXPECT_EQ(to_unix_ms(parsed.time), kSampleMs) << c.name;
  }
}

TEST(VisitRecord, RoundTripsEveryField) {
  VisitRecord record = sample_record();
  record.ip = "2001:db8:abcd::";
  record.status = 404;
  record.source = "edge";
  VisitRecord parsed = parse_ok(format_visit_line(record));
  EXPECT_EQ(to_unix_ms(parsed.time), kSampleMs);
  EXPECT_EQ(parsed.code, record.code);
  EXPECT_EQ(parsed.ip, record.ip);
  EXPECT_EQ(parsed.user_agent, record.user_agent);
  EXPECT_EQ(parsed.referrer, record.referrer);
  EXPECT_EQ(parsed.status, record.status);
  EXPECT_EQ(parsed.source, record.source);
}

TEST(VisitRecord, CapsTextAtACharacterBoundary) {
  struct Case {
    const char* name;
    std::string unit;  // repeated to 10 KB
    std::size_t ua_bytes;
    std::size_t ref_bytes;
  };
  const Case cases[] = {
      {"ascii", "a", 512, 1024},
      {"two-byte", "\xC3\xA9", 512, 1024},
      {"three-byte", "\xE2\x82\xAC", 510, 1023},
      {"four-byte", "\xF0\x9F\x98\x80", 512, 1024},
      {"escaped controls", "\x01", 512, 1024},
      {"invalid bytes", "\xFF", 510, 1023},  // each becomes 3-byte U+FFFD
  };
  for (const Case& c : cases) {
    std::string big;
    while (big.size() < 10 * 1024) big += c.unit;
    VisitRecord record = sample_record();
    record.user_agent = big;
    record.referrer = big;
    const std::string line = format_visit_line(record);
    EXPECT_LT(line.size(), kMaxVisitLineBytes) << c.name;
    VisitRecord parsed = parse_ok(line);
    EXPECT_EQ(parsed.user_agent.size(), c.ua_bytes) << c.name;
    EXPECT_EQ(parsed.referrer.size(), c.ref_bytes) << c.name;
    EXPECT_TRUE(is_valid_utf8(parsed.user_agent)) << c.name;
    EXPECT_TRUE(is_valid_utf8(parsed.referrer)) << c.name;
  }
}

TEST(VisitRecord, CapUtf8NeverSplitsACharacter) {
  struct Case {
    std::string text;
    std::size_t max;
    std::string expected;
  };
  const Case cases[] = {
      {"abc", 5, "abc"},
      {"abc", 2, "ab"},
      {"abc", 0, ""},
      {"a\xE2\x82\xAC", 3, "a"},
      {"a\xE2\x82\xAC", 4, "a\xE2\x82\xAC"},
      {"\xF0\x9F\x98\x80", 3, ""},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(cap_utf8(c.text, c.max), c.expected) << c.text << " / " << c.max;
  }
}

TEST(VisitRecord, ParsesWhatNginxWrites) {
  struct Case {
    const char* name;
    std::string line;
    std::string code;
    std::string ua;
  };
  const Case cases[] = {
      // nginx escapes '"' and '\\' with a backslash and bytes below 0x20 as
      // \n, \r, \t, \b, \f or \u00XX.
      {"escapes",
       nginx_line("1795812400.123", "abc", "q\\\"uote\\\\ \\n\\r\\t\\b\\f \\u0001\\u001F"), "abc",
       "q\"uote\\ \n\r\t\b\f \x01\x1f"},
      {"uppercase code is lowercased", nginx_line("1795812400.123", "AbC-_9", "x"), "abc-_9", "x"},
      {"escaped nul is replaced", nginx_line("1795812400.123", "abc", "a\\u0000b"), "abc",
       "a\xEF\xBF\xBD"
       "b"},
      {"raw utf-8 passes", nginx_line("1795812400.123", "abc", "\xC3\xBC"), "abc", "\xC3\xBC"},
      {"no trailing newline",
       "{\"time\":\"1795812400.123\",\"code\":\"abc\",\"status\":307,"
       "\"src\":\"edge\"}",
       "abc", ""},
      {"unknown fields ignored",
       "{\"time\":\"1795812400.123\",\"code\":\"abc\",\"status\":301,\"src\":\"edge\","
       "\"host\":\"s.example\",\"rt\":0.000}\n",
       "abc", ""},
  };
  for (const Case& c : cases) {
    VisitRecord parsed = parse_ok(c.line);
    EXPECT_EQ(parsed.code, c.code) << c.name;
    EXPECT_EQ(parsed.user_agent, c.ua) << c.name;
    EXPECT_EQ(parsed.source, "edge") << c.name;
    EXPECT_EQ(to_unix_ms(parsed.time), kSampleMs) << c.name;
  }
}

TEST(VisitRecord, AcceptsBothTimeForms) {
  struct Case {
    const char* time;
    std::int64_t ms;
  };
  const Case cases[] = {
      {"1795812400.123", 1795812400123},
      {"1795812400", 1795812400000},
      {"1795812400.1", 1795812400100},
      {"1795812400.123456789", 1795812400123},
      {"0.000", 0},
      {"2026-11-27T20:46:40.123Z", 1795812400123},
      {"2026-11-27T20:46:40Z", 1795812400000},
      {"2026-11-27T21:46:40.123+01:00", 1795812400123},
      {"2026-11-27T20:46:40+00:00", 1795812400000},
  };
  for (const Case& c : cases) {
    VisitRecord parsed = parse_ok(nginx_line(c.time, "abc", ""));
    EXPECT_EQ(to_unix_ms(parsed.time), c.ms) << c.time;
  }
}

TEST(VisitRecord, RefusesBadTimes) {
  for (const char* time :
       {"", "now", "1795812400.", ".123", "-1.000", "1e9", "1795812400.1234567890",
        "9999999999999.000", "253402300800.000", " 1795812400.123", "1795812400,123",
        "2026-11-27T20:46:40", "2026-11-27 20:46:40Z", "0x10"}) {
    EXPECT_EQ(parse_error(nginx_line(time, "abc", "")),
              "field \"time\" must be RFC 3339 with a zone or Unix seconds such as "
              "1795812400.123")
        << "'" << time << "'";
  }
}

TEST(VisitRecord, MissingOptionalFieldsAreEmpty) {
  VisitRecord parsed = parse_ok(
      "{\"time\":\"2026-11-27T20:46:40.123Z\",\"code\":\"abc\",\"status\":307,"
      "\"src\":\"origin\"}\n");
  EXPECT_EQ(parsed.ip, "");
  EXPECT_EQ(parsed.user_agent, "");
  EXPECT_EQ(parsed.referrer, "");
  EXPECT_EQ(parsed.source, "origin");
}

TEST(VisitRecord, RefusesMalformedLinesWithAReason) {
  const std::string ok_tail = ",\"status\":307,\"src\":\"edge\"}";
  const std::string ok_head = "{\"time\":\"1795812400.123\",\"code\":\"abc\"";
  struct Case {
    std::string line;
    std::string reason;  // expected prefix of the reason
  };
  const Case cases[] = {
      {"", "not JSON: "},
      {"\n", "not JSON: "},
      {"not json", "not JSON: "},
      {"{\"time\":", "not JSON: "},
      {ok_head + ok_tail + " trailing", "not JSON: "},
      {ok_head + ok_tail + "\n" + ok_head + ok_tail, "not JSON: "},
      {"[1,2]", "not a JSON object"},
      {"\"abc\"", "not a JSON object"},
      {nginx_line("1795812400.123", "abc",
                  "a\xFF"
                  "b"),
       "invalid UTF-8 at byte 64"},
      {nginx_line("1795812400.123", "abc", "\xC0\xAF"), "invalid UTF-8 at byte 63"},
      {nginx_line("1795812400.123", "abc", "\xED\xA0\x80"), "invalid UTF-8 at byte 63"},
      {nginx_line("1795812400.123", "abc", "\\udc00"), "field \"ua\" escapes to invalid UTF-8"},
      {nginx_line("1795812400.123", "abc", "\\ud800"), "not JSON: "},
      {nginx_line("1795812400.123", "abc", "raw\ttab"), "not JSON: "},
      {nginx_line("1795812400.123", "abc", "x", "000"), "not JSON: "},
      {"{\"code\":\"abc\"" + ok_tail, "field \"time\" is missing"},
      {"{\"time\":\"1795812400.123\"" + ok_tail, "field \"code\" is missing"},
      {ok_head + ",\"src\":\"edge\"}", "field \"status\" is missing"},
      {ok_head + ",\"status\":307}", "field \"src\" is missing"},
      {ok_head + ",\"status\":\"307\",\"src\":\"edge\"}", "field \"status\" must be an integer"},
      {ok_head + ",\"status\":307.0,\"src\":\"edge\"}", "field \"status\" must be an integer"},
      {ok_head + ",\"status\":null,\"src\":\"edge\"}", "field \"status\" must be an integer"},
      {ok_head + ",\"status\":99,\"src\":\"edge\"}", "field \"status\" must be between 100"},
      {ok_head + ",\"status\":600,\"src\":\"edge\"}", "field \"status\" must be between 100"},
      {ok_head + ",\"status\":-307,\"src\":\"edge\"}", "field \"status\" must be between 100"},
      {ok_head + ",\"status\":4294967603,\"src\":\"edge\"}", "field \"status\" must be an integer"},
      {ok_head + ",\"status\":307,\"src\":\"cdn\"}", "field \"src\" must be \"origin\" or"},
      {ok_head + ",\"status\":307,\"src\":\"EDGE\"}", "field \"src\" must be \"origin\" or"},
      {ok_head + ",\"status\":307,\"src\":1}", "field \"src\" must be a string"},
      {"{\"time\":1795812400.123,\"code\":\"abc\"" + ok_tail, "field \"time\" must be a string"},
      {"{\"time\":\"1795812400.123\",\"code\":7" + ok_tail, "field \"code\" must be a string"},
      {ok_head + ",\"ip\":7" + ok_tail, "field \"ip\" must be a string"},
      {ok_head + ",\"ua\":null" + ok_tail, "field \"ua\" must be a string"},
      {ok_head + ",\"ref\":[]" + ok_tail, "field \"ref\" must be a string"},
      {ok_head + ",\"code\":\"abd\"" + ok_tail, "field \"code\" appears twice"},
      {ok_head + ",\"ua\":\"a\",\"ua\":\"b\"" + ok_tail, "field \"ua\" appears twice"},
      {nginx_line("1795812400.123", "", "x"), "field \"code\" must match"},
      {nginx_line("1795812400.123", "a/b", "x"), "field \"code\" must match"},
      {nginx_line("1795812400.123", "a.b", "x"), "field \"code\" must match"},
      {nginx_line("1795812400.123", "\xC3\xA9", "x"), "field \"code\" must match"},
      {nginx_line("1795812400.123", std::string(65, 'a'), "x"), "field \"code\" must match"},
      {nginx_line("1795812400.123", "abc", std::string(kMaxVisitLineBytes, 'a')),
       "line longer than 131072 bytes"},
      {nginx_line("1795812400.123", "abc", std::string(1 << 20, 'a')),
       "line longer than 131072 bytes"},
  };
  for (const Case& c : cases) {
    const std::string reason = parse_error(c.line);
    EXPECT_EQ(reason.substr(0, c.reason.size()), c.reason)
        << "line: " << c.line.substr(0, 120) << "\nreason: " << reason;
  }
}

TEST(VisitRecord, ToValidUtf8ReplacesMaximalSubparts) {
  struct Case {
    std::string input;
    std::string expected;
  };
  const std::string r = "\xEF\xBF\xBD";
  const Case cases[] = {
      {"", ""},
      {"abc", "abc"},
      {"\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80"},
      {"\xF0\x9F\x98", r},  // truncated 4-byte: one replacement
      {"\xF0\x9F\x98"
       "a",
       r + "a"},
      {"\xE0\x80\x80", r + r + r},  // overlong 3-byte: lead alone is invalid
      {"\xFE\xFF", r + r},
      {"\xC2", r},
      {"\xC2\xC2\xA9", r + "\xC2\xA9"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(to_valid_utf8(c.input), c.expected) << testing::PrintToString(c.input);
  }
}

TEST(VisitRecord, AnonymizesAddressesByMode) {
  struct Case {
    const char* ip;
    const char* anonymized;
    const char* full;
  };
  const Case cases[] = {
      {"203.0.113.45", "203.0.113.0", "203.0.113.45"},
      {"10.0.0.255", "10.0.0.0", "10.0.0.255"},
      {"0.0.0.0", "0.0.0.0", "0.0.0.0"},
      {"2001:db8:abcd:1234:5678:9abc:def0:1234",
       "2001:db8:abcd::", "2001:db8:abcd:1234:5678:9abc:def0:1234"},
      {"2001:DB8:ABCD:0012::1", "2001:db8:abcd::", "2001:DB8:ABCD:0012::1"},
      {"::1", "::", "::1"},
      {"fe80::1", "fe80::", "fe80::1"},
      {"::ffff:203.0.113.45", "::ffff:203.0.113.0", "::ffff:203.0.113.45"},
      {"", "", ""},
      {"garbage", "", "garbage"},
      {"203.0.113", "", "203.0.113"},
      {"203.0.113.256", "", "203.0.113.256"},
      {"203.0.113.045", "", "203.0.113.045"},
      {" 203.0.113.45", "", " 203.0.113.45"},
      {"203.0.113.45:8080", "", "203.0.113.45:8080"},
      {"[2001:db8::1]", "", "[2001:db8::1]"},
      {"fe80::1%eth0", "", "fe80::1%eth0"},
      {"unix:", "", "unix:"},
      {"2001:db8::1::2", "", "2001:db8::1::2"},
      {"1111:2222:3333:4444:5555:6666:7777:8888:9999", "",
       "1111:2222:3333:4444:5555:6666:7777:8888:9999"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(anonymize_ip(c.ip, IpMode::kAnonymized), c.anonymized) << c.ip;
    EXPECT_EQ(anonymize_ip(c.ip, IpMode::kFull), c.full) << c.ip;
    EXPECT_EQ(anonymize_ip(c.ip, IpMode::kNone), "") << c.ip;
  }
}

TEST(VisitRecord, ParsesIpModeNames) {
  EXPECT_EQ(parse_ip_mode("anonymized"), IpMode::kAnonymized);
  EXPECT_EQ(parse_ip_mode("full"), IpMode::kFull);
  EXPECT_EQ(parse_ip_mode("none"), IpMode::kNone);
  for (const char* text : {"", "Full", "anonymised", "on", " none"}) {
    EXPECT_FALSE(parse_ip_mode(text).has_value()) << "'" << text << "'";
  }
}

TEST(VisitRecord, TellsBotsFromPeople) {
  struct Case {
    const char* ua;
    bool bot;
  };
  const Case cases[] = {
      {"", true},
      {"   ", true},
      {"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", true},
      {"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", true},
      {"Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)", true},
      {"Mozilla/5.0 (compatible; Baiduspider/2.0)", true},
      {"facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", true},
      {"Twitterbot/1.0", true},
      {"Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", true},
      {"WhatsApp/2.23.20.0 A", true},
      {"TelegramBot (like TwitterBot)", true},
      {"Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)", true},
      {"LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
       true},
      {"Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5", true},
      {"Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 (KHTML, like Gecko) Applebot/0.1", true},
      {"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0)", true},
      {"Mozilla/5.0 (compatible; SemrushBot/7~bl)", true},
      {"Mozilla/5.0 (compatible; MJ12bot/v1.4.8)", true},
      {"CCBot/2.0 (https://commoncrawl.org/faq/)", true},
      {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0 Safari/537.36",
       true},
      {"curl/8.4.0", true},
      {"Wget/1.21.3", true},
      {"python-requests/2.31.0", true},
      {"Go-http-client/1.1", true},
      {"Java/17.0.2", true},
      {"GOOGLEBOT", true},
      {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
       "Chrome/120.0.0.0 Safari/537.36",
       false},
      {"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
       "like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
       false},
      {"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", false},
      {"Mozilla/5.0 (Linux; Android 10; CUBOT KING KONG 3) AppleWebKit/537.36 (KHTML, like "
       "Gecko) Chrome/119.0 Mobile Safari/537.36",
       false},
      {"Mozilla/5.0 (Linux; Android 13; SM-G991B) AppleWebKit/537.36 (KHTML, like Gecko) "
       "Chrome/119.0 Mobile Safari/537.36 Instagram 309.1.0.41.113 Android",
       false},
      {"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
       "like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/440.0.0]",
       false},
      {"okhttp/4.12.0", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(is_bot_user_agent(c.ua), c.bot) << "'" << c.ua << "'";
  }
}

}  // namespace
}  // namespace core
