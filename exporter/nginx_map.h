// Renders export entries into the nginx map that nginx/edge.conf.template
// reads, and models what the edge then answers.
//
// Invariants of the rendered map (each checked by tests against a real nginx):
//  1. Keys are the lowercase codes, sorted, in one map per first character;
//     nginx compares them case-insensitively, like the origin. The map-block keywords `default`,
//     `include`, `hostnames` and `volatile` get a leading backslash, which
//     nginx strips; no code can start with '~' (a regex key).
//  2. A value is "<status><kind> <target>" in double quotes, e.g.
//     "307a https://example.com/". nginx reads map values as variable
//     templates and has no escape for '$', so a target with '$' is never
//     written; in a quoted token '\' starts an escape ("\n" becomes a line
//     feed) and '"' ends it, so targets with either, or with a space, a control
//     or a non-ASCII byte, are never written either. Every other printable
//     byte (';', '#', '{', '}', '\'' included) is literal inside the quotes.
//  3. A quoted value of more than 4094 bytes is refused by nginx ("too long
//     parameter"), so longer values are never written.
//  4. The same entries in any order give byte-identical output.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "exporter/export_entry.h"
#include "exporter/hash_sizing.h"

namespace exporter {

// How the edge may answer a link (the letter after the status in the value).
enum class EdgeKind : char {
  // forward_query is false: Location is the target whatever the query.
  kFixed = 'f',
  // forward_query with a target that has a '?' or '#': merging needs the
  // origin's rule (key conflicts, fragment), so only requests without a query
  // string are answered at the edge.
  kMergedAtOrigin = 'm',
  // forward_query with a target without '?' and '#': the edge also answers a
  // plain query (see QueryClass::kPlain) with target + "?" + query.
  kAppendable = 'a',
};

EdgeKind edge_kind(std::string_view target, bool forward_query);

// The raw query of a request (all after the first '?' of the raw request URI;
// not nginx's $args, which stops at a '#'), as the edge classifies it.
enum class QueryClass {
  kNone,   // empty (no '?', or nothing after it)
  kPlain,  // non-empty '&'-separated pieces, none empty, each made only of
           // bytes the origin never re-encodes: letters, digits,
           // -._~!$'()*+,;=:@/? and %XX with XX hexadecimal
  kOther,  // anything else: left to the origin
};

QueryClass classify_query(std::string_view query);

// Longest quoted token nginx 1.22 accepts, in bytes between the quotes.
inline constexpr std::size_t kMaxNginxQuotedToken = 4094;

// Why `entry` (already through prepare_entries) cannot be written into the
// map, or "" when it can: dollar_in_target, value_too_long, or a reason of
// unsafe_target_reason.
std::string_view nginx_exclusion_reason(const ExportEntry& entry);

// The map key for `code`: the code, with a leading backslash for keywords.
std::string nginx_map_key(std::string_view code);

// The map value for `entry`, without quotes: "<status><kind> <target>".
std::string nginx_map_value(const ExportEntry& entry);

// What the edge answers to GET or HEAD /<code>?<query> for a code whose map
// value is `map_value`: the Location (with the link's status), or nullopt when
// the request is passed to the origin. This is the logic of
// nginx/edge.conf.template written in C++; whenever it answers, the answer
// equals core::build_location(target, query, forward_query).
std::optional<std::string> edge_location(std::string_view map_value, std::string_view query);

struct NginxMapOptions {
  // map_hash_bucket_size to start from; doubled (up to 4096) when no hash size
  // fits the keys with it.
  std::size_t bucket_size = kDefaultMapHashBucketSize;
};

struct NginxMap {
  // edge_map.conf: the map_hash_* directives, then maps that define
  // $edge_entry from $edge_code: one map per first character of the code
  // (nginx's load time grows with the square of the distinct values in one
  // map), selected by a small map on that character, $edge_code_lead, which
  // nginx/edge.conf.template defines (with $edge_code, from one regex).
  std::string content;
  std::size_t entries = 0;
  std::vector<Exclusion> exclusions;  // output "nginx"
  HashSizing sizing;
};

// Renders `prepared` (from prepare_entries). Pure; output depends only on the
// entries and options. Throws std::invalid_argument for a bad bucket size.
NginxMap render_nginx_map(const PreparedEntries& prepared, const NginxMapOptions& options);

// version.conf: `map $edge_code $edge_export_version` whose only value is
// `version` ([A-Za-z0-9._-]{1,64}; throws std::invalid_argument otherwise),
// served by the edge at /_edge/version so a publisher can tell which export
// nginx has loaded.
std::string render_version_conf(std::string_view version);

}  // namespace exporter
