// The stats API without a database: range parsing, JSON rendering, answers.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>

#include "origin/handlers.h"
#include "origin/link_store.h"
#include "origin/stats.h"

namespace origin {
namespace {

// 2026-11-27T15:30:00Z; day 20784.
const core::TimePoint kNow = core::from_unix_ms(1795793400000);
constexpr std::int64_t kToday = 20784;

StatsRange range_of(std::string_view query) {
  auto parsed = parse_stats_range(query, kNow);
  EXPECT_TRUE(std::holds_alternative<StatsRange>(parsed)) << query;
  return std::holds_alternative<StatsRange>(parsed) ? std::get<StatsRange>(parsed) : StatsRange{};
}

StatsRangeError error_of(std::string_view query) {
  auto parsed = parse_stats_range(query, kNow);
  EXPECT_TRUE(std::holds_alternative<StatsRangeError>(parsed)) << query;
  return std::holds_alternative<StatsRangeError>(parsed) ? std::get<StatsRangeError>(parsed)
                                                         : StatsRangeError{};
}

TEST(FormatDay, WritesIsoDates) {
  EXPECT_EQ(format_day(0), "1970-01-01");
  EXPECT_EQ(format_day(kToday), "2026-11-27");
}

TEST(ParseStatsRange, DefaultsToTheLast30DaysEndingToday) {
  StatsRange r = range_of("");
  EXPECT_EQ(r.last_day, kToday);
  EXPECT_EQ(r.first_day, kToday - 29);
}

TEST(ParseStatsRange, ReadsInclusiveUtcDays) {
  StatsRange r = range_of("from=2026-11-01&to=2026-11-27");
  EXPECT_EQ(format_day(r.first_day), "2026-11-01");
  EXPECT_EQ(format_day(r.last_day), "2026-11-27");
  StatsRange one = range_of("to=2026-11-27&from=2026-11-27");
  EXPECT_EQ(one.first_day, one.last_day);
}

TEST(ParseStatsRange, DefaultsFromTo29DaysBeforeAGivenTo) {
  StatsRange r = range_of("to=2026-01-30");
  EXPECT_EQ(format_day(r.first_day), "2026-01-01");
}

TEST(ParseStatsRange, IgnoresOtherParameters) {
  StatsRange r = range_of("utm=x&from=2026-11-20&flag");
  EXPECT_EQ(format_day(r.first_day), "2026-11-20");
}

TEST(ParseStatsRange, AcceptsExactly366Days) {
  StatsRange r = range_of("from=2025-11-27&to=2026-11-27");
  EXPECT_EQ(r.last_day - r.first_day + 1, 366);
}

TEST(ParseStatsRange, RefusesBadRangesNamingTheField) {
  struct Case {
    const char* query;
    const char* field;
  };
  const Case cases[] = {
      {"from=yesterday", "from"},
      {"from=2026-02-30", "from"},
      {"from=2026-1-01", "from"},
      {"from=", "from"},
      {"from=2026-11-27T00:00:00Z", "from"},
      {"to=2026-13-01", "to"},
      {"to=1969-12-31", "to"},
      {"from=2026-11-27&to=2026-11-26", "from"},
      {"from=2028-01-01", "from"},
      {"from=2025-11-26&to=2026-11-27", "to"},
      {"from=2026-11-01&from=2026-11-02", "from"},
      {"to=2026-11-01&to=2026-11-02", "to"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(error_of(c.query).field, c.field) << c.query;
  }
}

LinkStats sample() {
  LinkStats s;
  s.code = "abc";
  s.range = {kToday - 1, kToday};
  s.total = 5;
  s.bots = 2;
  s.by_day = {{kToday - 1, 0}, {kToday, 5}};
  s.origin_clicks = 3;
  s.edge_clicks = 2;
  s.top_referrers = {{"news.example", 4}, {"mail.example", 1}};
  s.last_click_at = core::from_unix_ms(1795793400123);
  return s;
}

TEST(RenderStatsJson, WritesTheDocumentedShape) {
  EXPECT_EQ(render_stats_json(sample()),
            R"({"code":"abc","from":"2026-11-26","to":"2026-11-27","total":5,"bots":2,)"
            R"("by_day":[{"day":"2026-11-26","clicks":0},{"day":"2026-11-27","clicks":5}],)"
            R"("by_source":{"origin":3,"edge":2},)"
            R"("top_referrers":[{"host":"news.example","clicks":4},)"
            R"({"host":"mail.example","clicks":1}],)"
            R"("last_click_at":"2026-11-27T15:30:00.123Z"})");
}

TEST(RenderStatsJson, WritesNullWhenThereWasNoClick) {
  LinkStats s = sample();
  s.last_click_at.reset();
  rapidjson::Document doc;
  doc.Parse(render_stats_json(s).c_str());
  ASSERT_TRUE(doc.IsObject());
  EXPECT_TRUE(doc["last_click_at"].IsNull());
}

class FakeStatsStore : public LinkStatsStore {
 public:
  std::optional<LinkStats> stats(std::string_view code, const StatsRange& range) override {
    ++calls;
    last_range = range;
    if (unavailable) throw StoreUnavailable("down");
    if (code != "abc") return std::nullopt;
    LinkStats s = sample();
    s.range = range;
    return s;
  }
  int calls = 0;
  StatsRange last_range;
  bool unavailable = false;
};

TEST(HandleStats, AnswersWithTheStatsOfTheRange) {
  FakeStatsStore store;
  HttpResponse r = handle_stats(store, "abc", "from=2026-11-01&to=2026-11-02", kNow);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(format_day(store.last_range.first_day), "2026-11-01");
  rapidjson::Document doc;
  doc.Parse(r.body.c_str());
  ASSERT_TRUE(doc.IsObject()) << r.body;
  EXPECT_STREQ(doc["from"].GetString(), "2026-11-01");
}

TEST(HandleStats, Answers404ForAnUnknownCode) {
  FakeStatsStore store;
  HttpResponse r = handle_stats(store, "nope", "", kNow);
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("\"not_found\""), std::string::npos) << r.body;
}

TEST(HandleStats, Answers422WithoutAskingTheStore) {
  FakeStatsStore store;
  HttpResponse r = handle_stats(store, "abc", "from=2026-11-03&to=2026-11-02", kNow);
  EXPECT_EQ(r.status, 422);
  EXPECT_NE(r.body.find("\"invalid_range\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"field\":\"from\""), std::string::npos) << r.body;
  EXPECT_EQ(store.calls, 0);
}

TEST(HandleStats, LetsStoreUnavailableThroughForThe503) {
  FakeStatsStore store;
  store.unavailable = true;
  EXPECT_THROW(handle_stats(store, "abc", "", kNow), StoreUnavailable);
}

}  // namespace
}  // namespace origin
