// exporter: compiles links into edge files. `exporter compile`, `exporter
// publish` (puts a compiled version live on nginx), `exporter watch` (both on
// an interval and on link changes, with tombstones), and `exporter synthesize`
// (made-up links, for measuring nginx).
#include <rapidjson/document.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/config.h"
#include "exporter/bundle.h"
#include "exporter/bundle_writer.h"
#include "exporter/edge_config.h"
#include "exporter/json_log.h"
#include "exporter/link_source.h"
#include "exporter/metrics_file.h"
#include "exporter/publish.h"
#include "exporter/watch.h"

namespace {

constexpr const char* kUsage =
    "usage: exporter <command> [options]\n"
    "  compile --out DIR [--version V] [--all]\n"
    "      reads the hot, stable links (DATABASE_URL; with --all every active link) and\n"
    "      writes DIR/V/ with the nginx map, CDN files and manifest.json; V defaults to the\n"
    "      UTC time, YYYYMMDDTHHMMSSZ.\n"
    "  synthesize --count N --out DIR [--version V] [--naive-bucket-size B --naive-max-size M]\n"
    "      the same for N made-up links; the naive options replace the computed hash\n"
    "      sizing, to compare nginx -t times.\n"
    "  publish --exports DIR --nginx-conf FILE [--live LINK] [--nginx-prefix P] [--nginx-bin B]\n"
    "          [--nginx-pid FILE] [--probe URL] [--probe-timeout S] [--keep N] [--version V]\n"
    "          [--validate reload|nginx-t]\n"
    "      puts the newest version of DIR (or V) live: checks its files against its digest,\n"
    "      atomic swap of the symlink LINK (default DIR/live), SIGHUP to nginx, then watches\n"
    "      nginx's error log and workers and polls URL (default\n"
    "      http://$EDGE_LISTEN/_edge/version) until it serves the version; an [emerg] or\n"
    "      [warn] of the reload, or any other failure, restores the previous version.\n"
    "      --validate nginx-t (or nginx not running): nginx -t on FILE with LINK pointing at\n"
    "      the version before the swap. Keeps the N newest versions (5).\n"
    "  watch --exports DIR --nginx-conf FILE [--all] [publish options] [--tombstones T]\n"
    "      compile + publish every EXPORT_INTERVAL_S and EXPORT_DEBOUNCE_MS after a change of\n"
    "      an exported link (LISTEN link_changed); such a change first creates T/<code>\n"
    "      (default DIR/tombstones), which sends the code to the origin until a version\n"
    "      compiled after it is live. Runs until SIGTERM or SIGINT.\n"
    "  edge-config --template nginx/edge.conf.template --out FILE\n"
    "      writes the edge's nginx.conf from the template: EDGE_LISTEN, ORIGIN_SERVERS\n"
    "      (comma-separated host:port, default ORIGIN_LISTEN), EDGE_NGINX_PREFIX, EXPORT_DIR\n"
    "      (the live link is EXPORT_DIR/live), EDGE_TOMBSTONE_DIR, EDGE_VISIT_LOG,\n"
    "      REDIRECT_MAX_AGE; the visit log format is visit_log.conf beside the template.\n"
    "  compile and publish take DIR/.publish.lock and never wait for it.\n"
    "exit codes: 0 done (published/compiled), 1 failed (publish: rolled back, the old version\n"
    "  serves), 2 usage, 3 unchanged (same digest as live: no reload), 4 locked by another run,\n"
    "  5 failed and the rollback failed too\n"
    "environment: DATABASE_URL, DATABASE_READ_URL (selection on a replica), "
    "EXPORT_REPLICA_WAIT_MS\n"
    "  (5000), PUBLIC_BASE_URL (Cloudflare source host), REDIRECT_MAX_AGE,\n"
    "  EXPORT_MAP_BUCKET_SIZE (256), CLOUDFLARE_MAX_ITEMS (10000), CLOUDFRONT_KVS_ID,\n"
    "  CLOUDFRONT_MAX_BYTES (5242880), EXPORT_HOT_WINDOW_S (3600), EXPORT_MIN_CLICKS (100),\n"
    "  EXPORT_TOP_K (0), EXPORT_STABLE_S (600), EXPORT_HORIZON_S (86400),\n"
    "  EXPORT_DIR (--out, --exports), EDGE_LIVE_LINK, EDGE_NGINX_CONF, EDGE_NGINX_PREFIX,\n"
    "  NGINX_BIN (nginx), EDGE_NGINX_PID, EDGE_PROBE_URL, EDGE_LISTEN (127.0.0.1:8000),\n"
    "  EDGE_PROBE_TIMEOUT_S (30), EDGE_VALIDATE (reload), EXPORT_KEEP (5), EDGE_TOMBSTONE_DIR,\n"
    "  EXPORT_INTERVAL_S (60), EXPORT_DEBOUNCE_MS (500), EXPORTER_METRICS_FILE (--metrics-file\n"
    "  FILE: metrics in the"
    " node_exporter textfile format, updated by compile, publish and watch)\n"
    "logs: one JSON object per line on stderr\n";

struct Arguments {
  std::string command;
  std::string out;
  std::string version;
  std::size_t count = 0;
  std::size_t naive_bucket_size = 0;
  std::size_t naive_max_size = 0;
  bool all = false;
  exporter::PublishOptions publish;
  std::string tombstone_dir;
  std::string template_path;  // edge-config
  std::string metrics_file;   // "" when off
};

exporter::Validation validation_named(const std::string& name) {
  if (name == "reload") return exporter::Validation::kReload;
  if (name == "nginx-t") return exporter::Validation::kNginxTest;
  throw core::ConfigError("--validate (EDGE_VALIDATE) must be reload or nginx-t, not \"" + name +
                          "\"");
}

Arguments parse_arguments(int argc, char** argv) {
  Arguments args;
  if (argc < 2) throw core::ConfigError("no command");
  args.command = argv[1];
  const core::Env env;
  args.out = env.text("EXPORT_DIR", "");
  exporter::PublishOptions& publish = args.publish;
  publish.nginx_conf = env.text("EDGE_NGINX_CONF", "");
  publish.nginx_prefix = env.text("EDGE_NGINX_PREFIX", "");
  publish.nginx_bin = env.text("NGINX_BIN", "nginx");
  publish.nginx_pid = env.text("EDGE_NGINX_PID", "");
  publish.probe_url = env.text(
      "EDGE_PROBE_URL", "http://" + env.text("EDGE_LISTEN", "127.0.0.1:8000") + "/_edge/version");
  publish.probe_timeout = std::chrono::seconds(env.integer("EDGE_PROBE_TIMEOUT_S", 30, 1, 3600));
  publish.keep = static_cast<std::size_t>(env.integer("EXPORT_KEEP", 5, 1, 1000000));
  publish.live_link = env.text("EDGE_LIVE_LINK", "");
  publish.validation = validation_named(env.text("EDGE_VALIDATE", "reload"));
  args.tombstone_dir = env.text("EDGE_TOMBSTONE_DIR", "");
  args.metrics_file = env.text("EXPORTER_METRICS_FILE", "");
  for (int i = 2; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--all") {
      args.all = true;
      continue;
    }
    if (i + 1 >= argc) throw core::ConfigError("missing value after " + flag);
    const std::string value = argv[++i];
    if (flag == "--out" || flag == "--exports") {
      args.out = value;
    } else if (flag == "--template") {
      args.template_path = value;
    } else if (flag == "--metrics-file") {
      args.metrics_file = value;
    } else if (flag == "--tombstones") {
      args.tombstone_dir = value;
    } else if (flag == "--live") {
      publish.live_link = value;
    } else if (flag == "--nginx-conf") {
      publish.nginx_conf = value;
    } else if (flag == "--nginx-prefix") {
      publish.nginx_prefix = value;
    } else if (flag == "--nginx-bin") {
      publish.nginx_bin = value;
    } else if (flag == "--nginx-pid") {
      publish.nginx_pid = value;
    } else if (flag == "--probe") {
      publish.probe_url = value;
    } else if (flag == "--probe-timeout") {
      const double seconds = std::stod(value);
      if (!(seconds > 0 && seconds <= 3600)) throw core::ConfigError("bad --probe-timeout");
      publish.probe_timeout = std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
    } else if (flag == "--validate") {
      publish.validation = validation_named(value);
    } else if (flag == "--keep") {
      const long keep = std::stol(value);
      if (keep < 1) throw core::ConfigError("--keep must be at least 1");
      publish.keep = static_cast<std::size_t>(keep);
    } else if (flag == "--version") {
      args.version = value;
    } else if (flag == "--count") {
      args.count = std::stoul(value);
    } else if (flag == "--naive-bucket-size") {
      args.naive_bucket_size = std::stoul(value);
    } else if (flag == "--naive-max-size") {
      args.naive_max_size = std::stoul(value);
    } else {
      throw core::ConfigError("unknown option " + flag);
    }
  }
  if (args.out.empty()) {
    throw core::ConfigError(args.command == "publish" || args.command == "watch"
                                ? "--exports DIR (or EXPORT_DIR) is required"
                                : "--out DIR (or EXPORT_DIR) is required");
  }
  if (args.command == "publish" || args.command == "watch") {
    publish.exports_dir = args.out;
    publish.version = args.version;
    if (publish.live_link.empty()) publish.live_link = args.out + "/live";
    if (args.tombstone_dir.empty()) args.tombstone_dir = args.out + "/tombstones";
    if (publish.nginx_conf.empty()) {
      throw core::ConfigError("--nginx-conf FILE (or EDGE_NGINX_CONF) is required");
    }
  }
  return args;
}

