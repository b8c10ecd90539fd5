// exporter: compiles links into edge files. `exporter compile`, `exporter
// publish` (puts a compiled version live on nginx), `exporter watch` (both on
// an interval and on link changes, with tombstones), and `exporter synthesize`
// (made-up links, for measuring nginx).
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
#include "exporter/link_source.h"
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
    "      puts the newest version of DIR (or V) live: nginx -t on FILE with LINK pointing at\n"
    "      it, atomic swap of the symlink LINK (default DIR/live), SIGHUP to nginx, then polls\n"
    "      URL (default http://$EDGE_LISTEN/_edge/version) until it serves the version; any\n"
    "      failure restores the previous version. Keeps the N newest versions (5).\n"
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
    "  EDGE_PROBE_TIMEOUT_S (30), EXPORT_KEEP (5), EDGE_TOMBSTONE_DIR, EXPORT_INTERVAL_S (60),\n"
    "  EXPORT_DEBOUNCE_MS (500)\n";

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
};

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
  args.tombstone_dir = env.text("EDGE_TOMBSTONE_DIR", "");
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

int run_publish(const Arguments& args) {
  const std::optional<exporter::ExportLock> lock = exporter::ExportLock::try_acquire(args.out);
  if (!lock) {
    std::cerr << "exporter: publish: " << args.out
              << "/.publish.lock is held by another compile or publish; not run" << std::endl;
    return static_cast<int>(exporter::PublishOutcome::kLocked);
  }
  const exporter::PublishResult result = exporter::publish(args.publish, std::cerr);
  std::cerr << "exporter: " << result.summary << std::endl;
  return static_cast<int>(result.outcome);
}

// Writes one version folder (`compile`, `synthesize`, or a watch cycle,
// which compiles) and returns its name. The caller holds the lock.
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
  std::cerr << "exporter: wrote " << dir << ": " << bundle.input_entries << " links, nginx "
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
  return exporter::watch(
      options, [&compile_args] { return compile_once(compile_args, "compile"); }, g_stop,
      std::cerr);
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
  std::cerr << "exporter: wrote " << args.out << " (edge on " << params.listen << ")" << std::endl;
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
    std::cerr << "exporter: " << args.command << ": " << args.out
              << "/.publish.lock is held by another compile or publish; not run" << std::endl;
    return static_cast<int>(exporter::PublishOutcome::kLocked);
  }
  compile_once(args, args.command);
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
    std::cerr << "exporter: " << e.what() << std::endl;
    return 1;
  }
}
