#include "exporter/link_source.h"

#include <memory>
#include <pqxx/pqxx>
#include <thread>

namespace exporter {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kReplayPoll{20};

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

long long ms_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// The connection the selection reads on (rules at SelectionDatabases).
std::unique_ptr<pqxx::connection> selection_connection(const SelectionDatabases& databases,
                                                       std::ostream& log) {
  if (databases.replica_url.empty()) {
    return std::make_unique<pqxx::connection>(databases.primary_url);
  }
  // Read first: everything committed before this point must be in the
  // replica's snapshot. The insert position, not the write position: with
  // asynchronous commit a visible commit may not be written out yet.
  const Clock::time_point started = Clock::now();
  auto primary = std::make_unique<pqxx::connection>(databases.primary_url);
  const std::string lsn = pqxx::nontransaction(*primary)
                              .exec("SELECT pg_current_wal_insert_lsn()::text")[0][0]
                              .as<std::string>();
  std::string why;
  try {
    auto replica = std::make_unique<pqxx::connection>(databases.replica_url);
    for (;;) {
      const pqxx::result r = pqxx::nontransaction(*replica).exec_params(
          "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() >= $1::pg_lsn,"
          " coalesce(pg_last_wal_replay_lsn()::text, '')",
          lsn);
      if (!r[0][0].as<bool>()) {
        why = "DATABASE_READ_URL is not in recovery (not a replica)";
        break;
      }
      if (!r[0][1].is_null() && r[0][1].as<bool>()) {
        log << "exporter: selection read on the replica (replayed " << r[0][2].as<std::string>()
            << " >= primary " << lsn << " after " << ms_since(started) << " ms)" << std::endl;
        return replica;
      }
      if (Clock::now() - started >= databases.replica_wait) {
        why = "the replica has replayed up to " + r[0][2].as<std::string>() + " only, primary at " +
              lsn + " " + std::to_string(ms_since(started)) + " ms ago";
        break;
      }
      std::this_thread::sleep_for(kReplayPoll);
    }
  } catch (const std::exception& e) {
    why = "the replica cannot be read: " + first_line(e.what());
  }
  log << "exporter: selection read on the primary: " << why << std::endl;
  return primary;
}

ExportEntry entry_of(const pqxx::row& row) {
  ExportEntry entry;
  entry.code = row[0].as<std::string>();
  entry.target = row[1].as<std::string>();
  entry.status = row[2].as<int>();
  entry.forward_query = row[3].as<bool>();
  return entry;
}

}  // namespace

SelectionDatabases load_selection_databases(const core::Env& env) {
  SelectionDatabases databases;
  databases.primary_url = core::load_database_config(env).url;
  databases.replica_url = env.text("DATABASE_READ_URL", "");
  databases.replica_wait =
      std::chrono::milliseconds(env.integer("EXPORT_REPLICA_WAIT_MS", 5000, 0, 600000));
  return databases;
}

std::vector<ExportEntry> load_active_links(const SelectionDatabases& databases, std::ostream& log) {
  const std::unique_ptr<pqxx::connection> connection = selection_connection(databases, log);
  pqxx::read_transaction tx(*connection);
  const pqxx::result rows = tx.exec(
      "SELECT code, target, status, forward_query FROM links"
      " WHERE NOT disabled AND (expires_at IS NULL OR expires_at > now())"
      " ORDER BY code");
  std::vector<ExportEntry> entries;
  entries.reserve(rows.size());
  for (const auto& row : rows) entries.push_back(entry_of(row));
  return entries;
}

Selection load_selection(const core::Env& env) {
  Selection s;
  s.hot_window = std::chrono::seconds(env.integer("EXPORT_HOT_WINDOW_S", 3600, 60, 30 * 86400));
  s.min_clicks = env.integer("EXPORT_MIN_CLICKS", 100, 1, 1LL << 50);
  s.top_k = env.integer("EXPORT_TOP_K", 0, 0, 100000000);
  s.stable_for = std::chrono::seconds(env.integer("EXPORT_STABLE_S", 600, 0, 30 * 86400));
  s.horizon = std::chrono::seconds(env.integer("EXPORT_HORIZON_S", 86400, 0, 365 * 86400));
  return s;
}

std::vector<std::pair<std::string, std::string>> describe(const Selection& selection) {
  return {{"mode", "hot_stable"},
          {"hot_window_s", std::to_string(selection.hot_window.count())},
          {"min_clicks", std::to_string(selection.min_clicks)},
          {"top_k", std::to_string(selection.top_k)},
          {"stable_s", std::to_string(selection.stable_for.count())},
          {"horizon_s", std::to_string(selection.horizon.count())}};
}

std::vector<ExportEntry> load_hot_links(const SelectionDatabases& databases,
                                        const Selection& selection, std::ostream& log) {
  const std::unique_ptr<pqxx::connection> connection = selection_connection(databases, log);
  pqxx::read_transaction tx(*connection);
  const pqxx::result rows = tx.exec_params(
      "WITH clicks AS ("
      "  SELECT code, sum(humans + bots) AS clicks FROM visit_counts_hourly"
      "  WHERE hour >= date_trunc('hour', now() - make_interval(secs => $1))"
      "  GROUP BY code),"
      " candidates AS ("
      "  SELECT l.code, l.target, l.status, l.forward_query, c.clicks"
      "  FROM clicks c JOIN links l USING (code)"
      "  WHERE NOT l.disabled"
      "    AND l.updated_at <= now() - make_interval(secs => $4)"
      "    AND (l.expires_at IS NULL OR l.expires_at > now() + make_interval(secs => $5))),"
      " ranked AS ("
      "  SELECT *, row_number() OVER (ORDER BY clicks DESC, code) AS rank FROM candidates)"
      " SELECT code, target, status, forward_query, clicks FROM ranked"
      " WHERE clicks >= $2 OR rank <= $3"
      " ORDER BY code",
      static_cast<double>(selection.hot_window.count()), selection.min_clicks, selection.top_k,
      static_cast<double>(selection.stable_for.count()),
      static_cast<double>(selection.horizon.count()));
  std::vector<ExportEntry> entries;
  entries.reserve(rows.size());
  for (const auto& row : rows) {
    ExportEntry entry = entry_of(row);
    entry.hotness = row[4].as<std::uint64_t>();
    entries.push_back(std::move(entry));
  }
  return entries;
}

}  // namespace exporter
