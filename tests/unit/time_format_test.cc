#include "core/time_format.h"

#include <gtest/gtest.h>

namespace core {
namespace {

TEST(TimeFormat, FormatsUtcWithMilliseconds) {
  EXPECT_EQ(format_rfc3339_ms(from_unix_ms(0)), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_rfc3339_ms(from_unix_ms(1795812400123)), "2026-11-27T20:46:40.123Z");
  EXPECT_EQ(format_rfc3339_ms(from_unix_ms(951782400000)), "2000-02-29T00:00:00.000Z");
}

TEST(TimeFormat, ParsesWhatItFormats) {
  for (std::int64_t ms : {0LL, 1LL, 999LL, 1795812400123LL, 4102444799999LL}) {
    auto tp = from_unix_ms(ms);
    auto parsed = parse_rfc3339(format_rfc3339_ms(tp));
    ASSERT_TRUE(parsed.has_value()) << ms;
    EXPECT_EQ(to_unix_ms(*parsed), ms);
  }
}

TEST(TimeFormat, ParsesOffsetsAndFractions) {
  struct Case {
    const char* text;
    std::int64_t ms;
  };
  const Case cases[] = {
      {"2026-11-27T20:46:40Z", 1795812400000},
      {"2026-11-27t20:46:40z", 1795812400000},
      {"2026-11-27T21:46:40+01:00", 1795812400000},
      {"2026-11-27T15:16:40-05:30", 1795812400000},
      {"2026-11-27T20:46:40.1Z", 1795812400100},
      {"2026-11-27T20:46:40.123456789Z", 1795812400123},
  };
  for (const Case& c : cases) {
    auto parsed = parse_rfc3339(c.text);
    ASSERT_TRUE(parsed.has_value()) << c.text;
    EXPECT_EQ(to_unix_ms(*parsed), c.ms) << c.text;
  }
}

TEST(TimeFormat, RejectsAnythingElse) {
  for (const char* text :
       {"", "tomorrow", "2026-11-27", "2026-11-27T20:46:40", "2026-11-27 20:46:40Z",
        "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z", "2026-11-31T00:00:00Z",
        "2026-11-27T24:00:00Z", "2026-11-27T20:60:00Z", "2026-11-27T20:46:40.Z",
        "2026-11-27T20:46:40+0100", "2026-11-27T20:46:40Z ", "1969-12-31T23:59:59Z",
        "+2026-11-27T20:46:40Z", "2026-11-27T20:46:40+24:00"}) {
    EXPECT_FALSE(parse_rfc3339(text).has_value()) << "'" << text << "'";
  }
}

}  // namespace
}  // namespace core
