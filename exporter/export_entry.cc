#include "exporter/export_entry.h"

#include <algorithm>
#include <utility>

#include "core/code.h"
#include "core/link.h"

namespace exporter {

PreparedEntries prepare_entries(std::vector<ExportEntry> entries) {
  std::sort(entries.begin(), entries.end(),
            [](const ExportEntry& a, const ExportEntry& b) { return a.code < b.code; });
  PreparedEntries prepared;
  prepared.entries.reserve(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    ExportEntry& entry = entries[i];
    const bool repeated = (i > 0 && entries[i - 1].code == entry.code) ||
                          (i + 1 < entries.size() && entries[i + 1].code == entry.code);
    std::string_view reason;
    if (!core::is_valid_code(entry.code)) {
      reason = "invalid_code";
    } else if (core::is_reserved_word(entry.code)) {
      reason = "reserved_code";
    } else if (repeated) {
      reason = "duplicate_code";
    } else if (!core::is_redirect_status(entry.status)) {
      reason = "invalid_status";
    } else if (entry.target.rfind("http://", 0) != 0 && entry.target.rfind("https://", 0) != 0) {
      // A relative Location would be completed by nginx with its own host.
      reason = "target_not_http_url";
    }
    if (reason.empty()) {
      prepared.entries.push_back(std::move(entry));
    } else {
      prepared.exclusions.push_back(Exclusion{entry.code, "all", std::string(reason)});
    }
  }
  return prepared;
}

std::string_view unsafe_target_reason(std::string_view target) {
  for (const char c : target) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"') return "quote_in_target";
    if (c == '\\') return "backslash_in_target";
    if (byte <= 0x20 || byte == 0x7F) return "control_or_space_in_target";
    if (byte >= 0x80) return "non_ascii_in_target";
  }
  return {};
}

std::vector<const ExportEntry*> hottest_first(const std::vector<ExportEntry>& entries) {
  std::vector<const ExportEntry*> order;
  order.reserve(entries.size());
  for (const ExportEntry& entry : entries) order.push_back(&entry);
  std::sort(order.begin(), order.end(), [](const ExportEntry* a, const ExportEntry* b) {
    if (a->hotness != b->hotness) return a->hotness > b->hotness;
    return a->code < b->code;
  });
  return order;
}

}  // namespace exporter
