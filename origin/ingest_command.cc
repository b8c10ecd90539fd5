#include "origin/ingest_command.h"

#include <atomic>
#include <csignal>
#include <ctime>
#include <iostream>
#include <memory>
#include <pqxx/pqxx>
#include <set>
#include <thread>

#include "core/json.h"
#include "origin/ingester.h"
#include "origin/log.h"
#include "origin/metrics_sources.h"
#include "origin/migrations.h"

namespace origin {
namespace {

constexpr const char* kUsage =
    "usage: origin ingest --source NAME=PATH [--source NAME=PATH ...] [--once]\n"
    "  --source NAME=PATH  follow PATH (a journal directory, or a log file such as nginx's\n"
    "                      edge log) and checkpoint it as NAME; repeatable\n"
    "  --once              ingest what is there, then exit (default: follow until SIGTERM)\n"
    "  --metrics-file FILE write the ingesters' metrics there every 5 s and at exit, in\n"
    "                      node_exporter's textfile format (default: INGEST_METRICS_FILE)\n";

struct Arguments {
  std::vector<IngestSource> sources;
  bool once = false;
  std::string metrics_file;
};

// Parsed arguments, or nullopt after printing what is wrong.
std::optional<Arguments> parse_arguments(const std::vector<std::string>& args) {
  Arguments parsed;
  std::set<std::string> names;
  std::set<std::string> paths;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    std::string value;
    if (arg == "--once") {
      parsed.once = true;
      continue;
    }
    if (arg == "--metrics-file") {
      if (i + 1 >= args.size()) {
        std::cerr << "origin ingest: --metrics-file needs a path\n" << kUsage;
        return std::nullopt;
      }
      parsed.metrics_file = args[++i];
      continue;
    }
    if (arg == "--source") {
      if (i + 1 >= args.size()) {
        std::cerr << "origin ingest: --source needs NAME=PATH\n" << kUsage;
        return std::nullopt;
      }
      value = args[++i];
    } else if (arg.rfind("--source=", 0) == 0) {
      value = arg.substr(9);
    } else {
      std::cerr << "origin ingest: unknown argument '" << arg << "'\n" << kUsage;
      return std::nullopt;
    }
    auto source = parse_source_argument(value);
    if (auto* reason = std::get_if<std::string>(&source)) {
      std::cerr << "origin ingest: --source " << value << ": " << *reason << "\n";
      return std::nullopt;
    }
    IngestSource& s = std::get<IngestSource>(source);
    if (!names.insert(s.name).second || !paths.insert(s.path).second) {
      std::cerr << "origin ingest: --source " << value << ": name or path given twice\n";
      return std::nullopt;
    }
    parsed.sources.push_back(std::move(s));
  }
  if (parsed.sources.empty()) {
    std::cerr << "origin ingest: at least one --source is needed\n" << kUsage;
    return std::nullopt;
  }
  return parsed;
}

std::string stats_line(const IngestSource& source, const IngesterStats& s, bool caught_up) {
  rapidjson::StringBuffer buffer;
  core::JsonWriter w(buffer);
  w.StartObject();
  core::write_field(w, "source", source.name);
  core::write_field(w, "path", source.path);
  core::write_field(w, "caught_up", caught_up);
  core::write_field(w, "lines_ingested", static_cast<long long>(s.lines_ingested));
  core::write_field(w, "lines_dead_lettered", static_cast<long long>(s.lines_dead_lettered));
  core::write_field(w, "lines_repaired", static_cast<long long>(s.lines_repaired));
  core::write_field(w, "batches", static_cast<long long>(s.batches));
  core::write_field(w, "store_failures", static_cast<long long>(s.store_failures));
  core::write_field(w, "checkpoint_conflicts", static_cast<long long>(s.checkpoint_conflicts));
  core::write_field(w, "truncations", static_cast<long long>(s.truncations));
  core::write_field(w, "replacements", static_cast<long long>(s.replacements));
  core::write_field(w, "files_deleted", static_cast<long long>(s.files_deleted));
  core::write_field(w, "lag_bytes", static_cast<long long>(s.lag_bytes));
  w.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

// Refuses to run against a schema without the visit tables, when the
// database answers. When it does not, ingestion starts anyway and waits for
// it: an edge host must not need the database to boot.
bool schema_ready(const std::string& url) {
  try {
    pqxx::connection conn(url);
    auto pending = pending_migrations(conn, embedded_migrations());
    if (!pending.empty()) {
      std::cerr << "origin ingest: database schema is behind: migration " << pending.front()
                << " is not applied (run `origin migrate`)" << std::endl;
      return false;
    }
  } catch (const pqxx::broken_connection& e) {
    log_event("warn", "database unreachable at start; ingestion will wait for it",
              {{"error", first_line(e.what())}});
  }
  return true;
}

}  // namespace

int run_ingest_command(const std::vector<std::string>& args) {
  for (const std::string& arg : args) {
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    }
  }
  std::optional<Arguments> parsed = parse_arguments(args);
  if (!parsed) return 2;