std::string utc_version() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y%m%dT%H%M%SZ", &tm);
  return text;
}

std::string utc_time() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// The host of PUBLIC_BASE_URL, lowercase, without port.
std::string host_of(const std::string& base_url) {
  std::string rest =
      base_url.substr(base_url.find("://") == std::string::npos ? 0 : base_url.find("://") + 3);
  rest = rest.substr(0, rest.find_first_of("/:?#"));
  for (char& c : rest) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return rest;
}

exporter::BundleOptions bundle_options(const core::Env& env, const Arguments& args) {
  exporter::BundleOptions options;
  options.version = args.version.empty() ? utc_version() : args.version;
  options.created_at = utc_time();
  options.nginx.bucket_size =
      static_cast<std::size_t>(env.integer("EXPORT_MAP_BUCKET_SIZE", 256, 128, 4096));
  options.cloudflare.source_host =
      host_of(env.text("PUBLIC_BASE_URL", "http://" + env.text("ORIGIN_LISTEN", "127.0.0.1:8080")));
  options.cloudflare.max_items =
      static_cast<std::size_t>(env.integer("CLOUDFLARE_MAX_ITEMS", 10000, 1, 1000000));
  options.cloudfront.kvs_id = env.text("CLOUDFRONT_KVS_ID", "KVS_ID");
  options.cloudfront.max_total_bytes =
      static_cast<std::size_t>(env.integer("CLOUDFRONT_MAX_BYTES", 5 * 1024 * 1024, 1, 1LL << 40));
  options.cloudfront.redirect_max_age =
      static_cast<int>(env.integer("REDIRECT_MAX_AGE", 90, 0, 31536000));
  return options;
}

