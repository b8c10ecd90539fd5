// What the exporter renders: one stored link reduced to what an edge needs,
// and the reason a link stays at the origin.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace exporter {

// A link selected for export. `code` is lowercase [a-z0-9_-]{1,64}; `target` is
// the stored, normalized target (core::normalize_target), sent byte for byte.
struct ExportEntry {
  std::string code;
  std::string target;
  int status = 307;
  bool forward_query = true;
  // Recent clicks; decides who is left out first when a target has a cap.
  std::uint64_t hotness = 0;
};

// A link that one output does not carry. `reason` is a stable token, e.g.
// "dollar_in_target"; `output` names the output ("nginx", "cloudflare",
// "cloudfront") or is "all" when no output can carry it.
struct Exclusion {
  std::string code;
  std::string output;
  std::string reason;
};

// Entries every output may consider, sorted by code, and the rest with reasons.
struct PreparedEntries {
  std::vector<ExportEntry> entries;
  std::vector<Exclusion> exclusions;
};

// Checks what every output needs: a valid lowercase code that the origin routes
// as a redirect (not a reserved word), a redirect status, an http(s) target,
// and a code that appears once (every copy of a repeated code is excluded,
// since which one is right cannot be known). Reasons: invalid_code,
// reserved_code, duplicate_code, invalid_status, target_not_http_url.
// The result is sorted by code, so the same input in any order gives the same
// output. Pure.
PreparedEntries prepare_entries(std::vector<ExportEntry> entries);

// The first reason, or "" when none, why `target` cannot be written into a
// generated file so that it is sent byte for byte: every byte must be
// printable ASCII other than '"' and '\' (no space, control or non-ASCII byte).
// Reasons: quote_in_target, backslash_in_target, control_or_space_in_target,
// non_ascii_in_target. Normalized targets never fail this; it is defence.
std::string_view unsafe_target_reason(std::string_view target);

// Entries sorted hottest first (ties by code), for outputs with a cap.
std::vector<const ExportEntry*> hottest_first(const std::vector<ExportEntry>& entries);

}  // namespace exporter
