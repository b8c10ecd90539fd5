// Reading configuration from environment variables, with validation.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

namespace core {

// Thrown for a configuration value that cannot be used; what() is one line
// naming the variable and the problem.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Typed access to environment variables. `lookup` returns nullptr for unset
// variables (defaults to ::getenv). An empty value counts as unset.
class Env {
 public:
  using Lookup = std::function<const char*(const char*)>;
  Env();
  explicit Env(Lookup lookup);

  std::string text(const char* name, const std::string& fallback) const;
  // Throws ConfigError when the value is not an integer within [min, max].
  std::int64_t integer(const char* name, std::int64_t fallback, std::int64_t min,
                       std::int64_t max) const;
  // Accepts true/false/1/0/yes/no/on/off; throws ConfigError otherwise.
  bool boolean(const char* name, bool fallback) const;

 private:
  Lookup lookup_;
};

// How to reach PostgreSQL and how the pool behaves (shared by both binaries).
struct DatabaseConfig {
  std::string url = "postgresql:///shortener";
  std::size_t pool_size = 5;
  std::size_t max_overflow = 10;
  std::chrono::milliseconds statement_timeout{2000};
  std::chrono::milliseconds acquire_timeout{1000};
  std::chrono::seconds overflow_idle{30};
};

// DATABASE_URL, DB_POOL_SIZE, DB_MAX_OVERFLOW, DB_STATEMENT_TIMEOUT_MS,
// DB_ACQUIRE_TIMEOUT_MS, DB_OVERFLOW_IDLE_S.
DatabaseConfig load_database_config(const Env& env);

}  // namespace core
