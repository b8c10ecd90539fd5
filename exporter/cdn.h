// Renders export entries for CDNs: a Cloudflare Bulk Redirects list (CSV) and
// an AWS CloudFront KeyValueStore import file with the CloudFront Function
// that answers from it. Each has a cap; the hottest links are kept first.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "exporter/export_entry.h"

namespace exporter {

struct CloudflareOptions {
  // Host of the short links as Cloudflare sees them (lowercase letters,
  // digits, '.', '-'; no scheme, no port). Source URLs are "<host>/<code>",
  // which match both http and https.
  std::string source_host;
  // Items the plan allows (10,000 to 1,000,000 by plan), over both lists.
  std::size_t max_items = 10000;
};

// Two Bulk Redirect lists in Cloudflare's CSV import format: one line per
// link, no header, columns <SOURCE_URL>,<TARGET_URL>,<STATUS_CODE>,
// <PRESERVE_QUERY_STRING>,<INCLUDE_SUBDOMAINS>,<SUBPATH_MATCHING>,
// <PRESERVE_PATH_SUFFIX>, every flag FALSE (Location is the target itself);
// a target with ',' is quoted. Cloudflare cannot merge a query string the way
// the origin does, so:
//  - `fixed_csv` holds links without query forwarding; its rule may match any
//    GET or HEAD request:   http.request.full_uri in $LIST and
//                           http.request.method in {"GET" "HEAD"}
//  - `forward_csv` holds links with query forwarding; its rule must also
//    require an empty query, so every other request reaches the origin:
//                           ... and http.request.uri.query eq ""
// Cloudflare's redirect carries no `Cache-Control: private, max-age=N`.
struct CloudflareLists {
  std::string fixed_csv;
  std::string forward_csv;
  std::size_t entries = 0;
  std::size_t left_out = 0;           // eligible, but over max_items
  std::vector<Exclusion> exclusions;  // output "cloudflare"
};

// Renders `prepared` (from prepare_entries); lines are sorted by code. Throws
// std::invalid_argument for a bad source_host or a max_items of 0. Pure.
CloudflareLists render_cloudflare(const PreparedEntries& prepared,
                                  const CloudflareOptions& options);

struct CloudFrontOptions {
  std::size_t max_total_bytes = 5 * 1024 * 1024;  // keys plus values
  std::size_t max_key_bytes = 512;
  std::size_t max_value_bytes = 1024;
  // Id of the KeyValueStore the function reads ([A-Za-z0-9_-]{1,128}); the
  // default is a placeholder to replace before deploying.
  std::string kvs_id = "KVS_ID";
  // Seconds in `Cache-Control: private, max-age=N`; must equal the origin's
  // REDIRECT_MAX_AGE.
  int redirect_max_age = 90;
};

// `kvs_json` is {"data":[{"key":code,"value":"<status><kind> <target>"}]}
// (the nginx map value, see nginx_map.h), sorted by key. `function_js` is a
// viewer-request CloudFront Function (runtime cloudfront-js-2.0) that answers
// GET and HEAD /<code> from the store with the link's status, Location and
// Cache-Control when the origin's answer is certain: links without query
// forwarding, and other links when the request has no query string. It passes
// every other request on to the origin.
struct CloudFrontFiles {
  std::string kvs_json;
  std::string function_js;
  std::size_t entries = 0;
  std::size_t bytes = 0;              // keys plus values in the store
  std::size_t left_out = 0;           // eligible, but over max_total_bytes
  std::vector<Exclusion> exclusions;  // output "cloudfront": value_too_long, key_too_long, ...
};

// Renders `prepared` (from prepare_entries). Throws std::invalid_argument for
// a bad kvs_id or max_age. Pure.
CloudFrontFiles render_cloudfront(const PreparedEntries& prepared,
                                  const CloudFrontOptions& options);

}  // namespace exporter
