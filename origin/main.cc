// origin: the HTTP service that owns links. `origin serve`, `origin migrate`.
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "core/config.h"
#include "origin/authenticator.h"
#include "origin/change_listener.h"
#include "origin/db_health.h"
#include "origin/handlers.h"
#include "origin/http_server.h"
#include "origin/ingest_command.h"
#include "origin/ingester.h"
#include "origin/keys_command.h"
#include "origin/link_cache.h"
#include "origin/log.h"
#include "origin/migrations.h"
#include "origin/origin_config.h"
#include "origin/pg_key_store.h"
#include "origin/pg_link_store.h"
#include "origin/rate_limit_janitor.h"

namespace {

constexpr const char* kUsage =
    "usage: origin <command>\n"
    "  serve     run the HTTP service (configured by environment; see README)\n"
    "  migrate   apply pending database migrations\n"
    "  ingest --source NAME=PATH [--source ...] [--once]\n"
    "            load visit logs (an nginx edge log, or a journal directory)\n"
    "  keys create --name NAME [--admin] | keys revoke NAME | keys list\n"
    "            manage API keys (a new key is printed once)\n"
    "  version   print the version\n";

int migrate() {
  core::DatabaseConfig db = core::load_database_config(core::Env());
  pqxx::connection conn(db.url);
  auto applied = origin::apply_migrations(
      conn, origin::embedded_migrations(),
      [](const std::string& name) { std::cout << "applied " << name << std::endl; });
  if (applied.empty()) std::cout << "schema up to date; nothing to apply" << std::endl;
  return 0;
}

int serve() {
  origin::OriginConfig config = origin::load_origin_config(core::Env());
  {
    pqxx::connection conn(config.database.url);
    auto pending = origin::pending_migrations(conn, origin::embedded_migrations());
    if (!pending.empty()) {
      std::cerr << "origin: database schema is behind: migration " << pending.front()
                << " is not applied (run `origin migrate`)" << std::endl;
      return 1;
    }
  }

  // Signals are taken by a dedicated thread, so every other thread (io,
  // database, health) must block them: set the mask before creating any.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  core::PgPool pool(config.database, origin::PgLinkStore::prepare_statements);
  origin::PgLinkStore store(pool, config.code_length);
  origin::DbHealth health(config.database.url, pool);
  origin::LinkCacheOptions cache_options;
  cache_options.max_bytes = config.link_cache_max_bytes;
  cache_options.negative_ttl = config.link_cache_negative_ttl;
  origin::LinkCache cache(cache_options);
  // Verified keys are cached briefly; a change of any key row (a revocation)
  // empties the cache of every instance through NOTIFY api_key_changed.
  origin::PgKeyStore key_store(pool);
  origin::Authenticator authenticator(key_store, config.api_key_cache_ttl);
  // Every instance drops a changed code within a NOTIFY's latency; after a
  // reconnect, notifications may have been missed, so everything goes.
  origin::ChangeListener listener(
      config.database.url, [&cache](const std::string& code) { cache.invalidate(code); },
      [&cache, &authenticator] {
        cache.clear();
        authenticator.forget_all();
      },
      std::chrono::milliseconds(250),
      {{"api_key_changed", [&authenticator](const std::string&) { authenticator.forget_all(); }}});
  if (!listener.wait_until_listening(std::chrono::seconds(2))) {
    origin::log_event("warn", "not listening for changes yet; serving anyway");
  }
  origin::Api api(config, store, &health, &cache);
  api.set_authenticator(&authenticator);
  origin::RateLimitJanitor rate_limit_janitor(pool, config.rate_limit_cleanup_interval);
  std::error_code mkdir_error;
  if (config.journal_dir != origin::kJournalOff) {
    std::filesystem::create_directories(config.journal_dir, mkdir_error);
  } else {
    origin::log_event("warn", "visit journal is off (JOURNAL_DIR=off): visits are not counted");
  }
  origin::HttpServer server(config, api);
  api.set_journal_probe([&server] { return server.journal_healthy(); });
  // Stats go to the read replica when there is one (stats.h: when the
  // primary answers instead); its sessions are read-only, so a
  // DATABASE_READ_URL naming the primary by mistake cannot write either.
  std::optional<core::PgPool> read_pool;
  if (config.read_database) {
    read_pool.emplace(*config.read_database, [](pqxx::connection& conn) {
      pqxx::nontransaction(conn).exec("SET default_transaction_read_only = on");
    });
  }
  origin::PgLinkStatsStore stats_store(pool, read_pool ? &*read_pool : nullptr);
  api.set_stats_store(&stats_store);

  // The instance ingests its own journal directory: the files are the queue,
  // so a database outage delays counts and loses none.
  std::optional<origin::PgVisitStore> visit_store;
  std::optional<origin::Ingester> ingester;
  if (config.journal_dir != origin::kJournalOff) {
    visit_store.emplace(origin::load_visit_store_options(core::Env()));
    ingester.emplace(
        origin::IngestSource{origin::journal_source_name(config.journal_dir), config.journal_dir,
                             origin::SourceKind::kJournalDirectory},
        *visit_store, origin::load_ingester_options(core::Env()));
    ingester->start();
  }
  api.set_extra_metrics([&pool, &ingester, &stats_store] {
    const core::PgPool::Stats s = pool.stats();
    std::string ingest;
    if (ingester) {
      const origin::IngesterStats i = ingester->stats();
      ingest = "# TYPE origin_ingest_lines_total counter\norigin_ingest_lines_total " +
               std::to_string(i.lines_ingested) +
               "\n# TYPE origin_ingest_dead_letters_total counter\n"
               "origin_ingest_dead_letters_total " +
               std::to_string(i.lines_dead_lettered) +
               "\n# TYPE origin_ingest_lag_bytes gauge\norigin_ingest_lag_bytes " +
               std::to_string(i.lag_bytes) +
               "\n# TYPE origin_ingest_oldest_unread_seconds gauge\n"
               "origin_ingest_oldest_unread_seconds " +
               std::to_string(static_cast<double>(i.oldest_unread_age.count()) / 1000.0) + "\n";
    }
    const origin::PgLinkStatsStore::Counters reads = stats_store.counters();
    ingest +=
        "# TYPE origin_stats_reads_total counter\n"
        "origin_stats_reads_total{database=\"replica\"} " +
        std::to_string(reads.replica_reads) + "\norigin_stats_reads_total{database=\"primary\"} " +
        std::to_string(reads.primary_reads) +
        "\n# TYPE origin_stats_replica_failures_total counter\n"
        "origin_stats_replica_failures_total " +
        std::to_string(reads.replica_failures) +
        "\n# TYPE origin_stats_replica_failing gauge\norigin_stats_replica_failing " +
        (reads.replica_failing ? "1" : "0") + "\n";
    return ingest + "# TYPE origin_db_pool_open gauge\norigin_db_pool_open " +
           std::to_string(s.open) + "\n# TYPE origin_db_pool_in_use gauge\norigin_db_pool_in_use " +
           std::to_string(s.in_use) +
           "\n# TYPE origin_db_pool_waits_total counter\norigin_db_pool_waits_total " +
           std::to_string(s.waits) +
           "\n# TYPE origin_db_pool_timeouts_total counter\norigin_db_pool_timeouts_total " +
           std::to_string(s.timeouts) + "\n";
  });

  std::thread signal_thread([&server, signals] {
    int received = 0;
    sigwait(&signals, &received);
    origin::log_event("info", "shutting down", {{"signal", received == SIGTERM ? "TERM" : "INT"}});
    server.stop();
  });
  origin::log_event("info", "listening",
                    {{"address", config.listen_host + ":" + std::to_string(config.listen_port)},
                     {"threads", std::to_string(config.threads)},
                     {"public_base_url", config.public_base_url},
                     {"open_shorten", config.open_shorten ? "true" : "false"},
                     {"stats_read_from", config.read_database ? "replica" : "primary"},
                     {"journal", config.journal_dir + "/" + config.journal_instance + "-t*"}});
  server.run();
  signal_thread.join();
  origin::log_event("info", "stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "keys") {
    setenv("PGCONNECT_TIMEOUT", "2", 0);
    return origin::run_keys_command(std::vector<std::string>(argv + 2, argv + argc));
  }
  if (argc >= 2 && std::string(argv[1]) == "ingest") {
    setenv("PGCONNECT_TIMEOUT", "2", 0);
    return origin::run_ingest_command(std::vector<std::string>(argv + 2, argv + argc));
  }
  if (argc != 2) {
    std::cerr << kUsage;
    return 2;
  }
  // libpq reads this; without it a connection attempt to an unreachable host
  // could hang for minutes.
  setenv("PGCONNECT_TIMEOUT", "2", 0);
  const std::string command = argv[1];
  try {
    if (command == "serve") return serve();
    if (command == "migrate") return migrate();
    if (command == "version" || command == "--version") {
      std::cout << "origin 0.1.0" << std::endl;
      return 0;
    }
    if (command == "help" || command == "--help" || command == "-h") {
      std::cout << kUsage;
      return 0;
    }
    std::cerr << "origin: unknown command '" << command << "'\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    std::string message = e.what();
    message = message.substr(0, message.find('\n'));
    std::cerr << "origin " << command << ": " << message << std::endl;
    return 1;
  }
}
