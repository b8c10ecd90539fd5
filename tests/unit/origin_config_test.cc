// load_origin_config: DATABASE_READ_URL and DB_READ_POOL_SIZE, RATE_LIMIT_EXEMPT_ADMIN.
#include "origin/origin_config.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

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
