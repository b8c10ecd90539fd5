// Reads the links to export from PostgreSQL (the exporter's only database code).
#pragma once

#include <chrono>
#include <cstdint>
#include <utility>
#include <string>
#include <vector>

#include "core/config.h"
#include "exporter/export_entry.h"

namespace exporter {

// Which links go to the edge: hot (clicks in the recent window at or above
// a threshold, or among the top K) and stable (unchanged for a while, not
// disabled, not expiring within the horizon).
struct Selection {
  std::chrono::seconds hot_window{3600};  // EXPORT_HOT_WINDOW_S
  std::int64_t min_clicks = 100;          // EXPORT_MIN_CLICKS
  std::int64_t top_k = 0;                 // EXPORT_TOP_K; 0: threshold only
  std::chrono::seconds stable_for{600};   // EXPORT_STABLE_S
  std::chrono::seconds horizon{86400};    // EXPORT_HORIZON_S
};

// Reads the EXPORT_* variables above. Throws core::ConfigError.
Selection load_selection(const core::Env& env);

// The parameters as the manifest records them.
std::vector<std::pair<std::string, std::string>> describe(const Selection& selection);

// Hot, stable links, ordered by code, with their clicks in the window as
// hotness. Clicks are summed over the hourly buckets that overlap the window
// (humans and bots: both load the edge). Opens its own connection. Throws
// pqxx exceptions (std::exception) when the database cannot be read.
std::vector<ExportEntry> load_hot_links(const std::string& database_url,
                                        const Selection& selection);

// Every link that is neither disabled nor expired, ordered by code, with
// hotness 0 (`exporter compile --all`).
std::vector<ExportEntry> load_active_links(const std::string& database_url);

}  // namespace exporter