std::vector<exporter::ExportEntry> synthetic_links(std::size_t count) {
  static const std::string kAlphabet = "abcdefghjkmnpqrstuvwxyz23456789";
  std::mt19937_64 rng(20261127);
  std::unordered_set<std::string> seen;
  std::vector<exporter::ExportEntry> entries;
  entries.reserve(count);
  while (entries.size() < count) {
    exporter::ExportEntry e;
    for (int k = 0; k < 7; ++k) e.code.push_back(kAlphabet[rng() % kAlphabet.size()]);
    if (!seen.insert(e.code).second) continue;
    const std::size_t i = entries.size();
    e.target = "https://example.com/landing/" + std::to_string(i) + "?utm_source=campaign" +
               std::to_string(i % 97);
    e.status = i % 4 == 0 ? 301 : 307;
    e.forward_query = i % 3 != 0;
    e.hotness = rng() % 100000;
    entries.push_back(std::move(e));
  }
  return entries;
}

void replace_directive(std::string& text, const std::string& name, std::size_t value) {
  const std::size_t at = text.find("\n" + name + " ");
  if (at == std::string::npos) return;
  const std::size_t end = text.find(';', at);
  text.replace(at + 1, end - at - 1, name + " " + std::to_string(value));
}

// Progress and results go to the log as JSON lines (json_log.h).
exporter::JsonLogStream g_log("info");
exporter::JsonLogStream g_error_log("error");

