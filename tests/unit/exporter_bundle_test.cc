#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "exporter/bundle.h"
#include "exporter/bundle_writer.h"
#include "exporter/edge_config.h"

namespace exporter {
namespace {

std::vector<ExportEntry> sample_entries() {
  std::vector<ExportEntry> entries;
  for (int i = 0; i < 300; ++i) {
    ExportEntry e;
    e.code = "code" + std::to_string(i);
    e.target = "https://e.com/" + std::to_string(i) + (i % 5 == 0 ? "?a=1" : "");
    e.status = i % 2 == 0 ? 301 : 307;
    e.forward_query = i % 3 != 0;
    e.hotness = static_cast<std::uint64_t>(i * 13 % 17);
    entries.push_back(e);
  }
  ExportEntry dollar;
  dollar.code = "dollar";
  dollar.target = "https://e.com/?q=$host";
  entries.push_back(dollar);
  return entries;
}

BundleOptions options(std::string version, std::string time) {
  BundleOptions o;
  o.version = std::move(version);
  o.created_at = std::move(time);
  o.selection = {{"mode", "all_active"}};
  o.cloudflare.source_host = "sho.rt";
  return o;
}

const BundleFile* find_file(const Bundle& bundle, const std::string& name) {
  for (const BundleFile& file : bundle.files) {
    if (file.name == name) return &file;
  }
  return nullptr;
}

TEST(ExporterBundle, SameEntriesGiveByteIdenticalContentAndDigest) {
  std::vector<ExportEntry> entries = sample_entries();
  const Bundle first = render_bundle(entries, options("v1", "2026-11-27T20:00:00.000Z"));
  std::mt19937 rng(3);
  std::shuffle(entries.begin(), entries.end(), rng);
  const Bundle second = render_bundle(entries, options("v2", "2026-11-27T21:00:00.000Z"));
  EXPECT_EQ(first.digest, second.digest) << "version and time are not content";
  ASSERT_EQ(first.files.size(), second.files.size());
  for (std::size_t i = 0; i < first.files.size(); ++i) {
    if (first.files[i].name == kVersionFile || first.files[i].name == kManifestFile) continue;
    EXPECT_EQ(first.files[i].content, second.files[i].content) << first.files[i].name;
  }
  EXPECT_EQ(first.digest.size(), 16u);
}

TEST(ExporterBundle, AnyContentChangeChangesTheDigest) {
  std::vector<ExportEntry> entries = sample_entries();
  const std::string before = render_bundle(entries, options("v1", "t")).digest;
  entries[10].target += "x";
  EXPECT_NE(render_bundle(entries, options("v1", "t")).digest, before);
  entries[10].target.pop_back();
  entries[11].status = 308;
  EXPECT_NE(render_bundle(entries, options("v1", "t")).digest, before);
}

// What publish checks before a swap: the folder on disk against the digest.
TEST(ExporterBundle, FolderDigestMatchesTheWrittenBundleUntilAFileChanges) {
  char pattern[] = "/tmp/exporter_bundle_test.XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::string dir = pattern;
  const Bundle bundle = render_bundle(sample_entries(), options("v1", "t"));
  const std::string folder = write_bundle(bundle, dir);
  EXPECT_EQ(folder_digest(folder), bundle.digest);

  {
    std::ofstream out(folder + "/" + kVersionFile, std::ios::app);
    out << "# not content\n";
  }
  EXPECT_EQ(folder_digest(folder), bundle.digest) << "version.conf is not covered";

  const std::string map = folder + "/" + kNginxMapFile;
  const std::uintmax_t size = std::filesystem::file_size(map);
  std::filesystem::resize_file(map, size - 1);
  EXPECT_NE(folder_digest(folder), bundle.digest) << "a truncated map";

  std::filesystem::remove(folder + "/" + kCloudFrontKvsFile);
  EXPECT_THROW(folder_digest(folder), std::runtime_error) << "a missing file";
  std::filesystem::remove_all(dir);
}

TEST(ExporterBundle, ManifestDescribesOutputsAndExclusions) {
  const Bundle bundle = render_bundle(sample_entries(), options("v7", "2026-11-27T20:00:00.000Z"));
  const BundleFile* manifest = find_file(bundle, kManifestFile);
  ASSERT_NE(manifest, nullptr);
  rapidjson::Document doc;
  doc.Parse(manifest->content.c_str());
  ASSERT_FALSE(doc.HasParseError()) << manifest->content;
  EXPECT_STREQ(doc["version"].GetString(), "v7");
  EXPECT_STREQ(doc["created_at"].GetString(), "2026-11-27T20:00:00.000Z");
  EXPECT_STREQ(doc["selection"]["mode"].GetString(), "all_active");
  EXPECT_EQ(std::string(doc["digest"].GetString()), "xxh3_64:" + bundle.digest);
  EXPECT_EQ(doc["input_entries"].GetUint64(), 301u);
  EXPECT_EQ(doc["outputs"]["nginx"]["entries"].GetUint64(), 300u);
  EXPECT_EQ(doc["outputs"]["nginx"]["excluded"].GetUint64(), 1u);
  EXPECT_EQ(doc["outputs"]["nginx"]["hash_trials"].GetUint64(), 1u);
  EXPECT_EQ(doc["outputs"]["cloudflare"]["entries"].GetUint64(), 301u);
  EXPECT_EQ(doc["outputs"]["cloudfront"]["entries"].GetUint64(), 301u);
  ASSERT_EQ(doc["exclusions"].Size(), 1u);
  EXPECT_STREQ(doc["exclusions"][0]["code"].GetString(), "dollar");
  EXPECT_STREQ(doc["exclusions"][0]["output"].GetString(), "nginx");
  EXPECT_STREQ(doc["exclusions"][0]["reason"].GetString(), "dollar_in_target");
  const BundleFile* version = find_file(bundle, kVersionFile);
  ASSERT_NE(version, nullptr);
  EXPECT_NE(version->content.find("\"v7\""), std::string::npos);
}

TEST(ExporterEdgeConfig, FillsEveryPlaceholderAndRefusesUnsafeValues) {
  const std::string text =
      "listen @EDGE_LISTEN@; pid @PREFIX@/p; @ORIGIN_SERVERS@ include @EXPORT_DIR@/m;"
      " @VISIT_LOG_FORMAT@ @VISIT_LOG@ max-age=@REDIRECT_MAX_AGE@ w @WORKER_PROCESSES@;"
      " [:@/?] user@example";
  EdgeConfigParams params;
  params.prefix = "/run/edge";
  params.listen = "127.0.0.1:8000";
  params.origins = {"127.0.0.1:8080", "127.0.0.1:8081"};
  params.export_dir = "/srv/export/current";
  params.visit_log_format = "/etc/nginx/visit_log.conf";
  params.visit_log = "/var/log/visits.jsonl";
  params.redirect_max_age = 45;
  params.worker_processes = "2";
  EXPECT_EQ(render_edge_config(text, params),
            "listen 127.0.0.1:8000; pid /run/edge/p; server 127.0.0.1:8080; server "
            "127.0.0.1:8081; include /srv/export/current/m; /etc/nginx/visit_log.conf "
            "/var/log/visits.jsonl max-age=45 w 2; [:@/?] user@example");
  EdgeConfigParams bad = params;
  bad.export_dir = "/srv/x; include /etc/passwd";
  EXPECT_THROW(render_edge_config(text, bad), std::invalid_argument);
  bad = params;
  bad.prefix = "relative";
  EXPECT_THROW(render_edge_config(text, bad), std::invalid_argument);
  bad = params;
  bad.origins = {"127.0.0.1:80 backup"};
  EXPECT_THROW(render_edge_config(text, bad), std::invalid_argument);
  EXPECT_THROW(render_edge_config("@UNKNOWN@", params), std::invalid_argument);
}

}  // namespace
}  // namespace exporter
