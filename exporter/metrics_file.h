// The exporter's own metrics, kept in a file for node_exporter's textfile
// collector (--metrics-file / EXPORTER_METRICS_FILE, e.g.
// /var/lib/node_exporter/textfile_collector/exporter.prom).
//
// compile and publish run as separate processes (cron, a systemd timer) or
// in one `watch`; each run reads the file, updates its own samples and
// replaces the file atomically (temp + fsync + rename), so counters add up
// across runs. Runs holding DIR/.publish.lock never overlap, so no update is
// lost; write() is called with that lock held.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "core/prom_text.h"

namespace exporter {

class MetricsFile {
 public:
  // An empty `path` disables every operation.
  explicit MetricsFile(std::string path) : path_(std::move(path)) {}

  bool enabled() const { return !path_.empty(); }
  const std::string& path() const { return path_; }

  // Replaces a gauge sample; `name` must be one of the families listed in
  // metrics_file.cc (others are dropped when written).
  void set(std::string_view name, core::PromLabels labels, double value);
  // Adds to a counter sample (starting from the file's value).
  void add(std::string_view name, core::PromLabels labels, double delta);

  // Merges the pending updates into the file's current samples and replaces
  // the file. Throws std::runtime_error on I/O failure; pending updates are
  // kept then.
  void write();

 private:
  std::string path_;
  std::map<std::string, double> set_;    // "name{labels}" -> value
  std::map<std::string, double> added_;  // "name{labels}" -> delta
};

// Seconds since the Unix epoch, with sub-second precision.
double unix_now();

}  // namespace exporter