// Entries per target of the manifest in `folder`: {"nginx": n, ...}, with
// "input" (links selected) and "exclusions" (links left out).
std::vector<std::pair<std::string, double>> manifest_entries(const std::string& folder) {
  std::vector<std::pair<std::string, double>> entries;
  std::ifstream in(folder + "/manifest.json", std::ios::binary);
  if (!in) return entries;
  std::stringstream text;
  text << in.rdbuf();
  rapidjson::Document doc;
  doc.Parse(text.str().c_str());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("outputs") ||
      !doc["outputs"].IsObject()) {
    return entries;
  }
  if (doc.HasMember("input_entries") && doc["input_entries"].IsNumber()) {
    entries.emplace_back("input", doc["input_entries"].GetDouble());
  }
  if (doc.HasMember("exclusions") && doc["exclusions"].IsArray()) {
    entries.emplace_back("exclusions", static_cast<double>(doc["exclusions"].Size()));
  }
  for (const auto& target : doc["outputs"].GetObject()) {
    if (target.value.IsObject() && target.value.HasMember("entries") &&
        target.value["entries"].IsNumber()) {
      entries.emplace_back(target.name.GetString(), target.value["entries"].GetDouble());
    }
  }
  return entries;
}

// Tombstone files in `dir` (not the hidden .any marker).
std::size_t count_tombstones(const std::string& dir) {
  std::error_code ec;
  std::size_t n = 0;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().filename().string().rfind('.', 0) != 0) ++n;
  }
  return n;
}

std::string outcome_name(exporter::PublishOutcome outcome) {
  switch (outcome) {
    case exporter::PublishOutcome::kPublished:
      return "published";
    case exporter::PublishOutcome::kUnchanged:
      return "unchanged";
    case exporter::PublishOutcome::kLocked:
      return "locked";
    case exporter::PublishOutcome::kRollbackFailed:
      return "rollback_failed";
    default:
      return "failed";
  }
}

// Writes the metrics file; a failure is logged, never fatal: the edge
// matters more than its metrics.
void write_metrics(exporter::MetricsFile& metrics) {
  try {
    metrics.write();
  } catch (const std::exception& e) {
    g_error_log << "exporter: cannot write metrics file: " << e.what() << std::endl;
  }
}

void record_publish(exporter::MetricsFile& metrics, const Arguments& args,
                    const exporter::PublishResult& result, std::size_t tombstones_left) {
  if (!metrics.enabled()) return;
  const double now = exporter::unix_now();
  metrics.set("exporter_last_run_timestamp_seconds", {{"command", "publish"}}, now);
  metrics.add("exporter_runs_total",
              {{"command", "publish"}, {"outcome", outcome_name(result.outcome)}}, 1);
  if (!result.failed_step.empty()) {
    metrics.add("exporter_failures_total", {{"stage", result.failed_step}}, 1);
  }
  if (result.rollback_failed) metrics.add("exporter_failures_total", {{"stage", "rollback"}}, 1);
  for (const auto& [stage, seconds] :
       {std::pair{"validate", result.validate}, std::pair{"activate", result.activate},
        std::pair{"reload", result.reload}}) {
    if (seconds.count() > 0) {
      metrics.set("exporter_stage_duration_seconds", {{"stage", stage}}, seconds.count());
    }
  }
  if (result.outcome == exporter::PublishOutcome::kPublished ||
      result.outcome == exporter::PublishOutcome::kUnchanged) {
    metrics.set("exporter_last_success_timestamp_seconds", {{"command", "publish"}}, now);
  }
  for (const auto& [target, entries] : manifest_entries(args.publish.live_link)) {
    if (target != "exclusions") metrics.set("exporter_live_entries", {{"target", target}}, entries);
  }
  metrics.set("exporter_tombstones_pending", {}, static_cast<double>(tombstones_left));
  write_metrics(metrics);
}

