// exporter: compiles links into edge files. `exporter compile`, and
// `exporter synthesize` (made-up links, for measuring nginx).
#include <ctime>
#include <exception>
#include <iostream>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/config.h"
#include "exporter/bundle.h"
#include "exporter/bundle_writer.h"
#include "exporter/link_source.h"

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
    "environment: DATABASE_URL, PUBLIC_BASE_URL (Cloudflare source host), REDIRECT_MAX_AGE,\n"
    "  EXPORT_MAP_BUCKET_SIZE (256), CLOUDFLARE_MAX_ITEMS (10000), CLOUDFRONT_KVS_ID,\n"
    "  CLOUDFRONT_MAX_BYTES (5242880), EXPORT_HOT_WINDOW_S (3600), EXPORT_MIN_CLICKS (100),\n"
    "  EXPORT_TOP_K (0), EXPORT_STABLE_S (600), EXPORT_HORIZON_S (86400)\n";

struct Arguments {
  std::string command;
  std::string out;
  std::string version;
  std::size_t count = 0;
  std::size_t naive_bucket_size = 0;
  std::size_t naive_max_size = 0;
  bool all = false;
};

Arguments parse_arguments(int argc, char** argv) {
  Arguments args;
  if (argc < 2) throw core::ConfigError("no command");
  args.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--all") {
      args.all = true;
      continue;
    }
    if (i + 1 >= argc) throw core::ConfigError("missing value after " + flag);
    const std::string value = argv[++i];
    if (flag == "--out") {
      args.out = value;
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
  if (args.out.empty()) throw core::ConfigError("--out DIR is required");
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

int run(const Arguments& args) {
  const core::Env env;
  exporter::BundleOptions options = bundle_options(env, args);
  std::vector<exporter::ExportEntry> entries;
  if (args.command == "compile" && args.all) {
    options.selection = {{"mode", "all_active"}, {"rule", "not disabled and not expired"}};
    entries = exporter::load_active_links(core::load_database_config(env).url);
  } else if (args.command == "compile") {
    const exporter::Selection selection = exporter::load_selection(env);
    options.selection = exporter::describe(selection);
    entries = exporter::load_hot_links(core::load_database_config(env).url, selection);
  } else if (args.command == "synthesize") {
    options.selection = {{"mode", "synthetic"}, {"count", std::to_string(args.count)}};
    entries = synthetic_links(args.count);
  } else {
    throw core::ConfigError("unknown command " + args.command);
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
