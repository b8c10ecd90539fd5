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

}  // namespace exporter
