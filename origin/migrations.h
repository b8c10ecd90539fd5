// Schema migrations: numbered SQL files embedded at build time, applied in
// order, each in its own transaction, recorded in schema_migrations.
#pragma once

#include <functional>
#include <pqxx/connection>
#include <string>
#include <string_view>
#include <vector>

namespace origin {

struct Migration {
  std::string name;  // "0001_links": the file name without ".sql"
  std::string_view sql;
};

// The migrations compiled into this binary, in order.
const std::vector<Migration>& embedded_migrations();

// Applies the pending ones. Serialized across processes by an advisory lock,
// so concurrent `origin migrate` runs are safe. Calls `progress` with each
// name applied. Returns the names applied (empty: nothing to do). Throws on
// any database error; a failed migration leaves no trace (own transaction).
std::vector<std::string> apply_migrations(pqxx::connection& conn,
                                          const std::vector<Migration>& migrations,
                                          const std::function<void(const std::string&)>& progress);

// Names of embedded migrations not yet recorded in the database, in order.
std::vector<std::string> pending_migrations(pqxx::connection& conn,
                                            const std::vector<Migration>& migrations);

}  // namespace origin
