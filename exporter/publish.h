// Publishing an export folder to a running nginx: validate, swap, reload,
// probe, roll back on any failure, prune old versions.
//
// Invariants:
//  1. nginx never loads a version that did not pass `nginx -t` without a
//     warning: validation runs on a copy of the real configuration whose
//     references to the live link point at the new folder, before the swap.
//  2. The live link only ever changes by rename(2) of a fully made symlink, so
//     a reader (nginx on reload, a concurrent `nginx -t`) sees the old target
//     or the new one, never a missing or half-written link.
//  3. After publish() returns, the link points at the version nginx serves,
//     unless the outcome is kRollbackFailed.
//  4. Pruning never removes the live version or the one being published.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace exporter {

struct PublishOptions {
  // Folder of version folders written by write_bundle (`exporter compile`).
  std::string exports_dir;
  // The path nginx's configuration includes the export from: a symlink to one
  // version folder, replaced atomically. Need not exist before the first run.
  std::string live_link;
  // nginx's real configuration file; it must name `live_link` (as given, or
  // as an absolute path) followed by '/', as in `include LINK/edge_map.conf;`.
  std::string nginx_conf;
  std::string nginx_prefix;  // passed as -p when not empty
  std::string nginx_bin = "nginx";
  // nginx's pid file; empty: the `pid` directive of nginx_conf.
  std::string nginx_pid;
  // GET this URL (http:// only) must answer 200 with the version (one line)
  // once loaded; publish waits until it has, without a break, for 0.5 s.
  std::string probe_url;
  std::chrono::milliseconds probe_timeout{30000};
  std::chrono::milliseconds validate_timeout{300000};
  // Empty: the newest version folder (natural order of names, so v2 < v10).
  std::string version;
  // Version folders kept after a run (the live one always among them); >= 1.
  std::size_t keep = 5;
};

// Process exit codes of `exporter publish` (and kLocked for `compile`).
enum class PublishOutcome : int {
  kPublished = 0,       // the new version is live and answered by the probe
  kFailed = 1,          // nothing changed, or rolled back: the old version serves
  kUsage = 2,           // bad arguments (set by main, never by publish())
  kUnchanged = 3,       // the newest version's digest is the live one's: no reload
  kLocked = 4,          // another compile or publish holds the lock
  kRollbackFailed = 5,  // failed, and restoring the old version failed too
};

struct PublishResult {
  PublishOutcome outcome = PublishOutcome::kFailed;
  // One line without newline: what was published, or the failing step and
  // its cause (and the rollback's result).
  std::string summary;
  // For metrics: the step that failed ("select", "validate", "swap",
  // "reload", "probe"; "" on success or unchanged), whether the rollback
  // failed too, and how long validation and activation (swap, reload,
  // probe) took when they ran.
  std::string failed_step;
  bool rollback_failed = false;
  std::chrono::milliseconds validate{0};
  std::chrono::milliseconds activate{0};
};

// Runs one publish. Writes progress lines to `progress`. Expected failures
// (validation, reload, probe, I/O) are returned as kFailed/kRollbackFailed,
// not thrown; throws std::invalid_argument for unusable options. The caller
// holds the ExportLock of options.exports_dir.
PublishResult publish(const PublishOptions& options, std::ostream& progress);

// Names of the version folders in `exports_dir` (directories, not symlinks or
// hidden entries, holding a manifest.json), oldest first in natural order.
std::vector<std::string> list_versions(const std::string& exports_dir);

// True when `a` sorts before `b` with runs of digits compared as numbers.
bool natural_less(const std::string& a, const std::string& b);

// An exclusive flock(2) on `<exports_dir>/.publish.lock`, released when
// destroyed (or when the process dies). Movable, not copyable.
class ExportLock {
 public:
  // Creates exports_dir if missing. Returns nullopt when another process holds
  // the lock; never waits. Throws std::runtime_error if the file cannot be
  // opened.
  static std::optional<ExportLock> try_acquire(const std::string& exports_dir);
  ~ExportLock();
  ExportLock(ExportLock&& other) noexcept;
  ExportLock& operator=(ExportLock&& other) noexcept;
  ExportLock(const ExportLock&) = delete;
  ExportLock& operator=(const ExportLock&) = delete;

 private:
  explicit ExportLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace exporter
