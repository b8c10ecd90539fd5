// PostgreSQL for integration tests: a throwaway database per test on the server
// scripts/test started (TEST_DATABASE_URL), and a private cluster for tests
// that stop and start PostgreSQL themselves (TEST_PG_CLUSTER_SCRIPT).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "integration/support/process.h"

namespace integration {

// TEST_DATABASE_URL, the superuser URL of the server scripts/test started.
// Throws std::runtime_error saying to run scripts/test if it is unset, so a test
// run outside the harness fails loudly instead of skipping.
std::string test_server_url();

// `server_url` (URI or key=value conninfo) with its database replaced by `dbname`.
std::string url_with_database(const std::string& server_url, const std::string& dbname);

// The public schema as sorted text: columns, constraints, indexes, triggers,
// functions, sequences, views and enum types (no OIDs, no data). Two databases
// with the same schema give the same text.
std::string dump_schema(const std::string& database_url);

// Runs `sql` and returns each row as its fields joined by '|' (NULL as
// "<null>"), one row per line, in the order the query returns them.
std::string query_text(const std::string& database_url, const std::string& sql);

// A database created for one test and dropped (WITH (FORCE)) when destroyed.
class TestDatabase {
 public:
  enum class Schema { kEmpty, kMigrated };

  // Creates a database named after the current test, the PID and a random
  // suffix on test_server_url() (first form) or `server_url` (a superuser URL);
  // with kMigrated, then runs `origin migrate` on it. Throws std::runtime_error
  // on failure (with the migrate output).
  explicit TestDatabase(Schema schema = Schema::kMigrated);
  TestDatabase(const std::string& server_url, Schema schema);
  // Drops the database; a failure is printed, not thrown.
  ~TestDatabase();
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  const std::string& name() const { return name_; }
  const std::string& url() const { return url_; }
  // Runs `origin migrate` against this database and returns what happened.
  CommandResult migrate() const;

 private:
  std::string server_url_;
  std::string name_;
  std::string url_;
};

// A PostgreSQL cluster of its own, driven through TEST_PG_CLUSTER_SCRIPT, in a
// temporary directory; stopped and removed when destroyed.
class PrivateCluster {
 public:
  // Inits a cluster in a new directory under $TMPDIR (or /tmp) and starts it on
  // a port from `pg-cluster free-port`.
  // Throws std::runtime_error if TEST_PG_CLUSTER_SCRIPT is unset or a step fails.
  PrivateCluster();
  ~PrivateCluster();
  PrivateCluster(const PrivateCluster&) = delete;
  PrivateCluster& operator=(const PrivateCluster&) = delete;

  uint16_t port() const { return port_; }
  // Superuser URL of the cluster's "postgres" database.
  std::string server_url() const;
  // Stops the cluster; `mode` is "fast" or "immediate". Returns once the script
  // has returned. Throws on failure.
  void stop(const std::string& mode);
  // Starts the cluster again on the same port and returns once it accepts
  // connections (at most 30 s). Throws on failure.
  void start();
  // True if a connection to the cluster succeeds right now.
  bool accepting() const;

 private:
  CommandResult run_script(const std::vector<std::string>& args) const;

  std::string script_;
  std::string parent_dir_;
  std::string data_dir_;
  uint16_t port_ = 0;
  bool running_ = false;
};

}  // namespace integration
