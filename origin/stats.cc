#include "origin/stats.h"

#include <map>
#include <pqxx/pqxx>

#include "core/json.h"
#include "core/pg_pool.h"
#include "origin/handlers.h"
#include "origin/link_store.h"
#include "origin/log.h"
#include "origin/pg_call.h"
#include "origin/visit_store.h"

namespace origin {
namespace {

constexpr std::int64_t kMsPerDay = 86'400'000;

std::int64_t day_of(core::TimePoint tp) {
  const std::int64_t ms = core::to_unix_ms(tp);
  return ms >= 0 ? ms / kMsPerDay : (ms - kMsPerDay + 1) / kMsPerDay;
}

// "YYYY-MM-DD" exactly, a real calendar day in 1970-9999.
std::optional<std::int64_t> parse_day(std::string_view text) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return std::nullopt;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (i == 4 || i == 7) continue;
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
  }
  auto tp = core::parse_rfc3339(std::string(text) + "T00:00:00Z");
  if (!tp) return std::nullopt;
  return day_of(*tp);
}

HttpResponse json_response(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

}  // namespace

std::string format_day(std::int64_t day) {
  return core::format_rfc3339_ms(core::from_unix_ms(day * kMsPerDay)).substr(0, 10);
}

std::variant<StatsRange, StatsRangeError> parse_stats_range(std::string_view query,
                                                            core::TimePoint now) {
  std::optional<std::string_view> from_text;
  std::optional<std::string_view> to_text;
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const std::size_t eq = pair.find('=');
    const std::string_view name = pair.substr(0, eq);
    const std::string_view value =
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    std::optional<std::string_view>* slot = name == "from" ? &from_text
                                            : name == "to" ? &to_text
                                                           : nullptr;
    if (slot == nullptr) continue;
    if (slot->has_value()) {
      return StatsRangeError{std::string(name), std::string(name) + " is given more than once"};
    }
    *slot = value;
  }
  StatsRange range;
  range.last_day = day_of(now);
  if (to_text) {
    auto day = parse_day(*to_text);
    if (!day) return StatsRangeError{"to", "to must be a date YYYY-MM-DD (UTC)"};
    range.last_day = *day;
  }
  range.first_day = range.last_day - (kDefaultStatsDays - 1);
  if (from_text) {
    auto day = parse_day(*from_text);
    if (!day) return StatsRangeError{"from", "from must be a date YYYY-MM-DD (UTC)"};
    range.first_day = *day;
  }
  if (range.first_day > range.last_day) {
    return StatsRangeError{"from", "from must not be after to"};
  }
  if (range.last_day - range.first_day + 1 > kMaxStatsDays) {
    return StatsRangeError{
        "to", "the range must not be longer than " + std::to_string(kMaxStatsDays) + " days"};
  }
  return range;
}

namespace {

// The stats of `code` on `conn` (rules at PgLinkStatsStore); nullopt: no
// such link there.
std::optional<LinkStats> read_stats(pqxx::connection& conn, std::string_view code,
                                    const StatsRange& range) {
  const std::string link = std::string(code);
  const std::string first = format_day(range.first_day);
  const std::string last = format_day(range.last_day);
  // One snapshot for the three reads, so the parts agree with each other.
  pqxx::transaction<pqxx::isolation_level::repeatable_read, pqxx::readwrite_policy::read_only> txn(
      conn, "stats");
  pqxx::result head = txn.exec_params(
      "SELECT floor(extract(epoch FROM t.last_click_at) * 1000)::bigint"
      " FROM links l LEFT JOIN link_visit_totals t ON t.code = l.code WHERE l.code = $1",
      link);
  if (head.empty()) return std::nullopt;
  LinkStats stats;
  stats.code = link;
  stats.range = range;
  if (!head[0][0].is_null()) {
    stats.last_click_at = core::from_unix_ms(head[0][0].as<std::int64_t>());
  }

  pqxx::result counts = txn.exec_params(
      "SELECT day - DATE '1970-01-01', source, humans, bots FROM visit_counts_daily"
      " WHERE code = $1 AND day BETWEEN $2::date AND $3::date",
      link, first, last);
  std::map<std::int64_t, std::int64_t> per_day;
  for (const auto& row : counts) {
    const auto humans = row[2].as<std::int64_t>();
    const auto bots = row[3].as<std::int64_t>();
    per_day[row[0].as<std::int64_t>()] += humans;
    stats.total += humans;
    stats.bots += bots;
    const std::string source = row[1].as<std::string>();
    if (source == "origin") stats.origin_clicks += humans;
    if (source == "edge") stats.edge_clicks += humans;
  }
  for (std::int64_t day = range.first_day; day <= range.last_day; ++day) {
    auto it = per_day.find(day);
    stats.by_day.push_back({day, it == per_day.end() ? 0 : it->second});
  }

  // Whole months inside the range from the monthly table, the days
  // before and after them from the daily one.
  std::int64_t months_from = first_day_of_month(range.first_day);
  if (months_from < range.first_day) months_from = first_day_of_month(months_from + 31);
  std::int64_t months_to = first_day_of_month(range.last_day + 1);  // exclusive
  if (months_from >= months_to) months_from = months_to = range.last_day + 1;
  pqxx::result referrers = txn.exec_params(
      "SELECT host, sum(clicks)::bigint AS clicks FROM ("
      "   SELECT host, clicks FROM referrer_counts_monthly"
      "   WHERE code = $1 AND month >= $4::date AND month < $5::date"
      "   UNION ALL"
      "   SELECT host, clicks FROM referrer_counts_daily"
      "   WHERE code = $1 AND ((day >= $2::date AND day < $4::date)"
      "     OR (day >= $5::date AND day <= $3::date))"
      " ) r GROUP BY host ORDER BY clicks DESC, host LIMIT " +
          std::to_string(kTopReferrers),
      link, first, last, format_day(months_from), format_day(months_to));
  for (const auto& row : referrers) {
    stats.top_referrers.push_back({row[0].as<std::string>(), row[1].as<std::int64_t>()});
  }
  txn.commit();
  return stats;
}

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Rule 4 of PgLinkStatsStore: a query cancelled by a conflict with recovery
// (class 40); the replica itself is fine.
bool is_recovery_conflict(const pqxx::sql_error& e) { return e.sqlstate().rfind("40", 0) == 0; }

}  // namespace

