// load_origin_config: DATABASE_READ_URL and DB_READ_POOL_SIZE, RATE_LIMIT_EXEMPT_ADMIN,
// REDIRECT_BATCH_MAX_CODES and REDIRECT_BATCH_QUERIES.
#include "origin/origin_config.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"

namespace origin {
namespace {

core::Env env_of(const std::map<std::string, std::string>& values) {
  return core::Env([values](const char* name) -> const char* {
    auto it = values.find(name);
    return it == values.end() ? nullptr : it->second.c_str();
  });
}

TEST(OriginConfig, WithoutAReadUrlEverythingReadsThePrimary) {
  const OriginConfig config = load_origin_config(env_of({{"DATABASE_URL", "postgresql:///p"}}));
  EXPECT_FALSE(config.read_database.has_value());
}

TEST(OriginConfig, AReadUrlGetsASmallPoolWithoutOverflowAndThePrimarySettings) {
  const OriginConfig config = load_origin_config(env_of({{"DATABASE_URL", "postgresql:///p"},
                                                         {"DATABASE_READ_URL", "postgresql:///r"},
                                                         {"DB_STATEMENT_TIMEOUT_MS", "750"}}));
  ASSERT_TRUE(config.read_database.has_value());
  EXPECT_EQ(config.read_database->url, "postgresql:///r");
  EXPECT_EQ(config.read_database->pool_size, 2u);
  EXPECT_EQ(config.read_database->max_overflow, 0u);
  EXPECT_EQ(config.read_database->statement_timeout.count(), 750);
  EXPECT_EQ(config.database.url, "postgresql:///p");
}

TEST(OriginConfig, ReadPoolSizeIsValidatedAndNamed) {
  const auto with_size = [](const std::string& size) {
    return env_of({{"DATABASE_READ_URL", "postgresql:///r"}, {"DB_READ_POOL_SIZE", size}});
  };
  EXPECT_EQ(load_origin_config(with_size("7")).read_database->pool_size, 7u);
  for (const char* bad : {"0", "-1", "x", "501"}) {
    try {
      load_origin_config(with_size(bad));
      ADD_FAILURE() << "accepted DB_READ_POOL_SIZE=" << bad;
    } catch (const core::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("DB_READ_POOL_SIZE"), std::string::npos) << bad;
    }
  }
}

TEST(OriginConfig, RedirectBatchesDefaultToThePoolAndStayWithinTheWorkers) {
  const OriginConfig defaults = load_origin_config(env_of({}));
  EXPECT_EQ(defaults.redirect_batch_max_codes, 128u);
  EXPECT_EQ(defaults.redirect_batch_queries, 5u) << "DB_POOL_SIZE";
  EXPECT_EQ(load_origin_config(env_of({{"DB_POOL_SIZE", "3"}})).redirect_batch_queries, 3u);
  const OriginConfig set = load_origin_config(
      env_of({{"REDIRECT_BATCH_MAX_CODES", "1000"}, {"REDIRECT_BATCH_QUERIES", "12"}}));
  EXPECT_EQ(set.redirect_batch_max_codes, 1000u);
  EXPECT_EQ(set.redirect_batch_queries, 12u);
  EXPECT_EQ(load_origin_config(env_of({{"DB_POOL_SIZE", "2"},
                                       {"DB_MAX_OVERFLOW", "1"},
                                       {"REDIRECT_BATCH_QUERIES", "12"}}))
                .redirect_batch_queries,
            3u)
      << "one per database worker at most";
  for (const auto& [name, bad] :
       std::vector<std::pair<std::string, std::string>>{{"REDIRECT_BATCH_MAX_CODES", "0"},
                                                        {"REDIRECT_BATCH_MAX_CODES", "1001"},
                                                        {"REDIRECT_BATCH_QUERIES", "0"},
                                                        {"REDIRECT_BATCH_QUERIES", "many"}}) {
    try {
      load_origin_config(env_of({{name, bad}}));
      ADD_FAILURE() << "accepted " << name << "=" << bad;
    } catch (const core::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << bad;
    }
  }
}

TEST(OriginConfig, AdminKeysAreRateLimitedUnlessExemptedExplicitly) {
  EXPECT_FALSE(load_origin_config(env_of({})).rate_limit_exempt_admin);
  EXPECT_TRUE(
      load_origin_config(env_of({{"RATE_LIMIT_EXEMPT_ADMIN", "true"}})).rate_limit_exempt_admin);
  EXPECT_FALSE(
      load_origin_config(env_of({{"RATE_LIMIT_EXEMPT_ADMIN", "false"}})).rate_limit_exempt_admin);
  try {
    load_origin_config(env_of({{"RATE_LIMIT_EXEMPT_ADMIN", "admins"}}));
    ADD_FAILURE() << "accepted RATE_LIMIT_EXEMPT_ADMIN=admins";
  } catch (const core::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("RATE_LIMIT_EXEMPT_ADMIN"), std::string::npos);
  }
}

}  // namespace
}  // namespace origin
