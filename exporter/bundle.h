// One export: every output rendered from the same entries, a content digest,
// and the manifest that describes them.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "exporter/cdn.h"
#include "exporter/export_entry.h"
#include "exporter/nginx_map.h"

struct XXH3_state_s;  // xxhash.h's XXH3_state_t

namespace exporter {

struct BundleOptions {
  // Names the export folder and is served at /_edge/version once loaded.
  std::string version;
  // When the export was made (RFC 3339); only the manifest carries it.
  std::string created_at;
  // How the entries were chosen (thresholds, windows...), copied as given.
  std::vector<std::pair<std::string, std::string>> selection;
  NginxMapOptions nginx;
  CloudflareOptions cloudflare;
  CloudFrontOptions cloudfront;
};

struct BundleFile {
  std::string name;
  std::string content;
};

// File names inside an export folder.
inline constexpr const char* kNginxMapFile = "edge_map.conf";
inline constexpr const char* kVersionFile = "version.conf";
inline constexpr const char* kCloudflareFixedFile = "cloudflare_fixed.csv";
inline constexpr const char* kCloudflareForwardFile = "cloudflare_forward.csv";
inline constexpr const char* kCloudFrontKvsFile = "cloudfront_kvs.json";
inline constexpr const char* kCloudFrontFunctionFile = "cloudfront_function.js";
inline constexpr const char* kManifestFile = "manifest.json";

// The files the digest covers, in its order (render_bundle's order).
inline constexpr const char* kContentFiles[] = {kNginxMapFile, kCloudflareFixedFile,
                                                kCloudflareForwardFile, kCloudFrontKvsFile,
                                                kCloudFrontFunctionFile};

struct Bundle {
  std::string version;
  // Content files (those the digest covers), then version.conf, then
  // manifest.json.
  std::vector<BundleFile> files;
  // xxh3_64 of the content files as 16 lowercase hex digits. Depends only on
  // the entries and the rendering options, never on version or time: an
  // unchanged digest means nothing to publish.
  std::string digest;
  std::size_t input_entries = 0;
  NginxMap nginx;  // content moved into `files`
  CloudflareLists cloudflare;
  CloudFrontFiles cloudfront;
  std::vector<Exclusion> exclusions;  // every output's, sorted by code
};

// Renders every output. Pure: the same entries (in any order) and options give
// byte-identical files. Throws std::invalid_argument for bad options.
Bundle render_bundle(std::vector<ExportEntry> entries, const BundleOptions& options);

// xxh3_64 over (name, size, content) of each file in order, as 16 hex digits.
std::string content_digest(const std::vector<BundleFile>& files);

// content_digest fed piece by piece, for files too large to hold at once:
// per file, start_file(name, size) then exactly `size` bytes through update();
// then hex(). Not copyable.
class ContentHasher {
 public:
  ContentHasher();  // throws std::bad_alloc
  ~ContentHasher();
  ContentHasher(const ContentHasher&) = delete;
  ContentHasher& operator=(const ContentHasher&) = delete;
  void start_file(std::string_view name, std::size_t size);
  void update(const char* data, std::size_t size);
  std::string hex() const;

 private:
  ::XXH3_state_s* state_;
};

}  // namespace exporter
