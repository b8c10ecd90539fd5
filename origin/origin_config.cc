#include "origin/origin_config.h"

#include <unistd.h>

#include <algorithm>
#include <thread>

#include "core/code.h"

namespace origin {
namespace {

void parse_listen(const std::string& value, OriginConfig& config) {
  auto colon = value.rfind(':');
  if (colon == std::string::npos || colon + 1 == value.size()) {
    throw core::ConfigError("ORIGIN_LISTEN must be host:port, got '" + value + "'");
  }
  std::string host = value.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string port = value.substr(colon + 1);
  long parsed = 0;
  for (char c : port) {
    if (c < '0' || c > '9' || parsed > 65535) {
      throw core::ConfigError("ORIGIN_LISTEN port must be 1-65535, got '" + port + "'");
    }
    parsed = parsed * 10 + (c - '0');
  }
  if (parsed < 1 || parsed > 65535) {
    throw core::ConfigError("ORIGIN_LISTEN port must be 1-65535, got '" + port + "'");
  }
  config.listen_host = host.empty() ? "127.0.0.1" : host;
  config.listen_port = static_cast<std::uint16_t>(parsed);
}

// Host of an http(s) base URL, lowercased, without port or brackets.
std::string host_of(const std::string& url) {
  auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return {};
  std::string rest = url.substr(scheme_end + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (!rest.empty() && rest.front() == '[')
    return core::lowercase_ascii(rest.substr(1, rest.find(']') - 1));
  return core::lowercase_ascii(
      rest.substr(0, rest.rfind(':') == std::string::npos ? rest.size() : rest.rfind(':')));
}

void load_observability(const core::Env& env, OriginConfig& config) {
  const std::string allow = env.text("METRICS_ALLOW", "127.0.0.0/8,::1/128");
  std::string error;
  auto ranges = AddressRanges::parse(allow, &error);
  if (!ranges) throw core::ConfigError("METRICS_ALLOW: " + error);
  config.metrics_allow = std::move(*ranges);
  const std::string access = env.text("ACCESS_LOG", "errors");
  if (access == "off") {
    config.access_log = OriginConfig::AccessLog::kOff;
  } else if (access == "errors") {
    config.access_log = OriginConfig::AccessLog::kErrors;
  } else if (access == "all") {
    config.access_log = OriginConfig::AccessLog::kAll;
  } else {
    throw core::ConfigError("ACCESS_LOG must be off, errors or all, got '" + access + "'");
  }
  config.access_log_slow =
      std::chrono::milliseconds(env.integer("ACCESS_LOG_SLOW_MS", 500, 1, 3600000));
}

}  // namespace

OriginConfig load_origin_config(const core::Env& env) {
  OriginConfig config;
  config.database = core::load_database_config(env);
  const std::string read_url = env.text("DATABASE_READ_URL", "");
  if (!read_url.empty()) {
    core::DatabaseConfig read = config.database;
    read.url = read_url;
    read.pool_size = static_cast<std::size_t>(env.integer("DB_READ_POOL_SIZE", 2, 1, 500));
    read.max_overflow = 0;
    config.read_database = std::move(read);
  }
  parse_listen(env.text("ORIGIN_LISTEN", "127.0.0.1:8080"), config);
  std::string base = env.text("PUBLIC_BASE_URL", "");
  if (base.empty()) {
    base = "http://" + env.text("ORIGIN_LISTEN", "127.0.0.1:8080");
  }
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (base.rfind("http://", 0) != 0 && base.rfind("https://", 0) != 0) {
    throw core::ConfigError("PUBLIC_BASE_URL must start with http:// or https://, got '" + base +
                            "'");
  }
  config.public_base_url = base;
  config.public_host = host_of(base);
  if (config.public_host.empty()) {
    throw core::ConfigError("PUBLIC_BASE_URL has no host: '" + base + "'");
  }
  unsigned cores = std::thread::hardware_concurrency();
  config.threads =
      static_cast<unsigned>(env.integer("ORIGIN_THREADS", cores == 0 ? 2 : cores, 1, 256));
  config.code_length = static_cast<std::size_t>(env.integer("CODE_LENGTH", 7, 4, 32));
  config.redirect_max_age = static_cast<int>(env.integer("REDIRECT_MAX_AGE", 90, 0, 31536000));
  config.max_body_bytes =
      static_cast<std::size_t>(env.integer("MAX_BODY_BYTES", 8192, 1024, 1048576));
  config.max_connections =
      static_cast<std::size_t>(env.integer("MAX_CONNECTIONS", 10000, 1, 1000000));
  config.read_timeout = std::chrono::seconds(env.integer("ORIGIN_READ_TIMEOUT_S", 15, 1, 3600));
  config.idle_timeout = std::chrono::seconds(env.integer("ORIGIN_IDLE_TIMEOUT_S", 30, 1, 3600));
  config.journal_dir = env.text("JOURNAL_DIR", "journal");
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::string default_instance =
      "origin-" + std::string(host[0] ? host : "local") + "-" + std::to_string(config.listen_port);
  config.journal_instance = env.text("ORIGIN_INSTANCE", default_instance);
  for (char c : config.journal_instance) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok || config.journal_instance.size() > 80 || config.journal_instance[0] == '.') {
      throw core::ConfigError(
          "ORIGIN_INSTANCE must be 1-80 characters from A-Z a-z 0-9 . _ -, got '" +
          config.journal_instance + "'");
    }
  }
  config.journal_max_bytes = static_cast<std::uint64_t>(
      env.integer("JOURNAL_MAX_BYTES", 64ll * 1024 * 1024, 4096, 1ll << 40));
  config.journal_max_age = std::chrono::seconds(env.integer("JOURNAL_MAX_AGE_S", 60, 1, 86400));
  const std::string ip_mode = env.text("VISIT_IP_MODE", "anonymized");
  auto mode = core::parse_ip_mode(ip_mode);
  if (!mode) {
    throw core::ConfigError("VISIT_IP_MODE must be anonymized, full or none, got '" + ip_mode +
                            "'");
  }
  config.ip_mode = *mode;
  config.link_cache_max_bytes =
      static_cast<std::size_t>(env.integer("LINK_CACHE_MAX_BYTES", 160ll << 20, 0, 1ll << 40));
  config.link_cache_negative_ttl =
      std::chrono::milliseconds(env.integer("LINK_CACHE_NEGATIVE_TTL_MS", 5000, 0, 3600000));
  config.redirect_batch_max_codes =
      static_cast<std::size_t>(env.integer("REDIRECT_BATCH_MAX_CODES", 128, 1, 1000));
  // One query at a time per database worker at most: more could only wait.
  config.redirect_batch_queries = std::min(
      static_cast<std::size_t>(env.integer(
          "REDIRECT_BATCH_QUERIES", static_cast<std::int64_t>(config.database.pool_size), 1, 1000)),
      config.database.pool_size + config.database.max_overflow);
  config.scanner.threshold_per_s =
      static_cast<double>(env.integer("SCANNER_THRESHOLD", 50, 1, 1000000));
  config.scanner.delay = std::chrono::milliseconds(env.integer("SCANNER_DELAY_MS", 200, 0, 5000));
  config.scanner.capacity =
      static_cast<std::size_t>(env.integer("SCANNER_TRACKED_CLIENTS", 4096, 16, 1 << 22));
  config.ingest_nice = static_cast<int>(env.integer("INGEST_NICE", 10, 0, 19));
  load_observability(env, config);
  config.open_shorten = env.boolean("OPEN_SHORTEN", false);
  config.create_per_ip_per_min =
      static_cast<int>(env.integer("RATE_LIMIT_CREATE_PER_IP_PER_MIN", 1000, 0, 1000000000));
  config.create_per_key_per_min =
      static_cast<int>(env.integer("RATE_LIMIT_CREATE_PER_KEY_PER_MIN", 1000, 0, 1000000000));
  config.rate_limit_exempt_admin = env.boolean("RATE_LIMIT_EXEMPT_ADMIN", false);
  try {
    config.trusted_proxies = TrustedProxies::parse(env.text("TRUSTED_PROXIES", ""));
  } catch (const std::invalid_argument& e) {
    throw core::ConfigError(std::string("TRUSTED_PROXIES: ") + e.what());
  }
  config.api_key_cache_ttl =
      std::chrono::milliseconds(env.integer("API_KEY_CACHE_TTL_MS", 5000, 0, 60000));
  config.rate_limit_cleanup_interval =
      std::chrono::seconds(env.integer("RATE_LIMIT_CLEANUP_INTERVAL_S", 30, 1, 3600));
  return config;
}

}  // namespace origin