  IngesterOptions options;
  PgVisitStoreOptions store_options;
  try {
    const core::Env env;
    options = load_ingester_options(env);
    store_options = load_visit_store_options(env);
    if (parsed->metrics_file.empty()) parsed->metrics_file = env.text("INGEST_METRICS_FILE", "");
  } catch (const core::ConfigError& e) {
    std::cerr << "origin ingest: " << e.what() << std::endl;
    return 1;
  }
  if (!schema_ready(store_options.url)) return 1;

  // Signals are taken here with sigtimedwait; every thread started below
  // inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  struct Running {
    std::unique_ptr<PgVisitStore> store;
    std::unique_ptr<Ingester> ingester;
    std::thread thread;
    std::atomic<bool> done{false};
    bool caught_up = false;
  };
  std::vector<std::unique_ptr<Running>> running;
  for (const IngestSource& source : parsed->sources) {
    auto r = std::make_unique<Running>();
    r->store = std::make_unique<PgVisitStore>(store_options);
    r->ingester = std::make_unique<Ingester>(source, *r->store, options);
    log_event(
        "info", "ingesting",
        {{"source", source.name},
         {"path", source.path},
         {"kind", source.kind == SourceKind::kJournalDirectory ? "journal directory" : "log file"},
         {"mode", parsed->once ? "once" : "follow"}});
    running.push_back(std::move(r));
  }
  for (auto& r : running) {
    if (!parsed->once) {
      r->ingester->start();
      continue;
    }
    Running* raw = r.get();
    raw->thread = std::thread([raw] {
      raw->caught_up = raw->ingester->run_until_caught_up();
      raw->done.store(true);
    });
  }

  // node_exporter reads the file; written atomically, so never half.
  const auto write_metrics = [&running, &parsed] {
    if (parsed->metrics_file.empty()) return;
    std::vector<const Ingester*> ingesters;
    for (auto& r : running) ingesters.push_back(r->ingester.get());
    core::PromText text;
    metrics::render_ingesters(text, ingesters);
    try {
      core::write_file_atomically(parsed->metrics_file, text.text());
    } catch (const std::exception& e) {
      log_event("warn", "cannot write the metrics file", {{"error", e.what()}});
    }
  };
  constexpr int kTicksPerMetricsWrite = 50;  // 5 s
  int ticks = 0;
  bool interrupted = false;
  for (;;) {
    if (++ticks % kTicksPerMetricsWrite == 0) write_metrics();
    timespec tick{0, 100'000'000};
    const int received = sigtimedwait(&signals, nullptr, &tick);
    if (received == SIGTERM || received == SIGINT) {
      log_event("info", "shutting down", {{"signal", received == SIGTERM ? "TERM" : "INT"}});
      interrupted = true;
      break;
    }
    if (!parsed->once) continue;
    bool all_done = true;
    for (auto& r : running) all_done = all_done && r->done.load();
    if (all_done) break;
  }
  for (auto& r : running) r->ingester->stop();
  for (auto& r : running) {
    if (r->thread.joinable()) r->thread.join();
  }
  write_metrics();
  bool all_caught_up = true;
  for (auto& r : running) {
    all_caught_up = all_caught_up && r->caught_up;
    std::cout << stats_line(r->ingester->source(), r->ingester->stats(), r->caught_up) << std::endl;
  }
  if (parsed->once) return all_caught_up && !interrupted ? 0 : 1;
  return 0;
}

}  // namespace origin
