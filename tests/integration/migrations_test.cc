// `origin migrate` and the schema check of `origin serve`, against databases
// of their own.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "integration/support/process.h"
#include "integration/support/test_env.h"

namespace integration {
namespace {

using namespace std::chrono_literals;
using Schema = TestDatabase::Schema;

// Stems ("0001_init") of migrations/NNNN_name.sql in the source tree, sorted.
std::vector<std::string> migration_stems() {
  static const std::regex kName(R"(\d{4}_[A-Za-z0-9_]+\.sql)");
  std::vector<std::string> stems;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(PROJECT_SOURCE_DIR) + "/migrations")) {
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, kName)) stems.push_back(entry.path().stem().string());
  }
  std::sort(stems.begin(), stems.end());
  return stems;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// Runs `origin serve` against `database_url`, expecting it to exit on its own.
CommandResult serve_once(const std::string& database_url) {
  return run_origin({"serve"},
                    {{"DATABASE_URL", database_url},
                     {"ORIGIN_LISTEN", "127.0.0.1:" + std::to_string(free_port())},
                     {"PUBLIC_BASE_URL", OriginProcess::kPublicBaseUrl}},
                    15s);
}

// Expects serve to refuse quickly with exit 1 and one stderr line naming `stem`.
void expect_refusal_naming(const CommandResult& result, const std::string& stem) {
  ASSERT_TRUE(result.exit.has_value())
      << "serve kept running on a schema that is behind: " << result.describe();
  EXPECT_EQ(result.exit->code, 1) << "serve exit status: " << result.describe();
  EXPECT_LT(result.elapsed, 5s) << "serve refusal time: " << result.describe();
  const std::vector<std::string> lines = lines_of(result.err);
  EXPECT_EQ(lines.size(), 1u) << "serve refusal is one line on stderr: " << result.describe();
  EXPECT_NE(result.err.find(stem), std::string::npos)
      << "serve refusal names the missing migration " << stem << ": " << result.describe();
}

TEST(Migrations, MigrateOnAFreshDatabaseRecordsEachMigrationInOrderInItsOwnTransaction) {
  const std::vector<std::string> stems = migration_stems();
  ASSERT_FALSE(stems.empty()) << "no migrations/NNNN_name.sql in " << PROJECT_SOURCE_DIR;
  TestDatabase db(Schema::kEmpty);

  const CommandResult result = db.migrate();
  ASSERT_TRUE(result.exit.has_value() && result.exit->success()) << result.describe();

  // xmin is the id of the transaction that inserted the row: increasing ids
  // mean one transaction per migration, applied in file order.
  const std::vector<std::string> rows = lines_of(query_text(
      db.url(), "SELECT name, xmin::text FROM schema_migrations ORDER BY xmin::text::bigint"));
  ASSERT_EQ(rows.size(), stems.size()) << "schema_migrations rows:\n"
                                       << query_text(db.url(), "SELECT * FROM schema_migrations");
  std::string previous_xmin;
  for (std::size_t i = 0; i < stems.size(); ++i) {
    const std::string name = rows[i].substr(0, rows[i].find('|'));
    const std::string xmin = rows[i].substr(rows[i].find('|') + 1);
    EXPECT_EQ(name, stems[i]) << "row " << i << " of schema_migrations in commit order";
    EXPECT_NE(xmin, previous_xmin)
        << stems[i] << " was recorded in the same transaction as " << (i > 0 ? stems[i - 1] : "");
    previous_xmin = xmin;
  }
}

TEST(Migrations, MigratingTwiceIsANoOp) {
  TestDatabase db(Schema::kEmpty);
  const CommandResult first = db.migrate();
  ASSERT_TRUE(first.exit.has_value() && first.exit->success()) << first.describe();
  const std::string recorded = query_text(db.url(), "SELECT * FROM schema_migrations ORDER BY 1");
  const std::string schema = dump_schema(db.url());

  const CommandResult second = db.migrate();
  ASSERT_TRUE(second.exit.has_value() && second.exit->success()) << second.describe();
  EXPECT_EQ(query_text(db.url(), "SELECT * FROM schema_migrations ORDER BY 1"), recorded)
      << "schema_migrations after the second migrate";
  EXPECT_EQ(dump_schema(db.url()), schema) << "schema after the second migrate";
  static const std::regex kNothingApplied(
      "nothing|no pending|no migrations|0 migrations|up.to.date|already",
      std::regex::icase | std::regex::ECMAScript);
  EXPECT_TRUE(std::regex_search(second.out + second.err, kNothingApplied))
      << "the second migrate says nothing was applied: " << second.describe();
}

TEST(Migrations, FreshAndRemigratedDatabasesEndWithIdenticalSchemas) {
  TestDatabase fresh(Schema::kEmpty);
  TestDatabase remigrated(Schema::kEmpty);
  const CommandResult once = fresh.migrate();
  ASSERT_TRUE(once.exit.has_value() && once.exit->success()) << once.describe();
  for (int run = 1; run <= 2; ++run) {
    const CommandResult again = remigrated.migrate();
    ASSERT_TRUE(again.exit.has_value() && again.exit->success())
        << "migrate run " << run << ": " << again.describe();
  }

  const std::string fresh_schema = dump_schema(fresh.url());
  EXPECT_NE(fresh_schema.find("schema_migrations"), std::string::npos)
      << "the dump covers the migrated schema:\n"
      << fresh_schema;
  EXPECT_EQ(dump_schema(remigrated.url()), fresh_schema) << "schema migrated twice vs. once";
  const std::string versions = "SELECT name FROM schema_migrations ORDER BY 1";
  EXPECT_EQ(query_text(remigrated.url(), versions), query_text(fresh.url(), versions))
      << "versions recorded";
}

TEST(Migrations, ServeRefusesAnEmptyDatabaseNamingTheFirstMigration) {
  const std::vector<std::string> stems = migration_stems();
  ASSERT_FALSE(stems.empty()) << "no migrations/NNNN_name.sql in " << PROJECT_SOURCE_DIR;
  TestDatabase db(Schema::kEmpty);
  expect_refusal_naming(serve_once(db.url()), stems.front());
}

TEST(Migrations, ServeRefusesASchemaThatIsBehindNamingTheMissingMigration) {
  const std::vector<std::string> stems = migration_stems();
  ASSERT_FALSE(stems.empty()) << "no migrations/NNNN_name.sql in " << PROJECT_SOURCE_DIR;
  TestDatabase db(Schema::kMigrated);
  query_text(
      db.url(),
      "DELETE FROM schema_migrations WHERE name = (SELECT max(name) FROM schema_migrations)");
  expect_refusal_naming(serve_once(db.url()), stems.back());
}

}  // namespace
}  // namespace integration