int run_publish(const Arguments& args) {
  const std::optional<exporter::ExportLock> lock = exporter::ExportLock::try_acquire(args.out);
  if (!lock) {
    g_log << "exporter: publish: " << args.out
          << "/.publish.lock is held by another compile or publish; not run" << std::endl;
    return static_cast<int>(exporter::PublishOutcome::kLocked);
  }
  const auto started = std::chrono::steady_clock::now();
  const exporter::PublishResult result = exporter::publish(args.publish, g_log);
  (result.failed_step.empty() ? g_log : g_error_log) << "exporter: " << result.summary << std::endl;
  exporter::MetricsFile metrics(args.metrics_file);
  metrics.set("exporter_stage_duration_seconds", {{"stage", "publish"}},
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  record_publish(metrics, args, result, count_tombstones(args.tombstone_dir));
  return static_cast<int>(result.outcome);
}

// Writes one version folder (`compile`, `synthesize`, or a watch cycle,
// which compiles) and returns its name. The caller holds the lock.
std::string compile_once(const Arguments& args, const std::string& command);

// compile_once with its metrics: entries per target, duration, failures.
std::string compile_with_metrics(const Arguments& args, const std::string& command) {
  exporter::MetricsFile metrics(command == "compile" ? args.metrics_file : std::string());
  const auto started = std::chrono::steady_clock::now();
  metrics.set("exporter_last_run_timestamp_seconds", {{"command", "compile"}},
              exporter::unix_now());
  try {
    std::string version = compile_once(args, command);
    if (metrics.enabled()) {
      metrics.set(
          "exporter_stage_duration_seconds", {{"stage", "compile"}},
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      metrics.set("exporter_last_success_timestamp_seconds", {{"command", "compile"}},
                  exporter::unix_now());
      metrics.add("exporter_runs_total", {{"command", "compile"}, {"outcome", "ok"}}, 1);
      const std::string folder = args.out + "/" + version;
      for (const auto& [target, entries] : manifest_entries(folder)) {
        if (target == "exclusions") {
          metrics.set("exporter_compiled_exclusions", {}, entries);
        } else {
          metrics.set("exporter_compiled_entries", {{"target", target}}, entries);
        }
      }
      write_metrics(metrics);
    }
    return version;
  } catch (const std::exception&) {
    metrics.add("exporter_runs_total", {{"command", "compile"}, {"outcome", "failed"}}, 1);
    metrics.add("exporter_failures_total", {{"stage", "compile"}}, 1);
    write_metrics(metrics);
    throw;
  }
}

std::string compile_once(const Arguments& args, const std::string& command) {
  const core::Env env;
  exporter::BundleOptions options = bundle_options(env, args);
  if (command == "compile" && args.version.empty()) {
    // Two cycles within a second: a new name all the same (sorts after).
    const std::string base = options.version;
    for (int n = 2; std::filesystem::exists(args.out + "/" + options.version); ++n) {
      options.version = base + "-" + std::to_string(n);
    }
  }
  std::vector<exporter::ExportEntry> entries;
  if (command == "compile" && args.all) {
    options.selection = {{"mode", "all_active"}, {"rule", "not disabled and not expired"}};
    entries = exporter::load_active_links(exporter::load_selection_databases(env), std::cerr);
  } else if (command == "compile") {
    const exporter::Selection selection = exporter::load_selection(env);
    options.selection = exporter::describe(selection);
    entries =
        exporter::load_hot_links(exporter::load_selection_databases(env), selection, std::cerr);
  } else if (command == "synthesize") {
    options.selection = {{"mode", "synthetic"}, {"count", std::to_string(args.count)}};
    entries = synthetic_links(args.count);
  } else {
    throw core::ConfigError("unknown command " + command);
  }
  exporter::Bundle bundle = exporter::render_bundle(std::move(entries), options);
  if (args.naive_bucket_size != 0 || args.naive_max_size != 0) {
    for (exporter::BundleFile& file : bundle.files) {
      if (file.name != exporter::kNginxMapFile) continue;
      if (args.naive_bucket_size != 0) {
        replace_directive(file.content, "map_hash_bucket_size", args.naive_bucket_size);
      }
      if (args.naive_max_size != 0) {
        replace_directive(file.content, "map_hash_max_size", args.naive_max_size);
      }
    }
  }
  const std::string dir = exporter::write_bundle(bundle, args.out);
  g_log << "exporter: wrote " << dir << ": " << bundle.input_entries << " links, nginx "
        << bundle.nginx.entries << " (map_hash_bucket_size " << bundle.nginx.sizing.bucket_size
        << ", map_hash_max_size " << bundle.nginx.sizing.max_size << "), cloudflare "
        << bundle.cloudflare.entries << " (+" << bundle.cloudflare.left_out
        << " over cap), cloudfront " << bundle.cloudfront.entries << " (+"
        << bundle.cloudfront.left_out << " over cap), " << bundle.exclusions.size()
        << " exclusions, digest " << bundle.digest << std::endl;

  return bundle.version;
}

std::atomic<bool> g_stop{false};

extern "C" void on_stop_signal(int /*signal*/) { g_stop.store(true); }

int run_watch(const Arguments& args) {
  const core::Env env;
  exporter::WatchOptions options;
  options.database_url = core::load_database_config(env).url;
  options.publish = args.publish;
  options.tombstone_dir = args.tombstone_dir;
  options.interval = std::chrono::seconds(env.integer("EXPORT_INTERVAL_S", 60, 1, 86400));
  options.debounce = std::chrono::milliseconds(env.integer("EXPORT_DEBOUNCE_MS", 500, 0, 600000));
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  Arguments compile_args = args;
  compile_args.version.clear();  // each cycle names its own version
  exporter::MetricsFile metrics(args.metrics_file);
  options.after_publish = [&metrics, &args](const exporter::PublishResult& result,
                                            std::size_t tombstones_left) {
    record_publish(metrics, args, result, tombstones_left);
  };
  return exporter::watch(
      options, [&compile_args] { return compile_with_metrics(compile_args, "compile"); }, g_stop,
      g_log);
}

// Renders the template into args.out (written to a temporary file, then
// renamed, so nginx never reads half a file).
int run_edge_config(const Arguments& args) {
  const core::Env env;
  if (args.template_path.empty()) throw core::ConfigError("--template FILE is required");
  std::ifstream in(args.template_path, std::ios::binary);
  if (!in) throw core::ConfigError("cannot read " + args.template_path);
  std::stringstream text;
  text << in.rdbuf();
  const std::string export_dir = env.text("EXPORT_DIR", "");
  if (export_dir.empty()) throw core::ConfigError("EXPORT_DIR is required");
  exporter::EdgeConfigParams params;
  params.prefix = env.text("EDGE_NGINX_PREFIX", "");
  params.listen = env.text("EDGE_LISTEN", "127.0.0.1:8000");
  std::string origins = env.text("ORIGIN_SERVERS", env.text("ORIGIN_LISTEN", "127.0.0.1:8080"));
  for (std::size_t start = 0; start <= origins.size();) {
    const std::size_t comma = std::min(origins.find(',', start), origins.size());
    if (comma > start) params.origins.push_back(origins.substr(start, comma - start));
    start = comma + 1;
  }
  params.export_dir = export_dir + "/live";
  params.tombstone_dir = env.text("EDGE_TOMBSTONE_DIR", export_dir + "/tombstones");
  const std::string template_dir =
      std::filesystem::absolute(args.template_path).parent_path().string();
  params.visit_log_format = template_dir + "/visit_log.conf";
  params.visit_log = env.text("EDGE_VISIT_LOG", params.prefix + "/visits.jsonl");
  params.redirect_max_age = static_cast<int>(env.integer("REDIRECT_MAX_AGE", 90, 0, 31536000));
  const std::string conf = exporter::render_edge_config(text.str(), params);
  const std::string tmp = args.out + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << conf;
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, args.out);
  g_log << "exporter: wrote " << args.out << " (edge on " << params.listen << ")" << std::endl;
  return 0;
}

int run(const Arguments& args) {
  if (args.command == "edge-config") return run_edge_config(args);
  if (args.command == "publish") return run_publish(args);
  if (args.command == "watch") return run_watch(args);
  if (args.command != "compile" && args.command != "synthesize") {
    throw core::ConfigError("unknown command " + args.command);
  }
  // Taken first, so `compile && publish` never interleaves with another run.
  const std::optional<exporter::ExportLock> lock = exporter::ExportLock::try_acquire(args.out);
  if (!lock) {
    g_log << "exporter: " << args.command << ": " << args.out
          << "/.publish.lock is held by another compile or publish; not run" << std::endl;
    return static_cast<int>(exporter::PublishOutcome::kLocked);
  }
  compile_with_metrics(args, args.command);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Arguments args;
  try {
    args = parse_arguments(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "exporter: " << e.what() << "\n" << kUsage;
    return 2;
  }
  try {
    return run(args);
  } catch (const std::exception& e) {
    g_error_log << "exporter: " << e.what() << std::endl;
    return 1;
  }
}
