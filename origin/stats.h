// Link statistics: GET /api/links/{code}/stats?from=YYYY-MM-DD&to=YYYY-MM-DD.
//
// The range is whole UTC days, both ends included, written "YYYY-MM-DD" (the
// counts are kept per hour and referrers per day, so an instant could not be
// honoured exactly). `to` defaults to today (UTC) and `from` to 29 days
// before `to` (30 days). 422 invalid_range when a value is not a date
// (field "from" or "to"), when from is after to (field "from"), or when the
// range is longer than kMaxStatsDays (field "to"). Other query parameters
// are ignored; a parameter given twice is refused (422, its field).
//
// Answer:
//   {"code","from","to","total","bots","by_day":[{"day","clicks"}],
//    "by_source":{"origin","edge"},"top_referrers":[{"host","clicks"}],
//    "last_click_at"}
// where clicks are visits answered with a redirect, `total`, `by_day`,
// `by_source` and `top_referrers` count human clicks, `bots` the others,
// `by_day` lists every day of the range (zeros included), `top_referrers`
// the kTopReferrers hosts with most clicks (ties by host), and
// `last_click_at` is the latest human click ever (RFC 3339, or null).
// Everything is read from the count tables, never from raw visits.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/time_format.h"

namespace core {
class PgPool;
}

namespace origin {

struct HttpResponse;

inline constexpr std::int64_t kMaxStatsDays = 366;
inline constexpr std::int64_t kDefaultStatsDays = 30;
inline constexpr std::size_t kTopReferrers = 10;

// Days since 1970-01-01 (UTC), both included.
struct StatsRange {
  std::int64_t first_day = 0;
  std::int64_t last_day = 0;
};

struct StatsRangeError {
  std::string field;  // "from" or "to"
  std::string message;
};

// The range asked by `query` (the part of the target after '?', may be
// empty), with defaults relative to `now`. Pure.
std::variant<StatsRange, StatsRangeError> parse_stats_range(std::string_view query,
                                                            core::TimePoint now);

struct DayClicks {
  std::int64_t day = 0;  // days since 1970-01-01
  std::int64_t clicks = 0;
};

struct ReferrerClicks {
  std::string host;
  std::int64_t clicks = 0;
};

struct LinkStats {
  std::string code;
  StatsRange range;
  std::int64_t total = 0;          // human clicks in the range
  std::int64_t bots = 0;           // bot clicks in the range
  std::vector<DayClicks> by_day;   // every day of the range, in order
  std::int64_t origin_clicks = 0;  // human clicks answered by the origin
  std::int64_t edge_clicks = 0;    // human clicks answered at the edge
  std::vector<ReferrerClicks> top_referrers;
  std::optional<core::TimePoint> last_click_at;
};

// Where the handler reads stats from. No database types appear here.
class LinkStatsStore {
 public:
  virtual ~LinkStatsStore() = default;

  // Stats of the link `code` (lowercase, valid) over `range`, with every day
  // of the range in by_day; nullopt when there is no such link. Throws
  // StoreUnavailable (link_store.h) when the database cannot answer.
  // Thread-safe.
  virtual std::optional<LinkStats> stats(std::string_view code, const StatsRange& range) = 0;
};

// LinkStatsStore on the count tables through the connection pool, in one
// read-only repeatable-read transaction: daily counts (at most 2 rows a day),
// referrers from whole months plus the days at the range's ends, totals.
// Bounded by the range, not by the link's traffic.
class PgLinkStatsStore : public LinkStatsStore {
 public:
  explicit PgLinkStatsStore(core::PgPool& pool);  // `pool` must outlive this
  std::optional<LinkStats> stats(std::string_view code, const StatsRange& range) override;

 private:
  core::PgPool& pool_;
};

// The JSON body described at the top of this file. Pure.
std::string render_stats_json(const LinkStats& stats);

// "YYYY-MM-DD" of a day number. Pure.
std::string format_day(std::int64_t day);

// Answers GET /api/links/{code}/stats?{query} for a lowercase, valid `code`:
// 200 with the stats, 404 not_found, 422 invalid_range. Lets
// StoreUnavailable through (the caller answers 503).
HttpResponse handle_stats(LinkStatsStore& store, const std::string& code, std::string_view query,
                          core::TimePoint now);

}  // namespace origin
