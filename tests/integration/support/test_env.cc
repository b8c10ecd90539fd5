#include "integration/support/test_env.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <pqxx/pqxx>
#include <random>
#include <stdexcept>
#include <thread>

namespace integration {

namespace {

using Clock = std::chrono::steady_clock;

// PostgreSQL identifiers are at most 63 bytes.
constexpr std::size_t kMaxTestPartOfName = 40;

std::string unique_database_name() {
  std::string test = "no_test";
  if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info()) {
    test = std::string(info->test_suite_name()) + "_" + info->name();
  }
  std::string sanitized;
  for (unsigned char c : test) {
    sanitized += std::isalnum(c) ? static_cast<char>(std::tolower(c)) : '_';
  }
  sanitized.resize(std::min(sanitized.size(), kMaxTestPartOfName));
  std::random_device random;
  char suffix[9];
  std::snprintf(suffix, sizeof suffix, "%08x", static_cast<unsigned>(random()));
  return "it_" + sanitized + "_" + std::to_string(getpid()) + "_" + suffix;
}

void drop_database(const std::string& server_url, const std::string& name) {
  pqxx::connection c{server_url};
  pqxx::nontransaction n{c};
  n.exec("DROP DATABASE IF EXISTS " + c.quote_name(name) + " WITH (FORCE)");
}

// Catalog queries for dump_schema; each yields sorted rows for the public schema.
const char* const kSchemaQueries[] = {
    R"(SELECT 'relation', c.relname, c.relkind::text, c.relpersistence::text
       FROM pg_class c
       WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r','p','v','m','S','f')
       ORDER BY 2)",
    R"(SELECT 'column', table_name, ordinal_position::text, column_name, data_type, udt_name,
              is_nullable, column_default, character_maximum_length::text,
              numeric_precision::text, datetime_precision::text, collation_name,
              is_identity, identity_generation, is_generated, generation_expression
       FROM information_schema.columns
       WHERE table_schema = 'public'
       ORDER BY 2, 3)",
    R"(SELECT 'constraint', c.conrelid::regclass::text, c.conname, c.contype::text,
              pg_get_constraintdef(c.oid)
       FROM pg_constraint c
       WHERE c.connamespace = 'public'::regnamespace
       ORDER BY 2, 3)",
    R"(SELECT 'index', tablename, indexname, indexdef
       FROM pg_indexes
       WHERE schemaname = 'public'
       ORDER BY 2, 3)",
    R"(SELECT 'trigger', t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid)
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
       WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal
       ORDER BY 2, 3)",
    R"(SELECT 'function', p.proname, pg_get_function_identity_arguments(p.oid),
              CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid)
                   ELSE p.prokind::text END
       FROM pg_proc p
       WHERE p.pronamespace = 'public'::regnamespace
       ORDER BY 2, 3)",
    R"(SELECT 'sequence', sequencename, data_type::text, start_value::text, min_value::text,
              max_value::text, increment_by::text, cycle::text
       FROM pg_sequences
       WHERE schemaname = 'public'
       ORDER BY 2)",
    R"(SELECT 'view', viewname, definition
       FROM pg_views
       WHERE schemaname = 'public'
       ORDER BY 2)",
    R"(SELECT 'enum', t.typname, string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
       FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
       WHERE t.typnamespace = 'public'::regnamespace
       GROUP BY t.typname
       ORDER BY 2)",
};

std::string rows_as_text(const pqxx::result& rows) {
  std::string out;
  for (const auto& row : rows) {
    for (pqxx::row::size_type i = 0; i < row.size(); ++i) {
      if (i > 0) out += '|';
      out += row[i].is_null() ? "<null>" : row[i].c_str();
    }
    out += '\n';
  }
  return out;
}

}  // namespace

std::string test_server_url() {
  const char* url = std::getenv("TEST_DATABASE_URL");
  if (url == nullptr || *url == '\0') {
    throw std::runtime_error(
        "TEST_DATABASE_URL is not set: integration tests need the PostgreSQL that scripts/test "
        "starts; run them through scripts/test");
  }
  return url;
}

std::string url_with_database(const std::string& server_url, const std::string& dbname) {
  const std::size_t scheme_end = server_url.find("://");
  if (scheme_end == std::string::npos) return server_url + " dbname=" + dbname;
  const std::size_t authority = scheme_end + 3;
  const std::size_t query = server_url.find('?', authority);
  const std::size_t path = server_url.find('/', authority);
  const std::size_t authority_end = std::min(path, query);
  std::string url = server_url.substr(0, authority_end) + "/" + dbname;
  if (query != std::string::npos) url += server_url.substr(query);
  return url;
}

std::string query_text(const std::string& database_url, const std::string& sql) {
  pqxx::connection c{database_url};
  pqxx::nontransaction n{c};
  return rows_as_text(n.exec(sql));
}