PgLinkStatsStore::PgLinkStatsStore(core::PgPool& pool, core::PgPool* read_pool)
    : pool_(pool), read_pool_(read_pool) {}

std::optional<LinkStats> PgLinkStatsStore::stats(std::string_view code, const StatsRange& range) {
  if (read_pool_ != nullptr) {
    if (std::optional<LinkStats> answer = from_replica(code, range)) return answer;
  }
  primary_reads_.fetch_add(1, std::memory_order_relaxed);
  return with_connection(pool_, Retry::kOnceIfBroken,
                         [&](pqxx::connection& conn) { return read_stats(conn, code, range); });
}

std::optional<LinkStats> PgLinkStatsStore::from_replica(std::string_view code,
                                                        const StatsRange& range) {
  if (steady_ms() < replica_retry_at_ms_.load(std::memory_order_relaxed)) return std::nullopt;
  std::string problem;
  try {
    core::PgPool::Lease lease = read_pool_->acquire();
    try {
      std::optional<LinkStats> answer = read_stats(*lease, code, range);
      if (replica_failing_.exchange(false)) {
        log_event("info", "read replica answers again; stats read there");
      }
      if (answer) replica_reads_.fetch_add(1, std::memory_order_relaxed);
      return answer;
    } catch (const pqxx::broken_connection& e) {
      lease.discard();
      problem = e.what();
    } catch (const pqxx::in_doubt_error& e) {  // the connection broke at commit
      lease.discard();
      problem = e.what();
    } catch (const pqxx::sql_error& e) {
      if (is_recovery_conflict(e)) return std::nullopt;
      if (!core::is_unavailability(e)) throw;
      lease.discard();
      problem = e.what();
    }
  } catch (const core::PoolTimeout&) {
    return std::nullopt;  // rule 4: busy, not down
  } catch (const pqxx::broken_connection& e) {
    problem = e.what();  // could not connect
  }
  replica_failed(problem);
  return std::nullopt;
}

void PgLinkStatsStore::replica_failed(const std::string& problem) {
  replica_failures_.fetch_add(1, std::memory_order_relaxed);
  replica_retry_at_ms_.store(steady_ms() + kReplicaRetry.count(), std::memory_order_relaxed);
  if (!replica_failing_.exchange(true)) {
    // Connections from before the failure would each fail once more.
    read_pool_->invalidate_all();
    log_event("warn", "read replica unavailable; stats read from the primary",
              {{"error", first_line(problem)},
               {"retry_after_ms", std::to_string(kReplicaRetry.count())}});
  }
}

PgLinkStatsStore::Counters PgLinkStatsStore::counters() const {
  Counters c;
  c.replica_reads = replica_reads_.load(std::memory_order_relaxed);
  c.primary_reads = primary_reads_.load(std::memory_order_relaxed);
  c.replica_failures = replica_failures_.load(std::memory_order_relaxed);
  c.replica_failing =
      read_pool_ != nullptr && steady_ms() < replica_retry_at_ms_.load(std::memory_order_relaxed);
  return c;
}

std::string render_stats_json(const LinkStats& stats) {
  rapidjson::StringBuffer buffer;
  core::JsonWriter w(buffer);
  w.StartObject();
  core::write_field(w, "code", stats.code);
  core::write_field(w, "from", format_day(stats.range.first_day));
  core::write_field(w, "to", format_day(stats.range.last_day));
  core::write_field(w, "total", static_cast<long long>(stats.total));
  core::write_field(w, "bots", static_cast<long long>(stats.bots));
  w.Key("by_day");
  w.StartArray();
  for (const DayClicks& d : stats.by_day) {
    w.StartObject();
    core::write_field(w, "day", format_day(d.day));
    core::write_field(w, "clicks", static_cast<long long>(d.clicks));
    w.EndObject();
  }
  w.EndArray();
  w.Key("by_source");
  w.StartObject();
  core::write_field(w, "origin", static_cast<long long>(stats.origin_clicks));
  core::write_field(w, "edge", static_cast<long long>(stats.edge_clicks));
  w.EndObject();
  w.Key("top_referrers");
  w.StartArray();
  for (const ReferrerClicks& r : stats.top_referrers) {
    w.StartObject();
    core::write_field(w, "host", r.host);
    core::write_field(w, "clicks", static_cast<long long>(r.clicks));
    w.EndObject();
  }
  w.EndArray();
  if (stats.last_click_at) {
    core::write_field(w, "last_click_at", core::format_rfc3339_ms(*stats.last_click_at));
  } else {
    core::write_null_field(w, "last_click_at");
  }
  w.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

HttpResponse handle_stats(LinkStatsStore& store, const std::string& code, std::string_view query,
                          core::TimePoint now) {
  auto range = parse_stats_range(query, now);
  if (auto* error = std::get_if<StatsRangeError>(&range)) {
    return json_response(422, core::error_json("invalid_range", error->message, error->field));
  }
  std::optional<LinkStats> stats = store.stats(code, std::get<StatsRange>(range));
  if (!stats) return json_response(404, core::error_json("not_found", "no link with this code"));
  HttpResponse r = json_response(200, render_stats_json(*stats));
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

}  // namespace origin
