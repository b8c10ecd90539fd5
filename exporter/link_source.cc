#include "exporter/link_source.h"

#include <pqxx/pqxx>

namespace exporter {

std::vector<ExportEntry> load_active_links(const std::string& database_url) {
  pqxx::connection connection(database_url);
  pqxx::read_transaction tx(connection);
  const pqxx::result rows = tx.exec(
      "SELECT code, target, status, forward_query FROM links"
      " WHERE NOT disabled AND (expires_at IS NULL OR expires_at > now())"
      " ORDER BY code");
  std::vector<ExportEntry> entries;
  entries.reserve(rows.size());
  for (const auto& row : rows) {
    ExportEntry entry;
    entry.code = row[0].as<std::string>();
    entry.target = row[1].as<std::string>();
    entry.status = row[2].as<int>();
    entry.forward_query = row[3].as<bool>();
    entries.push_back(std::move(entry));
  }
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

std::vector<ExportEntry> load_hot_links(const std::string& database_url,
                                        const Selection& selection) {
  pqxx::connection connection(database_url);
  pqxx::read_transaction tx(connection);
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
    ExportEntry entry;
    entry.code = row[0].as<std::string>();
    entry.target = row[1].as<std::string>();
    entry.status = row[2].as<int>();
    entry.forward_query = row[3].as<bool>();
    entry.hotness = row[4].as<std::uint64_t>();
    entries.push_back(std::move(entry));
  }
  return entries;
}

}  // namespace exporter
