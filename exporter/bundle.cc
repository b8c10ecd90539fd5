#include "exporter/bundle.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <initializer_list>
#include <stdexcept>
#include <string_view>

namespace exporter {
namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void key(Writer& w, std::string_view name) {
  w.Key(name.data(), static_cast<rapidjson::SizeType>(name.size()));
}

void string_field(Writer& w, std::string_view name, std::string_view value) {
  key(w, name);
  w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

void number_field(Writer& w, std::string_view name, std::size_t value) {
  key(w, name);
  w.Uint64(value);
}

void files_field(Writer& w, std::initializer_list<const char*> names) {
  key(w, "files");
  w.StartArray();
  for (const char* name : names) w.String(name);
  w.EndArray();
}

std::size_t count_of(const std::vector<Exclusion>& exclusions) { return exclusions.size(); }

std::string render_manifest(const Bundle& bundle, const BundleOptions& options) {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  w.StartObject();
  number_field(w, "format", 1);
  string_field(w, "version", options.version);
  string_field(w, "created_at", options.created_at);
  key(w, "selection");
  w.StartObject();
  for (const auto& [name, value] : options.selection) string_field(w, name, value);
  w.EndObject();
  string_field(w, "digest", "xxh3_64:" + bundle.digest);
  number_field(w, "input_entries", bundle.input_entries);

  key(w, "outputs");
  w.StartObject();
  key(w, "nginx");
  w.StartObject();
  files_field(w, {kNginxMapFile, kVersionFile});
  number_field(w, "entries", bundle.nginx.entries);
  number_field(w, "excluded", count_of(bundle.nginx.exclusions));
  number_field(w, "map_hash_bucket_size", bundle.nginx.sizing.bucket_size);
  number_field(w, "map_hash_max_size", bundle.nginx.sizing.max_size);
  number_field(w, "hash_size", bundle.nginx.sizing.hash_size);
  number_field(w, "hash_trials", bundle.nginx.sizing.trials);
  number_field(w, "hash_placements", bundle.nginx.sizing.placements);
  number_field(w, "hash_memory_bytes", bundle.nginx.sizing.memory_bytes);
  w.EndObject();

  key(w, "cloudflare");
  w.StartObject();
  files_field(w, {kCloudflareFixedFile, kCloudflareForwardFile});
  number_field(w, "entries", bundle.cloudflare.entries);
  number_field(w, "excluded", count_of(bundle.cloudflare.exclusions));
  number_field(w, "left_out_by_cap", bundle.cloudflare.left_out);
  number_field(w, "max_items", options.cloudflare.max_items);
  string_field(w, "source_host", options.cloudflare.source_host);
  w.EndObject();

  key(w, "cloudfront");
  w.StartObject();
  files_field(w, {kCloudFrontKvsFile, kCloudFrontFunctionFile});
  number_field(w, "entries", bundle.cloudfront.entries);
  number_field(w, "excluded", count_of(bundle.cloudfront.exclusions));
  number_field(w, "left_out_by_cap", bundle.cloudfront.left_out);
  number_field(w, "bytes", bundle.cloudfront.bytes);
  number_field(w, "max_total_bytes", options.cloudfront.max_total_bytes);
  w.EndObject();
  w.EndObject();

  key(w, "exclusions");
  w.StartArray();
  for (const Exclusion& exclusion : bundle.exclusions) {
    w.StartObject();
    string_field(w, "code", exclusion.code);
    string_field(w, "output", exclusion.output);
    string_field(w, "reason", exclusion.reason);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  std::string text(buffer.GetString(), buffer.GetSize());
  text.push_back('\n');
  return text;
}

}  // namespace

ContentHasher::ContentHasher() : state_(XXH3_createState()) {
  if (state_ == nullptr) throw std::bad_alloc();
  XXH3_64bits_reset(state_);
}

ContentHasher::~ContentHasher() { XXH3_freeState(state_); }

void ContentHasher::start_file(std::string_view name, std::size_t size) {
  std::string header(name);
  header += '\0';
  header += std::to_string(size);
  header += '\0';
  XXH3_64bits_update(state_, header.data(), header.size());
}

void ContentHasher::update(const char* data, std::size_t size) {
  XXH3_64bits_update(state_, data, size);
}

std::string ContentHasher::hex() const {
  const XXH64_hash_t hash = XXH3_64bits_digest(state_);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
  return hex;
}

std::string content_digest(const std::vector<BundleFile>& files) {
  ContentHasher hasher;
  for (const BundleFile& file : files) {
    hasher.start_file(file.name, file.content.size());
    hasher.update(file.content.data(), file.content.size());
  }
  return hasher.hex();
}

Bundle render_bundle(std::vector<ExportEntry> entries, const BundleOptions& options) {
  Bundle bundle;
  bundle.version = options.version;
  bundle.input_entries = entries.size();
  const std::string version_conf = render_version_conf(options.version);
  const PreparedEntries prepared = prepare_entries(std::move(entries));
  bundle.nginx = render_nginx_map(prepared, options.nginx);
  bundle.cloudflare = render_cloudflare(prepared, options.cloudflare);
  bundle.cloudfront = render_cloudfront(prepared, options.cloudfront);

  bundle.files.push_back({kNginxMapFile, std::move(bundle.nginx.content)});
  bundle.files.push_back({kCloudflareFixedFile, std::move(bundle.cloudflare.fixed_csv)});
  bundle.files.push_back({kCloudflareForwardFile, std::move(bundle.cloudflare.forward_csv)});
  bundle.files.push_back({kCloudFrontKvsFile, std::move(bundle.cloudfront.kvs_json)});
  bundle.files.push_back({kCloudFrontFunctionFile, std::move(bundle.cloudfront.function_js)});
  bundle.digest = content_digest(bundle.files);

  const std::vector<Exclusion>* lists[] = {&prepared.exclusions, &bundle.nginx.exclusions,
                                           &bundle.cloudflare.exclusions,
                                           &bundle.cloudfront.exclusions};
  for (const std::vector<Exclusion>* list : lists) {
    bundle.exclusions.insert(bundle.exclusions.end(), list->begin(), list->end());
  }
  std::stable_sort(bundle.exclusions.begin(), bundle.exclusions.end(),
                   [](const Exclusion& a, const Exclusion& b) { return a.code < b.code; });

  bundle.files.push_back({kVersionFile, version_conf});
  bundle.files.push_back({kManifestFile, render_manifest(bundle, options)});
  return bundle;
}

}  // namespace exporter