std::string dump_schema(const std::string& database_url) {
  pqxx::connection c{database_url};
  pqxx::nontransaction n{c};
  std::string out;
  for (const char* sql : kSchemaQueries) out += rows_as_text(n.exec(sql));
  return out;
}

TestDatabase::TestDatabase(Schema schema) : TestDatabase(test_server_url(), schema) {}

TestDatabase::TestDatabase(const std::string& server_url, Schema schema)
    : server_url_(server_url),
      name_(unique_database_name()),
      url_(url_with_database(server_url, name_)) {
  {
    pqxx::connection c{server_url_};
    pqxx::nontransaction n{c};
    n.exec("CREATE DATABASE " + c.quote_name(name_));
  }
  if (schema == Schema::kMigrated) {
    const CommandResult result = migrate();
    if (!result.exit.has_value() || !result.exit->success()) {
      drop_database(server_url_, name_);
      throw std::runtime_error("origin migrate failed on " + name_ + ": " + result.describe());
    }
  }
}

TestDatabase::~TestDatabase() {
  try {
    drop_database(server_url_, name_);
  } catch (const std::exception& e) {
    std::cerr << "could not drop test database " << name_ << ": " << e.what() << "\n";
  }
}

CommandResult TestDatabase::migrate() const {
  return run_origin({"migrate"}, {{"DATABASE_URL", url_}});
}

PrivateCluster::PrivateCluster() {
  const char* script = std::getenv("TEST_PG_CLUSTER_SCRIPT");
  if (script == nullptr || *script == '\0') {
    throw std::runtime_error(
        "TEST_PG_CLUSTER_SCRIPT is not set: tests that stop PostgreSQL need scripts/pg-cluster; "
        "run them through scripts/test");
  }
  script_ = script;
  // The script prefers ports outside the kernel's ephemeral range, so no
  // outgoing connection takes the port while the cluster is stopped.
  const CommandResult port = run_script({"free-port"});
  if (!port.exit.has_value() || !port.exit->success()) {
    throw std::runtime_error("pg-cluster free-port failed: " + port.describe());
  }
  port_ = static_cast<uint16_t>(std::stoi(port.out));
  // The cluster runs as user postgres, which must be able to traverse to DIR:
  // scripts/test's TMPDIR is, and so is /tmp. The script chowns DIR itself.
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/it-pg-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
  }
  parent_dir_ = pattern;
  chmod(parent_dir_.c_str(), 0755);
  data_dir_ = parent_dir_ + "/data";

  const CommandResult init = run_script({"init", data_dir_});
  if (!init.exit.has_value() || !init.exit->success()) {
    std::error_code ignored;
    std::filesystem::remove_all(parent_dir_, ignored);
    throw std::runtime_error("pg-cluster init " + data_dir_ + " failed: " + init.describe());
  }
  try {
    start();
  } catch (...) {
    run_script({"stop", data_dir_, "immediate"});
    std::error_code ignored;
    std::filesystem::remove_all(parent_dir_, ignored);
    throw;
  }
}

PrivateCluster::~PrivateCluster() {
  if (running_) {
    const CommandResult stopped = run_script({"stop", data_dir_, "immediate"});
    if (!stopped.exit.has_value() || !stopped.exit->success()) {
      std::cerr << "pg-cluster stop " << data_dir_ << " failed: " << stopped.describe() << "\n";
    }
  }
  std::error_code ignored;
  std::filesystem::remove_all(parent_dir_, ignored);
}

CommandResult PrivateCluster::run_script(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{script_};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, inherited_environment(), std::chrono::seconds(120));
}

std::string PrivateCluster::server_url() const {
  return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/postgres";
}

void PrivateCluster::stop(const std::string& mode) {
  const CommandResult result = run_script({"stop", data_dir_, mode});
  if (!result.exit.has_value() || !result.exit->success()) {
    throw std::runtime_error("pg-cluster stop " + mode + " failed: " + result.describe());
  }
  running_ = false;
}

void PrivateCluster::start() {
  const CommandResult result = run_script({"start", data_dir_, std::to_string(port_)});
  if (!result.exit.has_value() || !result.exit->success()) {
    throw std::runtime_error("pg-cluster start on port " + std::to_string(port_) +
                             " failed: " + result.describe());
  }
  running_ = true;
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (!accepting()) {
    if (Clock::now() >= deadline) {
      throw std::runtime_error("PostgreSQL on port " + std::to_string(port_) +
                               " does not accept connections 30 s after pg-cluster start");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

bool PrivateCluster::accepting() const {
  try {
    pqxx::connection c{server_url()};
    return true;
  } catch (const pqxx::broken_connection&) {
    return false;
  }
}

}  // namespace integration
