// `exporter watch`: keeps the edge current. Runs the compile + publish cycle
// on an interval and soon after a change of an exported link, and takes a
// changed exported link off the edge at once, without a reload, through its
// tombstone (exporter/tombstones.h).
//
// Flow of a change of code C:
//  1. PostgreSQL delivers NOTIFY link_changed 'C' on the watcher's own
//     LISTEN connection (a thread of its own, so a long cycle never delays it).
//  2. If C is in the live export (or in the version being published), the
//     tombstone of C is created before anything else: from then on nginx
//     passes C's requests to the origin, which answers the current truth.
//  3. A cycle is due `debounce` later (changes in between share it).
//  4. A cycle holds the export lock, notes the tombstone generation, compiles
//     (reading the database after the change) and publishes. When the result
//     is live (published, or unchanged: the live files already match the
//     database), every tombstone of that generation or older is removed.
// A lost LISTEN connection (PostgreSQL restarted, backend terminated, network)
// may have missed changes: after each reconnect, once LISTEN is in effect, the
// listener reads the links whose updated_at is at or after the last database
// time it knew it was listening at (noted every few seconds), less a margin of
// 60 s, and tombstones the live ones among them (step 2), so they leave the
// edge as soon as it is back; then a cycle runs at once. (A row DELETEd while
// down leaves no updated_at: that cycle's publish takes it off the edge.)
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "exporter/publish.h"

namespace exporter {

// application_name of the LISTEN connection, to find it in pg_stat_activity.
inline constexpr const char* kListenerApplicationName = "exporter watch listener";

struct WatchOptions {
  std::string database_url;
  PublishOptions publish;                     // exports_dir and live_link included
  std::string tombstone_dir;                  // EDGE_TOMBSTONE_DIR; default <exports>/tombstones
  std::chrono::milliseconds interval{60000};  // EXPORT_INTERVAL_S
  std::chrono::milliseconds debounce{500};    // EXPORT_DEBOUNCE_MS
  std::chrono::milliseconds retry{2000};      // after a failed or locked cycle
  std::chrono::milliseconds reconnect{500};   // between LISTEN connection attempts
};

// Writes a new version folder into the exports folder (the caller holds the
// lock) and returns its name, which the cycle then publishes. Throws on
// failure.
using CompileFunction = std::function<std::string()>;

// The lowercase codes of the nginx map of the version folder `dir`
// (its edge_map.conf), sorted. Empty if the file cannot be read.
std::vector<std::string> exported_codes(const std::string& dir);

// Runs until `stop` becomes true. Progress and one line per cycle on `log`.
// Returns the process exit code (0 after a stop; 1 if the tombstone folder is
// unusable).
int watch(const WatchOptions& options, const CompileFunction& compile,
          const std::atomic<bool>& stop, std::ostream& log);

}  // namespace exporter
