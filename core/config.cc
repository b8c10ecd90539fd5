#include "core/config.h"

#include <cerrno>
#include <cstdlib>

namespace core {

Env::Env() : lookup_([](const char* name) { return std::getenv(name); }) {}

Env::Env(Lookup lookup) : lookup_(std::move(lookup)) {}

std::string Env::text(const char* name, const std::string& fallback) const {
  const char* value = lookup_(name);
  if (value == nullptr || *value == '\0') return fallback;
  return value;
}

std::int64_t Env::integer(const char* name, std::int64_t fallback, std::int64_t min,
                          std::int64_t max) const {
  const char* value = lookup_(name);
  if (value == nullptr || *value == '\0') return fallback;
  errno = 0;
  char* end = nullptr;
  long long parsed = std::strtoll(value, &end, 10);
  if (errno != 0 || *end != '\0' || parsed < min || parsed > max) {
    throw ConfigError(std::string(name) + " must be an integer from " + std::to_string(min) +
                      " to " + std::to_string(max) + ", got '" + value + "'");
  }
  return parsed;
}

bool Env::boolean(const char* name, bool fallback) const {
  std::string value = text(name, "");
  if (value.empty()) return fallback;
  for (char& c : value) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (value == "true" || value == "1" || value == "yes" || value == "on") return true;
  if (value == "false" || value == "0" || value == "no" || value == "off") return false;
  throw ConfigError(std::string(name) + " must be true or false, got '" + value + "'");
}

DatabaseConfig load_database_config(const Env& env) {
  DatabaseConfig config;
  config.url = env.text("DATABASE_URL", config.url);
  config.pool_size = static_cast<std::size_t>(env.integer("DB_POOL_SIZE", 5, 1, 500));
  config.max_overflow = static_cast<std::size_t>(env.integer("DB_MAX_OVERFLOW", 10, 0, 500));
  config.statement_timeout =
      std::chrono::milliseconds(env.integer("DB_STATEMENT_TIMEOUT_MS", 2000, 10, 600000));
  config.acquire_timeout =
      std::chrono::milliseconds(env.integer("DB_ACQUIRE_TIMEOUT_MS", 1000, 1, 60000));
  config.overflow_idle = std::chrono::seconds(env.integer("DB_OVERFLOW_IDLE_S", 30, 1, 86400));
  return config;
}

}  // namespace core
