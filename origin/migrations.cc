#include "origin/migrations.h"

#include <pqxx/pqxx>
#include <set>

namespace origin {
namespace {

// Arbitrary constant shared by every process that migrates this schema.
constexpr long long kMigrationLockKey = 7361726;

std::set<std::string> applied_names(pqxx::transaction_base& txn) {
  std::set<std::string> names;
  pqxx::result exists = txn.exec("SELECT to_regclass('public.schema_migrations') IS NOT NULL");
  if (!exists[0][0].as<bool>()) return names;
  for (const auto& row : txn.exec("SELECT name FROM schema_migrations")) {
    names.insert(row[0].as<std::string>());
  }
  return names;
}

}  // namespace

std::vector<std::string> apply_migrations(pqxx::connection& conn,
                                          const std::vector<Migration>& migrations,
                                          const std::function<void(const std::string&)>& progress) {
  {
    pqxx::nontransaction session(conn);
    session.exec("SELECT pg_advisory_lock(" + std::to_string(kMigrationLockKey) + ")");
    session.exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " name text PRIMARY KEY,"
        " applied_at timestamptz NOT NULL DEFAULT now())");
  }
  std::vector<std::string> applied;
  try {
    std::set<std::string> done;
    {
      pqxx::read_transaction txn(conn);
      done = applied_names(txn);
    }
    for (const Migration& m : migrations) {
      if (done.count(m.name) != 0) continue;
      pqxx::work txn(conn, "migrate");
      txn.exec(std::string(m.sql));
      txn.exec("INSERT INTO schema_migrations (name) VALUES (" + txn.quote(m.name) + ")");
      txn.commit();
      applied.push_back(m.name);
      if (progress) progress(m.name);
    }
  } catch (...) {
    try {
      pqxx::nontransaction session(conn);
      session.exec("SELECT pg_advisory_unlock(" + std::to_string(kMigrationLockKey) + ")");
    } catch (const std::exception&) {
      // The session is gone, and its lock with it; report the first error.
    }
    throw;
  }
  pqxx::nontransaction session(conn);
  session.exec("SELECT pg_advisory_unlock(" + std::to_string(kMigrationLockKey) + ")");
  return applied;
}

std::vector<std::string> pending_migrations(pqxx::connection& conn,
                                            const std::vector<Migration>& migrations) {
  pqxx::read_transaction txn(conn);
  std::set<std::string> done = applied_names(txn);
  std::vector<std::string> pending;
  for (const Migration& m : migrations) {
    if (done.count(m.name) == 0) pending.push_back(m.name);
  }
  return pending;
}

}  // namespace origin
