// Configuration of `origin serve`, read from the environment.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "core/config.h"

namespace origin {

struct OriginConfig {
  core::DatabaseConfig database;
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 8080;
  std::string public_base_url;  // without trailing '/'
  std::string public_host;      // lowercase host of public_base_url
  unsigned threads = 2;
  std::size_t code_length = 7;
  int redirect_max_age = 90;  // seconds, Cache-Control on redirects
  std::size_t max_body_bytes = 8192;
  std::size_t max_header_bytes = 8192;
  std::chrono::seconds read_timeout{15};  // per request, headers and body
  std::chrono::seconds idle_timeout{30};  // keep-alive between requests
  std::size_t max_pending_db_requests = 4096;
};

// Reads ORIGIN_LISTEN, PUBLIC_BASE_URL, ORIGIN_THREADS, CODE_LENGTH,
// REDIRECT_MAX_AGE, MAX_BODY_BYTES, ORIGIN_READ_TIMEOUT_S, ORIGIN_IDLE_TIMEOUT_S
// and the database variables. Throws core::ConfigError naming the variable.
OriginConfig load_origin_config(const core::Env& env);

}  // namespace origin
