#include "exporter/nginx_map.h"

#include <array>
#include <map>
#include <stdexcept>

namespace exporter {
namespace {

constexpr std::array<std::string_view, 4> kMapKeywords = {"default", "include", "hostnames",
                                                          "volatile"};

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool is_plain_query_byte(char c) {
  static constexpr std::string_view kSymbols = "-._~!$'()*+,;=:@/?";
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         kSymbols.find(c) != std::string_view::npos;
}

bool is_version_byte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

// The variable of the map holding codes that start with `lead`.
std::string nginx_partition_variable(char lead) {
  if (lead == '-') return "edge_entry_dash";
  if (lead == '_') return "edge_entry_underscore";
  return std::string("edge_entry_") + lead;
}

// "307a " before the target.
constexpr std::size_t kValuePrefixLength = 5;

}  // namespace

EdgeKind edge_kind(std::string_view target, bool forward_query) {
  if (!forward_query) return EdgeKind::kFixed;
  if (target.find_first_of("?#") != std::string_view::npos) return EdgeKind::kMergedAtOrigin;
  return EdgeKind::kAppendable;
}

QueryClass classify_query(std::string_view query) {
  if (query.empty()) return QueryClass::kNone;
  bool piece_empty = true;
  for (std::size_t i = 0; i < query.size(); ++i) {
    const char c = query[i];
    if (c == '&') {
      if (piece_empty) return QueryClass::kOther;
      piece_empty = true;
      continue;
    }
    if (c == '%') {
      if (i + 2 >= query.size() || !is_hex(query[i + 1]) || !is_hex(query[i + 2])) {
        return QueryClass::kOther;
      }
      i += 2;
    } else if (!is_plain_query_byte(c)) {
      return QueryClass::kOther;
    }
    piece_empty = false;
  }
  return piece_empty ? QueryClass::kOther : QueryClass::kPlain;
}

std::string_view nginx_exclusion_reason(const ExportEntry& entry) {
  if (entry.target.find('$') != std::string::npos) return "dollar_in_target";
  const std::string_view unsafe = unsafe_target_reason(entry.target);
  if (!unsafe.empty()) return unsafe;
  if (kValuePrefixLength + entry.target.size() > kMaxNginxQuotedToken) return "value_too_long";
  return {};
}

std::string nginx_map_key(std::string_view code) {
  for (const std::string_view keyword : kMapKeywords) {
    if (code == keyword) return "\\" + std::string(code);
  }
  return std::string(code);
}

std::string nginx_map_value(const ExportEntry& entry) {
  std::string value = std::to_string(entry.status);
  value.push_back(static_cast<char>(edge_kind(entry.target, entry.forward_query)));
  value.push_back(' ');
  value += entry.target;
  return value;
}

std::optional<std::string> edge_location(std::string_view map_value, std::string_view query) {
  if (map_value.size() <= kValuePrefixLength) return std::nullopt;
  const auto kind = static_cast<EdgeKind>(map_value[3]);
  const std::string_view target = map_value.substr(kValuePrefixLength);
  const QueryClass query_class = classify_query(query);
  switch (kind) {
    case EdgeKind::kFixed:
      return std::string(target);
    case EdgeKind::kMergedAtOrigin:
      if (query_class == QueryClass::kNone) return std::string(target);
      return std::nullopt;
    case EdgeKind::kAppendable:
      if (query_class == QueryClass::kNone) return std::string(target);
      if (query_class == QueryClass::kPlain) return std::string(target) + "?" + std::string(query);
      return std::nullopt;
  }
  return std::nullopt;
}

NginxMap render_nginx_map(const PreparedEntries& prepared, const NginxMapOptions& options) {
  NginxMap map;
  // Codes grouped by first character, in code order (std::map: '-' < digits <
  // '_' < letters, always the same).
  std::map<char, std::vector<const ExportEntry*>> partitions;
  for (const ExportEntry& entry : prepared.entries) {
    const std::string_view reason = nginx_exclusion_reason(entry);
    if (!reason.empty()) {
      map.exclusions.push_back(Exclusion{entry.code, "nginx", std::string(reason)});
      continue;
    }
    partitions[entry.code[0]].push_back(&entry);
    ++map.entries;
  }
  std::vector<std::vector<std::string>> key_sets;
  std::vector<std::string> leads;
  std::size_t bytes = 1024;
  for (const auto& [lead, entries] : partitions) {
    leads.emplace_back(1, lead);
    std::vector<std::string>& keys = key_sets.emplace_back();
    keys.reserve(entries.size());
    for (const ExportEntry* entry : entries) {
      keys.push_back(entry->code);
      bytes += entry->code.size() + entry->target.size() + 16;
    }
  }
  key_sets.push_back(leads);
  // A bucket too small for these keys (long codes that collide) is doubled
  // rather than failing the export.
  for (std::size_t bucket_size = options.bucket_size;; bucket_size *= 2) {
    try {
      map.sizing = size_map_hashes(key_sets, bucket_size);
      break;
    } catch (const std::invalid_argument&) {
      if (bucket_size * 2 > 4096) throw;
    }
  }

  std::string& out = map.content;
  out.reserve(bytes);
  out += "# Generated by the shortener exporter; do not edit. Included in http {} by\n";
  out += "# nginx/edge.conf.template before any other map: map_hash_* apply to every map\n";
  out += "# of the block, and are sized so that nginx builds each hash at its first trial\n";
  out += "# (exporter/hash_sizing.h). " + std::to_string(map.entries) + " entries.\n";
  out += "map_hash_bucket_size " + std::to_string(map.sizing.bucket_size) + ";\n";
  out += "map_hash_max_size " + std::to_string(map.sizing.max_size) + ";\n";
  out +=
      "\n# $edge_entry for $edge_code: \"<status><kind> <target>\", or \"\" when not exported.\n";
  out += "# kind f: fixed, m: query merged at the origin, a: plain query appended here.\n";
  out += "# One map per first character: nginx compares each new map value with the\n";
  out += "# earlier ones of its map in a fixed 10007-slot table, which costs O(n^2) at\n";
  out += "# load time; smaller maps keep a reload of 1M entries fast.\n";
  out += "# $edge_code_lead (the code's first character) comes from nginx/edge.conf.template.\n";
  out += "map $edge_code_lead $edge_entry {\n    default \"\";\n";
  for (const auto& [lead, entries] : partitions) {
    out += "    ";
    out += lead;
    out += " $" + nginx_partition_variable(lead) + ";\n";
  }
  out += "}\n";
  for (const auto& [lead, entries] : partitions) {
    out += "map $edge_code $" + nginx_partition_variable(lead) + " {\n    default \"\";\n";
    for (const ExportEntry* entry : entries) {
      out += "    ";
      out += nginx_map_key(entry->code);
      out += " \"";
      out += nginx_map_value(*entry);
      out += "\";\n";
    }
    out += "}\n";
  }
  return map;
}

std::string render_version_conf(std::string_view version) {
  if (version.empty() || version.size() > 64) {
    throw std::invalid_argument("an export version has 1 to 64 characters");
  }
  for (const char c : version) {
    if (!is_version_byte(c)) {
      throw std::invalid_argument("an export version has only [A-Za-z0-9._-]");
    }
  }
  return "# Generated by the shortener exporter; do not edit.\n"
         "map $edge_code $edge_export_version {\n"
         "    default \"" +
         std::string(version) + "\";\n}\n";
}

}  // namespace exporter
