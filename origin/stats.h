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

#include <atomic>
#include <chrono>
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
//
// With a read pool (DATABASE_READ_URL, a streaming replica), stats are read
// there, so the primary serves redirects and writes. Rules:
//  1. Replica lag shows as stats a little behind (the counts of the last
//     ingest batches); nothing else depends on them.
//  2. A code the replica does not know is looked up on the primary: a link
//     created moments ago may not be replayed yet, and a 404 must be true.
//  3. The replica failing (cannot connect, broken connection, SQLSTATE class
//     08/53/57): that request and every one of the next kReplicaRetry are
//     read on the primary, so stats keep working; the read pool's
//     connections are dropped. Logged once when it starts failing, once when
//     it answers again. Finding it down costs one request up to the connect
//     timeout (PGCONNECT_TIMEOUT) per kReplicaRetry.
//  4. The read pool busy for the acquire timeout, or the query cancelled by a
//     conflict with recovery (SQLSTATE class 40): that request is read on the
//     primary; the replica is not marked down.
// Any other error propagates, as without a replica.
class PgLinkStatsStore : public LinkStatsStore {
 public:
  static constexpr std::chrono::milliseconds kReplicaRetry{5000};

  // `pool` (the primary's) and `read_pool` (may be null: no replica) must
  // outlive this.
  explicit PgLinkStatsStore(core::PgPool& pool, core::PgPool* read_pool = nullptr);
  std::optional<LinkStats> stats(std::string_view code, const StatsRange& range) override;

  // Where stats were read, for /metrics. Thread-safe.
  struct Counters {
    std::uint64_t replica_reads = 0;     // answered by the replica
    std::uint64_t primary_reads = 0;     // read on the primary (incl. fallbacks)
    std::uint64_t replica_failures = 0;  // replica attempts that failed (rule 3)
    bool replica_failing = false;        // within kReplicaRetry of a failure
  };
  Counters counters() const;

 private:
  // The replica's answer, or nullopt when the primary must answer (rules 2-4).
  std::optional<LinkStats> from_replica(std::string_view code, const StatsRange& range);
  void replica_failed(const std::string& problem);

  core::PgPool& pool_;
  core::PgPool* const read_pool_;
  std::atomic<std::int64_t> replica_retry_at_ms_{0};  // steady clock; 0: no failure
  std::atomic<bool> replica_failing_{false};
  std::atomic<std::uint64_t> replica_reads_{0};
  std::atomic<std::uint64_t> primary_reads_{0};
  std::atomic<std::uint64_t> replica_failures_{0};
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
