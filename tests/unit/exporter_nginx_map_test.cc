#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "core/redirect.h"
#include "core/url_policy.h"
#include "exporter/export_entry.h"
#include "exporter/nginx_map.h"

namespace exporter {
namespace {

ExportEntry entry(std::string code, std::string target, int status = 307,
                  bool forward_query = true) {
  ExportEntry e;
  e.code = std::move(code);
  e.target = std::move(target);
  e.status = status;
  e.forward_query = forward_query;
  return e;
}

TEST(ExporterNginxMap, MapKeywordsGetALeadingBackslash) {
  for (const std::string code : {"default", "include", "hostnames", "volatile"}) {
    EXPECT_EQ(nginx_map_key(code), "\\" + code) << code;
  }
  for (const std::string code : {"defaults", "includes", "abc", "tracking", "r", "n"}) {
    EXPECT_EQ(nginx_map_key(code), code) << code << " needs no escape";
  }
}

TEST(ExporterNginxMap, ValueIsStatusKindAndTarget) {
  EXPECT_EQ(nginx_map_value(entry("a", "https://e.com/", 301, false)), "301f https://e.com/");
  EXPECT_EQ(nginx_map_value(entry("a", "https://e.com/p", 302, true)), "302a https://e.com/p");
  EXPECT_EQ(nginx_map_value(entry("a", "https://e.com/?x=1", 307, true)),
            "307m https://e.com/?x=1");
  EXPECT_EQ(nginx_map_value(entry("a", "https://e.com/#top", 308, true)),
            "308m https://e.com/#top");
}

struct ExclusionCase {
  std::string target;
  std::string reason;  // "" when the target is written
};

TEST(ExporterNginxMap, ExcludesTargetsNginxCouldNotWriteExactly) {
  const std::string base = "https://e.com/";
  const std::vector<ExclusionCase> cases = {
      {base + "?q=$host", "dollar_in_target"},
      {base + "$http_x_foo", "dollar_in_target"},
      {base + "${x}", "dollar_in_target"},
      {base + "$", "dollar_in_target"},
      {base + "a\"b", "quote_in_target"},
      {base + "a\\nb", "backslash_in_target"},
      {base + "a\\b", "backslash_in_target"},
      {base + "a\r\nSet-Cookie: x", "control_or_space_in_target"},
      {base + "a\tb", "control_or_space_in_target"},
      {base + "a b", "control_or_space_in_target"},
      {base + "a\x7f", "control_or_space_in_target"},
      {base + "caf\xc3\xa9", "non_ascii_in_target"},
      {base + std::string(kMaxNginxQuotedToken - 5 - base.size(), 'a'), ""},
      {base + std::string(kMaxNginxQuotedToken - 4 - base.size(), 'a'), "value_too_long"},
      {base + "a;b#c{d}e'f", ""},
      {base + "?a=1&b=%22#frag", ""},
      {base + "!*()+,=:@/?~", ""},
  };
  for (const ExclusionCase& c : cases) {
    EXPECT_EQ(nginx_exclusion_reason(entry("c", c.target)), c.reason) << c.target.substr(0, 60);
  }
}

TEST(ExporterNginxMap, RenderedFileHasSizingAndOneQuotedEntryPerCode) {
  PreparedEntries prepared =
      prepare_entries({entry("b", "https://e.com/b", 301, false), entry("default", "https://d/"),
                       entry("a", "https://e.com/?q=$host")});
  const NginxMap map = render_nginx_map(prepared, {});
  EXPECT_EQ(map.entries, 2u);
  ASSERT_EQ(map.exclusions.size(), 1u);
  EXPECT_EQ(map.exclusions[0].code, "a");
  EXPECT_EQ(map.exclusions[0].output, "nginx");
  EXPECT_EQ(map.exclusions[0].reason, "dollar_in_target");
  EXPECT_NE(map.content.find("map_hash_bucket_size 256;\n"), std::string::npos) << map.content;
  EXPECT_NE(map.content.find("map_hash_max_size " + std::to_string(map.sizing.max_size) + ";\n"),
            std::string::npos);
  EXPECT_NE(map.content.find("map $edge_code_lead $edge_entry {\n    default \"\";\n"
                             "    b $edge_entry_b;\n    d $edge_entry_d;\n}\n"
                             "map $edge_code $edge_entry_b {\n    default \"\";\n"
                             "    b \"301f https://e.com/b\";\n}\n"
                             "map $edge_code $edge_entry_d {\n    default \"\";\n"
                             "    \\default \"307a https://d/\";\n}\n"),
            std::string::npos)
      << map.content;
  EXPECT_LT(map.content.find("map_hash_max_size"), map.content.find("map "))
      << "map_hash_* must come before the first map block";
  EXPECT_EQ(map.content.find("$host"), std::string::npos) << "excluded target left out";
}

TEST(ExporterNginxMap, SameEntriesInAnyOrderGiveIdenticalFiles) {
  std::vector<ExportEntry> entries;
  for (int i = 0; i < 500; ++i) {
    entries.push_back(entry("c" + std::to_string(i), "https://e.com/" + std::to_string(i * 7),
                            301 + (i % 2), i % 3 == 0));
  }
  const std::string first = render_nginx_map(prepare_entries(entries), {}).content;
  std::mt19937 rng(42);
  std::shuffle(entries.begin(), entries.end(), rng);
  EXPECT_EQ(render_nginx_map(prepare_entries(entries), {}).content, first);
}

struct QueryCase {
  std::string query;
  QueryClass expected;
};

TEST(ExporterNginxMap, ClassifiesQueriesLikeTheEdge) {
  const std::vector<QueryCase> cases = {
      {"", QueryClass::kNone},
      {"a=1", QueryClass::kPlain},
      {"a=1&b=2", QueryClass::kPlain},
      {"flag", QueryClass::kPlain},
      {"=", QueryClass::kPlain},
      {"a=%41%4a%4A", QueryClass::kPlain},
      {"x=!$'()*+,;=:@/?-._~", QueryClass::kPlain},
      {"&", QueryClass::kOther},
      {"a=1&", QueryClass::kOther},
      {"&a=1", QueryClass::kOther},
      {"a=1&&b=2", QueryClass::kOther},
      {"a=%", QueryClass::kOther},
      {"a=%4", QueryClass::kOther},
      {"a=%4g", QueryClass::kOther},
      {"a=%&b", QueryClass::kOther},
      {"a b", QueryClass::kOther},
      {"a=\"", QueryClass::kOther},
      {"a=#", QueryClass::kOther},
      {"a=[1]", QueryClass::kOther},
      {"a={}", QueryClass::kOther},
      {"a=|", QueryClass::kOther},
      {"a=\xc3\xbc", QueryClass::kOther},
      {"a=\\", QueryClass::kOther},
  };
  for (const QueryCase& c : cases) {
    EXPECT_EQ(classify_query(c.query), c.expected) << c.query;
  }
}

// The C++ model of the edge answers only with the origin's own Location.
TEST(ExporterNginxMap, EdgeAnswerIsAlwaysTheOriginsLocation) {
  const std::vector<std::string> raw_targets = {
      "https://e.com/",        "https://e.com/p",      "https://e.com/p?",
      "https://e.com/p?a=1",   "https://e.com/p?a=1&", "https://e.com/p#f",
      "https://e.com/p?a=1#f", "https://e.com/p#f?x",  "http://e.com:8080/a%20b",
      "https://e.com/?flag",   "https://e.com/a;b=c"};
  const std::vector<std::string> pieces = {
      "",  "a=1", "a=2", "b", "b=", "=",     "=x",   "flag", "%41", "%",  "%4",   "%zz", " ",
      "#", "\"",  "ü",   "$", "'",  "x=y=z", "?",    "/",    "&",   "&&", "[",    "]",   "{",
      "}", "|",   "\\",  "^", "`",  "<",     "c=%2", "~",    "!",   "*",  "a=%2F"};
  std::mt19937 rng(7);
  std::size_t answered[3] = {0, 0, 0};
  std::size_t total = 0;
  for (const std::string& raw : raw_targets) {
    const auto normalized = core::normalize_target(raw, {});
    ASSERT_TRUE(std::holds_alternative<std::string>(normalized)) << raw;
    const std::string target = std::get<std::string>(normalized);
    for (const bool forward : {false, true}) {
      const std::string value = nginx_map_value(entry("c", target, 307, forward));
      for (int i = 0; i < 400; ++i) {
        std::string query;
        const int count = static_cast<int>(rng() % 5);
        for (int k = 0; k < count; ++k) {
          if (k > 0 && rng() % 4 != 0) query += '&';
          query += pieces[rng() % pieces.size()];
        }
        ++total;
        const std::optional<std::string> edge = edge_location(value, query);
        if (!edge) continue;
        ++answered[static_cast<int>(edge_kind(target, forward) == EdgeKind::kFixed        ? 0
                                    : edge_kind(target, forward) == EdgeKind::kAppendable ? 1
                                                                                          : 2)];
        EXPECT_EQ(*edge, core::build_location(target, query, forward))
            << "target " << target << " query [" << query << "] forward " << forward;
      }
    }
  }
  EXPECT_GT(answered[0], 0u) << "fixed links answered at the edge";
  EXPECT_GT(answered[1], 0u) << "appendable links answered at the edge";
  EXPECT_GT(answered[2], 0u) << "merged links answered at the edge without a query";
  EXPECT_LT(answered[0] + answered[1] + answered[2], total) << "some requests left to the origin";
}

TEST(ExporterNginxMap, VersionConfServesOnlySafeVersions) {
  EXPECT_EQ(render_version_conf("20261127T204640Z-1"),
            "# Generated by the shortener exporter; do not edit.\n"
            "map $edge_code $edge_export_version {\n"
            "    default \"20261127T204640Z-1\";\n}\n");
  for (const std::string& bad :
       std::vector<std::string>{"", "a b", "a\"", "$x", "a;b", std::string(65, 'a')}) {
    EXPECT_THROW(render_version_conf(bad), std::invalid_argument) << bad;
  }
}

TEST(ExporterPrepareEntries, ExcludesWhatNoOutputCanCarryAndSortsByCode) {
  const PreparedEntries prepared = prepare_entries({
      entry("zz", "https://e.com/z"),
      entry("Upper", "https://e.com/"),
      entry("healthz", "https://e.com/"),
      entry("dup", "https://e.com/1"),
      entry("dup", "https://e.com/2"),
      entry("bad-status", "https://e.com/", 303),
      entry("relative", "/local"),
      entry("ftp", "ftp://e.com/"),
      entry("aa", "http://e.com/a"),
  });
  std::vector<std::string> kept;
  for (const ExportEntry& e : prepared.entries) kept.push_back(e.code);
  EXPECT_EQ(kept, (std::vector<std::string>{"aa", "zz"}));
  std::vector<std::string> reasons;
  for (const Exclusion& e : prepared.exclusions) {
    reasons.push_back(e.code + ":" + e.output + ":" + e.reason);
  }
  EXPECT_EQ(reasons,
            (std::vector<std::string>{"Upper:all:invalid_code", "bad-status:all:invalid_status",
                                      "dup:all:duplicate_code", "dup:all:duplicate_code",
                                      "ftp:all:target_not_http_url", "healthz:all:reserved_code",
                                      "relative:all:target_not_http_url"}));
}

}  // namespace
}  // namespace exporter
