#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "exporter/cdn.h"

namespace exporter {
namespace {

ExportEntry entry(std::string code, std::string target, int status, bool forward_query,
                  std::uint64_t hotness) {
  ExportEntry e;
  e.code = std::move(code);
  e.target = std::move(target);
  e.status = status;
  e.forward_query = forward_query;
  e.hotness = hotness;
  return e;
}

CloudflareOptions cloudflare_options(std::size_t max_items = 10000) {
  CloudflareOptions options;
  options.source_host = "sho.rt";
  options.max_items = max_items;
  return options;
}

TEST(ExporterCloudflare, WritesDocumentedColumnsWithoutHeaderSplitByQueryForwarding) {
  const PreparedEntries prepared = prepare_entries({
      entry("b", "https://e.com/b?x=1", 302, false, 0),
      entry("a", "https://e.com/a", 301, false, 0),
      entry("c", "https://e.com/c,d", 307, true, 0),
      entry("d", "https://e.com/?q=$host", 308, true, 0),
  });
  const CloudflareLists lists = render_cloudflare(prepared, cloudflare_options());
  EXPECT_EQ(lists.fixed_csv,
            "sho.rt/a,https://e.com/a,301,FALSE,FALSE,FALSE,FALSE\n"
            "sho.rt/b,https://e.com/b?x=1,302,FALSE,FALSE,FALSE,FALSE\n");
  EXPECT_EQ(lists.forward_csv,
            "sho.rt/c,\"https://e.com/c,d\",307,FALSE,FALSE,FALSE,FALSE\n"
            "sho.rt/d,https://e.com/?q=$host,308,FALSE,FALSE,FALSE,FALSE\n")
      << "'$' is plain text to Cloudflare";
  EXPECT_EQ(lists.entries, 4u);
  EXPECT_EQ(lists.left_out, 0u);
}

TEST(ExporterCloudflare, KeepsTheHottestUpToTheCapAndCountsTheRest) {
  const PreparedEntries prepared = prepare_entries({
      entry("cold", "https://e.com/1", 301, false, 1),
      entry("hot", "https://e.com/2", 301, false, 100),
      entry("warm", "https://e.com/3", 301, true, 50),
      entry("tie-b", "https://e.com/4", 301, false, 10),
      entry("tie-a", "https://e.com/5", 301, false, 10),
  });
  const CloudflareLists lists = render_cloudflare(prepared, cloudflare_options(3));
  EXPECT_EQ(lists.entries, 3u);
  EXPECT_EQ(lists.left_out, 2u);
  EXPECT_EQ(lists.fixed_csv,
            "sho.rt/hot,https://e.com/2,301,FALSE,FALSE,FALSE,FALSE\n"
            "sho.rt/tie-a,https://e.com/5,301,FALSE,FALSE,FALSE,FALSE\n");
  EXPECT_EQ(lists.forward_csv, "sho.rt/warm,https://e.com/3,301,FALSE,FALSE,FALSE,FALSE\n");
}

TEST(ExporterCloudflare, ExcludesUnsafeTargetsAndRefusesABadHost) {
  const PreparedEntries prepared = prepare_entries({entry("q", "https://e.com/\"", 301, false, 0)});
  const CloudflareLists lists = render_cloudflare(prepared, cloudflare_options());
  ASSERT_EQ(lists.exclusions.size(), 1u);
  EXPECT_EQ(lists.exclusions[0].reason, "quote_in_target");
  EXPECT_EQ(lists.exclusions[0].output, "cloudflare");
  CloudflareOptions bad = cloudflare_options();
  for (const std::string host : {"", "Sho.rt", "sho.rt/x", "sho rt", "sho.rt,x"}) {
    bad.source_host = host;
    EXPECT_THROW(render_cloudflare(prepared, bad), std::invalid_argument) << host;
  }
}

TEST(ExporterCloudFront, WritesTheImportFormatSortedByKey) {
  const PreparedEntries prepared = prepare_entries({
      entry("b", "https://e.com/b#top", 308, true, 0),
      entry("a", "https://e.com/a", 301, false, 0),
  });
  const CloudFrontFiles files = render_cloudfront(prepared, {});
  EXPECT_EQ(files.kvs_json,
            "{\"data\":[{\"key\":\"a\",\"value\":\"301f https://e.com/a\"},"
            "{\"key\":\"b\",\"value\":\"308m https://e.com/b#top\"}]}\n");
  EXPECT_EQ(files.entries, 2u);
  EXPECT_EQ(files.bytes, std::string("a301f https://e.com/a").size() +
                             std::string("b308m https://e.com/b#top").size());
  rapidjson::Document doc;
  doc.Parse(files.kvs_json.c_str());
  ASSERT_FALSE(doc.HasParseError());
  EXPECT_EQ(doc["data"].Size(), 2u);
}

TEST(ExporterCloudFront, RespectsTheStoreLimitsHottestFirst) {
  CloudFrontOptions options;
  options.max_value_bytes = 40;
  options.max_total_bytes = 60;
  const PreparedEntries prepared = prepare_entries({
      entry("long", "https://e.com/" + std::string(40, 'x'), 301, false, 1000),
      entry("hot", "https://e.com/hot", 301, false, 100),   // 3 + 22 = 25 bytes
      entry("warm", "https://e.com/warm", 301, false, 50),  // 4 + 23 = 27 bytes
      entry("cold", "https://e.com/cold", 301, false, 1),   // would not fit
      entry("tiny", "https://e.com/", 301, false, 0),       // fits, but colder than cold
  });
  const CloudFrontFiles files = render_cloudfront(prepared, options);
  ASSERT_EQ(files.exclusions.size(), 1u);
  EXPECT_EQ(files.exclusions[0].code, "long");
  EXPECT_EQ(files.exclusions[0].reason, "value_too_long");
  EXPECT_EQ(files.entries, 2u);
  EXPECT_EQ(files.left_out, 2u) << "hottest first: once full, colder links are left out";
  EXPECT_EQ(files.bytes, 52u);
  EXPECT_NE(files.kvs_json.find("\"hot\""), std::string::npos);
  EXPECT_NE(files.kvs_json.find("\"warm\""), std::string::npos);
}

TEST(ExporterCloudFront, FunctionUsesTheStoreAndTheOriginsCacheControl) {
  CloudFrontOptions options;
  options.kvs_id = "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111";
  options.redirect_max_age = 45;
  const CloudFrontFiles files = render_cloudfront(prepare_entries({}), options);
  EXPECT_NE(files.function_js.find("import cf from 'cloudfront';"), std::string::npos);
  EXPECT_NE(files.function_js.find("cf.kvs('a1b2c3d4-5678-90ab-cdef-EXAMPLE11111')"),
            std::string::npos);
  EXPECT_NE(files.function_js.find("'private, max-age=45'"), std::string::npos);
  EXPECT_NE(files.function_js.find("async function handler(event)"), std::string::npos);
  EXPECT_EQ(files.function_js.find('@'), std::string::npos) << "every placeholder filled";
  options.kvs_id = "x'); evil('";
  EXPECT_THROW(render_cloudfront(prepare_entries({}), options), std::invalid_argument);
}

}  // namespace
}  // namespace exporter
