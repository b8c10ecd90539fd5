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
#include "origin/metrics.h"
#include "origin/metrics_sources.h"
#include "origin/migrations.h"
#include "origin/origin_config.h"
#include "origin/pg_key_store.h"
#include "origin/pg_link_store.h"
#include "origin/rate_limit_janitor.h"
#include "origin/thread_priority.h"

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
      {{"api_key_changed", [&authenticator](const std::string&) { authenticator.forget_all(); }},
       {"link_created", [&cache](const std::string& code) { cache.invalidate_negative(code); }}});
  if (!listener.wait_until_listening(std::chrono::seconds(2))) {
    origin::log_event("warn", "not listening for changes yet; serving anyway");
  }
  origin::Api api(config, store, &health, &cache);
  origin::metrics::Registry metrics_registry;
  api.set_metrics_registry(&metrics_registry);
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
    // Threads inherit their creator's nice value and policy: the ingester
    // (and the helper threads it makes) start from a thread that lowered its
    // own, so the io threads keep their priority.
    std::thread([&ingester, nice = config.ingest_nice] {
      if (nice > 0 && !origin::lower_this_thread_priority(nice)) {
        origin::log_event("warn", "could not lower the ingester's priority",
                          {{"ingest_nice", std::to_string(nice)}});
      }
      ingester->start();
    }).join();
  }
  // Scraped on demand: nothing here runs per request.
  metrics_registry.add_collector([&pool, &ingester, &config, &stats_store,
                                  &api](core::PromText& out) {
    const origin::AccessCounters& access = api.access_counters();
    const auto load = [](const std::atomic<std::uint64_t>& c) {
      return c.load(std::memory_order_relaxed);
    };
    out.family("origin_auth_failures_total", "counter",
               "Requests refused for their API key: missing (401), invalid or revoked "
               "(401), not the link's owner nor admin (403).");
    out.sample("origin_auth_failures_total", {{"reason", "missing"}}, load(access.auth_missing));
    out.sample("origin_auth_failures_total", {{"reason", "invalid"}}, load(access.auth_invalid));
    out.sample("origin_auth_failures_total", {{"reason", "forbidden"}},
               load(access.auth_forbidden));
    out.family("origin_rate_limit_rejections_total", "counter",
               "Creations refused with 429, by the limit that refused them.");
    out.sample("origin_rate_limit_rejections_total", {{"limit", "ip"}},
               load(access.rate_limited_ip));
    out.sample("origin_rate_limit_rejections_total", {{"limit", "key"}},
               load(access.rate_limited_key));
    origin::metrics::render_pool(out, pool);
    if (ingester) {
      origin::metrics::render_ingesters(out, {&*ingester});
      origin::metrics::render_journal_dir(out, config.journal_dir);
    }
    const origin::PgLinkStatsStore::Counters reads = stats_store.counters();
    out.family("origin_stats_reads_total", "counter",
               "Stats queries answered, by the database that answered them.");
    out.sample("origin_stats_reads_total", {{"database", "replica"}}, reads.replica_reads);
    out.sample("origin_stats_reads_total", {{"database", "primary"}}, reads.primary_reads);
    out.single("origin_stats_replica_failures_total", "counter",
               "Stats queries the replica (DATABASE_READ_URL) failed to answer.",
               static_cast<std::uint64_t>(reads.replica_failures));
    out.single("origin_stats_replica_failing", "gauge",
               "1 while stats are read on the primary because the replica failed.",
               static_cast<std::uint64_t>(reads.replica_failing ? 1 : 0));
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
