// Pure pieces of the visit store: aggregation into count tables, PostgreSQL
// array literals, fingerprints.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "origin/visit_store.h"

namespace origin {
namespace {

constexpr std::int64_t kHourMs = 3'600'000;
constexpr std::int64_t kDayMs = 86'400'000;
// 2026-11-27T00:00:00Z
constexpr std::int64_t kDay0 = 1795737600000;

VisitRow row(const std::string& code, std::int64_t time_ms, bool bot = false, int status = 307,
             const std::string& source = "edge", const std::string& host = "") {
  VisitRow r;
  r.code = code;
  r.time_ms = time_ms;
  r.bot = bot;
  r.status = status;
  r.source = source;
  r.referrer_host = host;
  return r;
}

bool known_abc(std::string_view code) { return code == "abc" || code == "def"; }

TEST(AggregateVisits, CountsHumansAndBotsPerCodeHourAndSource) {
  const std::vector<VisitRow> rows = {
      row("abc", kDay0 + 10),
      row("abc", kDay0 + kHourMs - 1),
      row("abc", kDay0 + kHourMs, true),
      row("abc", kDay0 + 5, false, 307, "origin"),
      row("def", kDay0 + 5, true),
  };
  VisitAggregates a = aggregate_visits(rows, known_abc);
  ASSERT_EQ(a.hourly.size(), 4u);
  // Sorted by (code, hour, source).
  EXPECT_EQ(a.hourly[0].code, "abc");
  EXPECT_EQ(a.hourly[0].hour_s, kDay0 / 1000);
  EXPECT_EQ(a.hourly[0].source, "edge");
  EXPECT_EQ(a.hourly[0].humans, 2);
  EXPECT_EQ(a.hourly[0].bots, 0);
  EXPECT_EQ(a.hourly[1].source, "origin");
  EXPECT_EQ(a.hourly[1].humans, 1);
  EXPECT_EQ(a.hourly[2].hour_s, kDay0 / 1000 + 3600);
  EXPECT_EQ(a.hourly[2].bots, 1);
  EXPECT_EQ(a.hourly[3].code, "def");
  EXPECT_EQ(a.hourly[3].bots, 1);
  EXPECT_TRUE(a.orphan_hourly.empty());

  ASSERT_EQ(a.daily.size(), 3u) << "the same clicks per day";
  EXPECT_EQ(a.daily[0].code, "abc");
  EXPECT_EQ(a.daily[0].day, kDay0 / kDayMs);
  EXPECT_EQ(a.daily[0].source, "edge");
  EXPECT_EQ(a.daily[0].humans, 2);
  EXPECT_EQ(a.daily[0].bots, 1);
  EXPECT_EQ(a.daily[1].source, "origin");
  EXPECT_EQ(a.daily[2].code, "def");
}

TEST(AggregateVisits, CountsUnknownCodesAsOrphansWhateverTheirStatus) {
  const std::vector<VisitRow> rows = {row("gone", kDay0, false, 404),
                                      row("gone", kDay0, true, 307)};
  VisitAggregates a = aggregate_visits(rows, known_abc);
  EXPECT_TRUE(a.hourly.empty());
  EXPECT_TRUE(a.totals.empty());
  ASSERT_EQ(a.orphan_hourly.size(), 1u);
  EXPECT_EQ(a.orphan_hourly[0].humans, 1);
  EXPECT_EQ(a.orphan_hourly[0].bots, 1);
}

TEST(AggregateVisits, CountsOnlyRedirectsAsClicks) {
  const std::vector<VisitRow> rows = {row("abc", kDay0, false, 410), row("abc", kDay0, false, 301),
                                      row("abc", kDay0, false, 200)};
  VisitAggregates a = aggregate_visits(rows, known_abc);
  ASSERT_EQ(a.hourly.size(), 1u);
  EXPECT_EQ(a.hourly[0].humans, 1);
  ASSERT_EQ(a.totals.size(), 1u);
  EXPECT_EQ(a.totals[0].humans, 1);
}

TEST(AggregateVisits, KeepsTheLatestHumanClickAndHumanReferrersPerDay) {
  const std::vector<VisitRow> rows = {
      row("abc", kDay0 + 100, false, 307, "edge", "a.example"),
      row("abc", kDay0 + 50, false, 307, "edge", "a.example"),
      row("abc", kDay0 + 900, true, 307, "edge", "a.example"),
      row("abc", kDay0 + kDayMs, false, 307, "edge", "a.example"),
      row("abc", kDay0 + 10, false, 307, "edge", ""),
  };
  VisitAggregates a = aggregate_visits(rows, known_abc);
  ASSERT_EQ(a.totals.size(), 1u);
  EXPECT_EQ(a.totals[0].code, "abc");
  EXPECT_EQ(a.totals[0].humans, 4);
  EXPECT_EQ(a.totals[0].bots, 1);
  EXPECT_EQ(a.totals[0].last_click_ms, kDay0 + kDayMs) << "bots do not move last_click_at";
  ASSERT_EQ(a.referrers.size(), 2u) << "bots and empty hosts are not referrers";
  EXPECT_EQ(a.referrers[0].day, kDay0 / kDayMs);
  EXPECT_EQ(a.referrers[0].clicks, 2);
  EXPECT_EQ(a.referrers[1].day, kDay0 / kDayMs + 1);
  EXPECT_EQ(a.referrers[1].clicks, 1);
  // 2026-11-27 and -28 are both in November.
  ASSERT_EQ(a.referrers_monthly.size(), 1u);
  EXPECT_EQ(a.referrers_monthly[0].day, first_day_of_month(kDay0 / kDayMs));
  EXPECT_EQ(a.referrers_monthly[0].clicks, 3);
}

TEST(FirstDayOfMonth, FindsTheFirstOfTheCalendarMonth) {
  struct Case {
    std::int64_t day;
    std::int64_t first;
  };
  // Days since 1970-01-01: 2026-11-27 = 20784, 2026-11-01 = 20758,
  // 2024-02-29 = 19782, 2024-02-01 = 19754, 2024-03-01 = 19783.
  for (const Case& c :
       {Case{0, 0}, Case{30, 0}, Case{31, 31}, Case{20784, 20758}, Case{20758, 20758},
        Case{19782, 19754}, Case{19783, 19783}, Case{-1, -31}}) {
    EXPECT_EQ(first_day_of_month(c.day), c.first) << c.day;
  }
}

TEST(AggregateVisits, LeavesABotOnlyLinkWithoutLastClick) {
  VisitAggregates a = aggregate_visits({row("abc", kDay0, true)}, known_abc);
  ASSERT_EQ(a.totals.size(), 1u);
  EXPECT_FALSE(a.totals[0].last_click_ms.has_value());
}

TEST(AggregateVisits, PutsTimesBefore1970InTheRightHour) {
  VisitAggregates a = aggregate_visits({row("abc", -1)}, known_abc);
  ASSERT_EQ(a.hourly.size(), 1u);
  EXPECT_EQ(a.hourly[0].hour_s, -3600);
}

// The counts of a transaction added chunk by chunk equal the counts made
// line by line (each line aggregated alone, then summed by key).
TEST(VisitCounter, SumsChunksToWhatEveryLineAddsUpTo) {
  std::vector<VisitRow> rows;
  const char* codes[] = {"abc", "def", "gone", "abc-long-code-over-sixteen-bytes"};
  const char* hosts[] = {"", "news.example", "a-referrer-host-longer-than-sixteen.example"};
  for (int i = 0; i < 3000; ++i) {
    rows.push_back(row(codes[(i * 7) % 4], kDay0 - kDayMs + (i * 104729LL) % (3 * kDayMs),
                       i % 5 == 0, i % 11 == 0 ? 404 : 307, i % 3 == 0 ? "origin" : "edge",
                       hosts[i % 3]));
  }
  const auto known = [](std::string_view code) { return code != "gone"; };

  VisitCounter counter;
  for (const VisitRow& r : rows)
    counter.add(r, known(r.code));  // as the chunks of a transaction do
  const VisitAggregates chunked = counter.take();

  std::map<std::tuple<std::string, std::int64_t, std::string>,
           std::pair<std::int64_t, std::int64_t>>
      hourly, orphans, daily;
  std::map<std::tuple<std::string, std::int64_t, std::string>, std::int64_t> referrers, monthly;
  std::map<std::string, std::tuple<std::int64_t, std::int64_t, std::optional<std::int64_t>>> totals;
  for (const VisitRow& r : rows) {
    const VisitAggregates one = aggregate_visits({r}, known);
    for (const HourlyCount& c : one.hourly) {
      auto& v = hourly[{c.code, c.hour_s, c.source}];
      v.first += c.humans;
      v.second += c.bots;
    }
    for (const HourlyCount& c : one.orphan_hourly) {
      auto& v = orphans[{c.code, c.hour_s, c.source}];
      v.first += c.humans;
      v.second += c.bots;
    }
    for (const DailyCount& c : one.daily) {
      auto& v = daily[{c.code, c.day, c.source}];
      v.first += c.humans;
      v.second += c.bots;
    }
    for (const ReferrerCount& c : one.referrers) referrers[{c.code, c.day, c.host}] += c.clicks;
    for (const ReferrerCount& c : one.referrers_monthly)
      monthly[{c.code, c.day, c.host}] += c.clicks;
    for (const LinkTotal& t : one.totals) {
      auto& [humans, bots, last] = totals[t.code];
      humans += t.humans;
      bots += t.bots;
      if (t.last_click_ms && (!last || *last < *t.last_click_ms)) last = t.last_click_ms;
    }
  }

  // The same maps from what the counter gave, each vector sorted by key.
  decltype(hourly) got_hourly, got_orphans, got_daily;
  decltype(referrers) got_referrers, got_monthly;
  decltype(totals) got_totals;
  const auto sorted = [](const auto& items, const auto& key_of) {
    return std::is_sorted(items.begin(), items.end(),
                          [&](const auto& a, const auto& b) { return key_of(a) < key_of(b); });
  };
  const auto hour_key = [](const HourlyCount& c) { return std::tie(c.code, c.hour_s, c.source); };
  const auto day_key = [](const DailyCount& c) { return std::tie(c.code, c.day, c.source); };
  const auto host_key = [](const ReferrerCount& c) { return std::tie(c.code, c.day, c.host); };
  for (const HourlyCount& c : chunked.hourly) got_hourly[hour_key(c)] = {c.humans, c.bots};
  for (const HourlyCount& c : chunked.orphan_hourly) got_orphans[hour_key(c)] = {c.humans, c.bots};
  for (const DailyCount& c : chunked.daily) got_daily[day_key(c)] = {c.humans, c.bots};
  for (const ReferrerCount& c : chunked.referrers) got_referrers[host_key(c)] = c.clicks;
  for (const ReferrerCount& c : chunked.referrers_monthly) got_monthly[host_key(c)] = c.clicks;
  for (const LinkTotal& t : chunked.totals)
    got_totals[t.code] = {t.humans, t.bots, t.last_click_ms};
  EXPECT_EQ(got_hourly, hourly);
  EXPECT_EQ(got_orphans, orphans);
  EXPECT_EQ(got_daily, daily);
  EXPECT_EQ(got_referrers, referrers);
  EXPECT_EQ(got_monthly, monthly);
  EXPECT_EQ(got_totals, totals);
  EXPECT_EQ(chunked.hourly.size(), hourly.size()) << "no key twice";
  EXPECT_EQ(chunked.totals.size(), totals.size()) << "no code twice";
  EXPECT_TRUE(sorted(chunked.hourly, hour_key));
  EXPECT_TRUE(sorted(chunked.orphan_hourly, hour_key));
  EXPECT_TRUE(sorted(chunked.daily, day_key));
  EXPECT_TRUE(sorted(chunked.referrers, host_key));
  EXPECT_TRUE(sorted(chunked.referrers_monthly, host_key));
  EXPECT_TRUE(sorted(chunked.totals, [](const LinkTotal& t) { return t.code; }));
  EXPECT_FALSE(chunked.orphan_hourly.empty());
  EXPECT_FALSE(chunked.referrers_monthly.empty());

  const VisitAggregates empty = counter.take();
  EXPECT_TRUE(empty.hourly.empty() && empty.totals.empty() && empty.referrers.empty())
      << "take() leaves the counter empty";
}

TEST(PgTextArray, QuotesEveryElement) {
  EXPECT_EQ(pg_text_array({}), "{}");
  EXPECT_EQ(pg_text_array({"a", "b c"}), R"({"a","b c"})");
  EXPECT_EQ(pg_text_array({"q\"uote", "back\\slash", "NULL", ""}),
            R"({"q\"uote","back\\slash","NULL",""})");
  EXPECT_EQ(pg_text_array({"{,}"}), R"({"{,}"})");
}

TEST(FileFingerprint, IsFnv1a64) {
  EXPECT_EQ(file_fingerprint(""), 14695981039346656037ull);
  EXPECT_EQ(file_fingerprint("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_NE(file_fingerprint("ab"), file_fingerprint("ba"));
}

}  // namespace
}  // namespace origin
