// Reads the links to export from PostgreSQL (the exporter's only database code).
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
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

// Where the selection reads. With a replica, the selection runs there once
// the replica has replayed the primary's WAL up to where it was when the
// selection started (pg_current_wal_insert_lsn on the primary, compared
// with pg_last_wal_replay_lsn on the replica). So every change committed
// before then is seen: `exporter watch` removes a tombstone only after a
// cycle that started reading after the change, and a lagging replica must
// not put a link disabled on the primary back on the edge. The primary
// reads instead, with one line on the log, when the replica cannot be
// reached, is not in recovery (not a replica), or has not caught up within
// `replica_wait`.
struct SelectionDatabases {
  std::string primary_url;                       // DATABASE_URL
  std::string replica_url;                       // DATABASE_READ_URL; empty: none
  std::chrono::milliseconds replica_wait{5000};  // EXPORT_REPLICA_WAIT_MS
};

// Reads DATABASE_URL, DATABASE_READ_URL, EXPORT_REPLICA_WAIT_MS. Throws
// core::ConfigError.
SelectionDatabases load_selection_databases(const core::Env& env);

// Hot, stable links, ordered by code, with their clicks in the window as
// hotness. Clicks are summed over the hourly buckets that overlap the window
// (humans and bots: both load the edge). Opens its own connections; says on
// `log` which database answered. Throws pqxx exceptions (std::exception)
// when the database cannot be read.
std::vector<ExportEntry> load_hot_links(const SelectionDatabases& databases,
                                        const Selection& selection, std::ostream& log);

// Every link that is neither disabled nor expired, ordered by code, with
// hotness 0 (`exporter compile --all`). Reads like load_hot_links.
std::vector<ExportEntry> load_active_links(const SelectionDatabases& databases, std::ostream& log);

}  // namespace exporter
