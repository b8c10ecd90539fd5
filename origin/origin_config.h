// Configuration of `origin serve`, read from the environment.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "core/config.h"
#include "core/visit_record.h"
#include "origin/address_ranges.h"
#include "origin/client_ip.h"
#include "origin/scanner_tarpit.h"

namespace origin {

// JOURNAL_DIR value that turns visit journaling off (for benchmarks that
// measure its cost; visits are then not counted).
inline constexpr const char* kJournalOff = "off";

struct OriginConfig {
  core::DatabaseConfig database;
  // DATABASE_READ_URL: a streaming replica that answers stats (stats.h says
  // when the primary answers instead). Its pool has DB_READ_POOL_SIZE
  // connections, no overflow, and the other settings of `database`.
  // nullopt: everything reads `database`.
  std::optional<core::DatabaseConfig> read_database;
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
  // Redirect lookups that missed the cache are looked up in batches of at
  // most this many codes, one query each (REDIRECT_BATCH_MAX_CODES).
  std::size_t redirect_batch_max_codes = 128;
  // Batches looked up at once (REDIRECT_BATCH_QUERIES, default DB_POOL_SIZE),
  // lowered to one per database worker (DB_POOL_SIZE + DB_MAX_OVERFLOW).
  std::size_t redirect_batch_queries = 5;
  // Open client connections over all io threads; more are answered 503 and
  // closed at once.
  std::size_t max_connections = 10000;

  // Visit journal (see journal.h): one writer per io thread, files named
  // "<journal_instance>-t<N>-<seq>.jsonl" under journal_dir.
  std::string journal_dir = "journal";
  std::string journal_instance;  // default "origin-<hostname>-<port>"
  std::uint64_t journal_max_bytes = 64ull * 1024 * 1024;
  std::chrono::seconds journal_max_age{60};
  core::IpMode ip_mode = core::IpMode::kAnonymized;

  // In-process cache of redirect answers (link_cache.h).
  std::size_t link_cache_max_bytes = std::size_t{160} << 20;
  std::chrono::milliseconds link_cache_negative_ttl{5000};
  // Clients answered "unknown code" faster than a threshold get those answers
  // late (scanner_tarpit.h): SCANNER_THRESHOLD, SCANNER_DELAY_MS,
  // SCANNER_TRACKED_CLIENTS.
  ScannerTarpitOptions scanner;
  // INGEST_NICE: the nice value (and SCHED_BATCH) of the in-process
  // ingester's threads, so ingesting yields the cores to redirects; 0 runs
  // them like the io threads.
  int ingest_nice = 10;

  // Observability: who may GET /metrics (METRICS_ALLOW, default loopback) and
  // which requests get an access-log line (ACCESS_LOG, ACCESS_LOG_SLOW_MS).
  AddressRanges metrics_allow;
  enum class AccessLog { kOff, kErrors, kAll };
  AccessLog access_log = AccessLog::kErrors;
  std::chrono::milliseconds access_log_slow{500};
  // Access (README "Keys and rate limits").
  bool open_shorten = false;          // anyone may create links, without a key
  int create_per_ip_per_min = 1000;   // 0: no per-IP limit
  int create_per_key_per_min = 1000;  // 0: no per-key limit
  TrustedProxies trusted_proxies;     // whose X-Forwarded-For is believed
  // RATE_LIMIT_EXEMPT_ADMIN: creations with an admin key count against
  // neither limit (operators importing links in bulk). Off by default.
  bool rate_limit_exempt_admin = false;
  std::chrono::milliseconds api_key_cache_ttl{5000};
  std::chrono::seconds rate_limit_cleanup_interval{30};  // old windows deleted this often
};

// Reads ORIGIN_LISTEN, PUBLIC_BASE_URL, ORIGIN_THREADS, CODE_LENGTH,
// REDIRECT_MAX_AGE, MAX_BODY_BYTES, MAX_CONNECTIONS, ORIGIN_READ_TIMEOUT_S, ORIGIN_IDLE_TIMEOUT_S
// JOURNAL_DIR, ORIGIN_INSTANCE, JOURNAL_MAX_BYTES, JOURNAL_MAX_AGE_S,
// VISIT_IP_MODE, METRICS_ALLOW, ACCESS_LOG, ACCESS_LOG_SLOW_MS, OPEN_SHORTEN,
// RATE_LIMIT_CREATE_PER_IP_PER_MIN, RATE_LIMIT_CREATE_PER_KEY_PER_MIN, TRUSTED_PROXIES,
// API_KEY_CACHE_TTL_MS, RATE_LIMIT_CLEANUP_INTERVAL_S, SCANNER_THRESHOLD, SCANNER_DELAY_MS,
// SCANNER_TRACKED_CLIENTS, INGEST_NICE, REDIRECT_BATCH_MAX_CODES, REDIRECT_BATCH_QUERIES,
// the database variables, DATABASE_READ_URL
// and DB_READ_POOL_SIZE. Throws core::ConfigError naming the variable.
OriginConfig load_origin_config(const core::Env& env);

}  // namespace origin
