// GET /api/links/{code}/stats on the real origin, over counts that `origin
// ingest` built from generated visit lines, checked against the same numbers
// computed independently from the raw rows in `visits`.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/visit_record.h"
#include "integration/support/http_client.h"
#include "integration/support/process.h"
#include "integration/support/test_env.h"

namespace integration {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr std::int64_t kDayMs = 86'400'000;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string day_text(std::int64_t day) {
  return core::format_rfc3339_ms(core::from_unix_ms(day * kDayMs)).substr(0, 10);
}

// The first day of the month holding `day`.
std::int64_t month_start(std::int64_t day) {
  return core::to_unix_ms(*core::parse_rfc3339(day_text(day).substr(0, 8) + "01T00:00:00Z")) /
         kDayMs;
}

class TempDir {
 public:
  TempDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/it-stats-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string visit(const std::string& code, std::int64_t time_ms, bool bot,
                  const std::string& referrer, int status, const std::string& source) {
  static std::int64_t serial = 0;
  core::VisitRecord r;
  r.time = core::from_unix_ms(time_ms);
  r.code = code;
  r.ip = "203.0.113.5";
  r.user_agent =
      bot ? "Googlebot/2.1 (+http://www.google.com/bot.html) #" + std::to_string(serial++)
          : "Mozilla/5.0 (iPhone) visitor " + std::to_string(serial++);
  r.referrer = referrer;
  r.status = status;
  r.source = source;
  return core::format_visit_line(r);
}

void ingest(const std::string& url, const std::string& path) {
  const CommandResult run =
      run_origin({"ingest", "--source", "stats-test=" + path, "--once"}, {{"DATABASE_URL", url}});
  ASSERT_TRUE(run.exit.has_value() && run.exit->success()) << run.describe();
}

void create_link(HttpClient& client, const std::string& alias) {
  const Response r = client.post_json(
      "/api/links", R"({"url":"https://example.com/)" + alias + R"(","alias":")" + alias + "\"}");
  ASSERT_EQ(r.status, 201) << r.summary();
}

// The stats fields as "name|value" lines, in a fixed order, from the API's
// JSON, so that a mismatch shows every number at once.
std::string api_numbers(const JsonBody& body) {
  const rapidjson::Document& doc = body.document();
  std::string out = "total|" + std::to_string(body.integer("total").value_or(-1)) + "\n";
  out += "bots|" + std::to_string(body.integer("bots").value_or(-1)) + "\n";
  out += "origin|" + std::to_string(body.integer("by_source.origin").value_or(-1)) + "\n";
  out += "edge|" + std::to_string(body.integer("by_source.edge").value_or(-1)) + "\n";
  out += "last_click_at|" +
         (body.is_null("last_click_at") ? std::string("<null>")
                                        : body.str("last_click_at").value_or("?")) +
         "\n";
  if (doc.HasMember("by_day") && doc["by_day"].IsArray()) {
    for (const auto& d : doc["by_day"].GetArray()) {
      out += std::string("day ") + d["day"].GetString() + "|" +
             std::to_string(d["clicks"].GetInt64()) + "\n";
    }
  }
  if (doc.HasMember("top_referrers") && doc["top_referrers"].IsArray()) {
    for (const auto& r : doc["top_referrers"].GetArray()) {
      out += std::string("referrer ") + r["host"].GetString() + "|" +
             std::to_string(r["clicks"].GetInt64()) + "\n";
    }
  }
  return out;
}

// The same numbers from raw visits: a click is a visit to a known code
// answered with a redirect; humans apart from bots; days in UTC.
std::string raw_numbers(const std::string& url, const std::string& code, std::int64_t first_day,
                        std::int64_t last_day) {
  const std::string clicks = "code = '" + code +
                             "' AND NOT orphan AND status BETWEEN 300 AND 399"
                             " AND time >= '" +
                             day_text(first_day) + "T00:00:00Z' AND time < '" +
                             day_text(last_day + 1) + "T00:00:00Z'";
  std::string out;
  out += query_text(url, "SELECT 'total', count(*) FROM visits WHERE NOT bot AND " + clicks);
  out += query_text(url, "SELECT 'bots', count(*) FROM visits WHERE bot AND " + clicks);
  out += query_text(
      url,
      "SELECT 'origin', count(*) FROM visits WHERE NOT bot AND source = 'origin' AND " + clicks);
  out += query_text(
      url, "SELECT 'edge', count(*) FROM visits WHERE NOT bot AND source = 'edge' AND " + clicks);
  out += query_text(url,
                    "SELECT 'last_click_at', coalesce(to_char(max(time) AT TIME ZONE 'UTC',"
                    " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), '<null>') FROM visits"
                    " WHERE code = '" +
                        code + "' AND NOT orphan AND NOT bot AND status BETWEEN 300 AND 399");
  out += query_text(
      url, "SELECT 'day ' || to_char(d, 'YYYY-MM-DD'), count(v.*) FROM generate_series('" +
               day_text(first_day) + "'::date, '" + day_text(last_day) +
               "'::date, '1 day') AS d LEFT JOIN visits v ON (v.time AT TIME ZONE 'UTC')::date = d"
               " AND NOT v.bot AND v." +
               clicks.substr(0) + " GROUP BY d ORDER BY d");
  out += query_text(url,
                    "SELECT 'referrer ' || referrer_host, count(*) FROM visits WHERE NOT bot AND "
                    "referrer_host <> '' AND " +
                        clicks +
                        " GROUP BY referrer_host ORDER BY count(*) DESC, referrer_host LIMIT 10");
  return out;
}

TEST(Stats, MatchCountsComputedFromRawVisits) {
  TestDatabase db;
  OriginProcess origin(db.url());
  HttpClient client = origin.client();
  create_link(client, "promo");
  create_link(client, "other");

  const std::int64_t now = now_ms();
  const std::int64_t today = now / kDayMs;
  const std::int64_t boundary = (today - 3) * kDayMs;  // midnight UTC, three days ago
  std::mt19937 rng(20261127);
  const std::vector<std::string> hosts = {
      "news.example", "mail.example", "t.co",      "l.facebook.com", "www.google.com", "a.example",
      "b.example",    "c.example",    "d.example", "e.example",      "f.example",      "g.example"};
  std::string lines;
  // Around a UTC midnight: the last millisecond of one day, the first of the next.
  lines += visit("promo", boundary - 1, false, "https://news.example/x", 307, "edge");
  lines += visit("promo", boundary, false, "https://news.example/y", 307, "origin");
  lines += visit("promo", boundary + kDayMs - 1, true, "", 307, "edge");
  for (int i = 0; i < 3000; ++i) {
    const std::int64_t t = now - static_cast<std::int64_t>(rng() % (80 * kDayMs));
    const bool bot = rng() % 5 == 0;
    // Skewed: low host indexes are much more frequent; some visits have none.
    const std::size_t h = std::min<std::size_t>(rng() % 4 * (rng() % 4), hosts.size() - 1);
    const std::string referrer =
        rng() % 6 == 0 ? "" : "https://" + hosts[h] + "/p?" + std::to_string(i);
    const int status = rng() % 20 == 0 ? 410 : (rng() % 2 == 0 ? 307 : 302);
    lines += visit(i % 7 == 0 ? "other" : "promo", t, bot, referrer, status,
                   rng() % 3 == 0 ? "origin" : "edge");
  }
  lines += visit("ghost", now - 1000, false, "", 404, "origin");  // an orphan
  TempDir dir;
  std::ofstream(dir / "visits.jsonl", std::ios::binary) << lines;
  ingest(db.url(), dir / "visits.jsonl");

  struct Range {
    std::int64_t first;
    std::int64_t last;
  };
  // Ranges within a month, across months, of whole months only (top
  // referrers then come from the monthly counts), and the longest.
  const std::int64_t this_month = month_start(today);
  const std::int64_t last_month = month_start(this_month - 1);
  const std::int64_t month_before = month_start(last_month - 1);
  for (const Range& range :
       {Range{today - 11, today}, Range{today - 3, today - 3}, Range{today - 4, today - 4},
        Range{last_month, this_month - 1}, Range{month_before, this_month - 1},
        Range{month_before + 3, today}, Range{today - 365, today}}) {
    const std::string target =
        "/api/links/promo/stats?from=" + day_text(range.first) + "&to=" + day_text(range.last);
    const Response r = client.get(target);
    ASSERT_EQ(r.status, 200) << target << ": " << r.summary();
    const JsonBody body(r.body);
    EXPECT_EQ(body.str("code"), "promo");
    EXPECT_EQ(api_numbers(body), raw_numbers(db.url(), "promo", range.first, range.last)) << target;
  }
}

TEST(Stats, CountsEachVisitOnItsUtcDay) {
  TestDatabase db;
  OriginProcess origin(db.url());
  HttpClient client = origin.client();
  create_link(client, "midnight");
  const std::int64_t today = now_ms() / kDayMs;
  const std::int64_t midnight = (today - 3) * kDayMs;
  TempDir dir;
  std::ofstream(dir / "visits.jsonl", std::ios::binary)
      << visit("midnight", midnight - 1, false, "", 307, "edge")
      << visit("midnight", midnight, false, "https://a.example/", 307, "origin")
      << visit("midnight", midnight + kDayMs - 1, true, "", 307, "edge")
      << visit("midnight", midnight + kDayMs, false, "", 307, "edge");
  ingest(db.url(), dir / "visits.jsonl");

  struct Case {
    std::int64_t day;
    std::int64_t total;
    std::int64_t bots;
  };
  for (const Case& c : {Case{today - 4, 1, 0}, Case{today - 3, 1, 1}, Case{today - 2, 1, 0}}) {
    const Response r =
        client.get("/api/links/midnight/stats?from=" + day_text(c.day) + "&to=" + day_text(c.day));
    ASSERT_EQ(r.status, 200) << r.summary();
    const JsonBody body(r.body);
    EXPECT_EQ(body.integer("total"), c.total) << day_text(c.day) << ": " << r.body;
    EXPECT_EQ(body.integer("bots"), c.bots) << day_text(c.day) << ": " << r.body;
  }
  const JsonBody all(client.get("/api/links/midnight/stats").body);
  EXPECT_EQ(all.integer("total"), 3);
  EXPECT_EQ(all.str("last_click_at"),
            core::format_rfc3339_ms(core::from_unix_ms(midnight + kDayMs)));
}

TEST(Stats, DefaultsToTheLast30DaysAndAnswersZerosForALinkWithoutVisits) {
  TestDatabase db;
  OriginProcess origin(db.url());
  HttpClient client = origin.client();
  create_link(client, "quiet");
  const Response r = client.get("/api/links/quiet/stats");
  ASSERT_EQ(r.status, 200) << r.summary();
  const JsonBody body(r.body);
  const std::int64_t today = now_ms() / kDayMs;
  EXPECT_EQ(body.str("to"), day_text(today));
  EXPECT_EQ(body.str("from"), day_text(today - 29));
  EXPECT_EQ(body.integer("total"), 0);
  EXPECT_EQ(body.integer("bots"), 0);
  EXPECT_TRUE(body.is_null("last_click_at")) << r.body;
  ASSERT_TRUE(body.document()["by_day"].IsArray());
  EXPECT_EQ(body.document()["by_day"].Size(), 30u);
  EXPECT_EQ(body.document()["top_referrers"].Size(), 0u);
}

TEST(Stats, RefusesInvalidRangesAndUnknownCodes) {
  TestDatabase db;
  OriginProcess origin(db.url());
  HttpClient client = origin.client();
  create_link(client, "promo");
  struct Case {
    const char* query;
    const char* field;
  };
  for (const Case& c : {Case{"from=2026-02-30", "from"}, Case{"to=tomorrow", "to"},
                        Case{"from=2026-11-27&to=2026-11-01", "from"},
                        Case{"from=2020-01-01&to=2026-01-01", "to"}}) {
    EXPECT_TRUE(IsApiError(client.get(std::string("/api/links/promo/stats?") + c.query), 422,
                           "invalid_range", std::string_view(c.field)))
        << c.query;
  }
  EXPECT_TRUE(
      IsApiError(client.get("/api/links/nosuchlink/stats"), 404, "not_found", std::nullopt));
}

}  // namespace
}  // namespace integration
