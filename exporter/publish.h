// Publishing an export folder to a running nginx: check, swap, reload,
// probe, roll back on any failure, prune old versions.
//
// Invariants:
//  1. Nothing changes for a folder whose files do not match its manifest's
//     digest (missing, truncated or edited since compile).
//  2. A version reaches nginx only through a validation that can refuse it:
//     by default nginx's own reload while nginx runs (its master parses the
//     new configuration and, on an error, keeps the old one and its workers;
//     on a warning it loads it, and publish rolls back); `nginx -t` on a copy
//     of the configuration before the swap with Validation::kNginxTest, and
//     always when nginx is not running, so that a later start never finds a
//     configuration that does not load.
//  3. The live link only ever changes by rename(2) of a fully made symlink, so
//     a reader (nginx on reload, a concurrent `nginx -t`) sees the old target
//     or the new one, never a missing or half-written link; and a rollback
//     changes it only once nginx's master has finished reading the new
//     version (or after a generous allowance), never in the middle.
//  4. After publish() returns, the link points at the version nginx serves,
//     unless the outcome is kRollbackFailed.
//  5. Pruning never removes the live version or the one being published.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace exporter {

// How a new version is validated before it serves.
enum class Validation {
  // The reload itself (default): the swap, SIGHUP, then nginx's master's own
  // verdict, from its error log (its [emerg]/[alert]/[crit]/[error]/[warn]
  // lines) and its workers in /proc (new ones once it has loaded). Needs a
  // running nginx, a live version to roll back to, and an `error_log FILE`
  // at level warn or lower in the main context of nginx_conf; without them,
  // nginx -t as below.
  kReload,
  // `nginx -t` on a copy of the configuration pointing at the new folder,
  // before the swap: nginx parses the map twice per publish.
  kNginxTest,
};

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
  // once loaded: with kReload, after the workers that served before the
  // reload stopped accepting; with nginx -t, without a break for 0.5 s.
  std::string probe_url;
  // The least time a reload may take to serve the new version. kReload: at
  // least the time the map's size allows (load_allowance: 4 MB/s); nginx -t:
  // at least 3 times what nginx -t took.
  std::chrono::milliseconds probe_timeout{30000};
  Validation validation = Validation::kReload;
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
  // failed too, and how long validation (from the start: the digest check,
  // and nginx -t when it ran) and activation (swap, reload, probe) took when
  // they ran, and with kReload the SIGHUP until nginx's new workers ran (its
  // master's load of the configuration).
  std::string failed_step;
  bool rollback_failed = false;
  std::chrono::duration<double> validate{0};
  std::chrono::duration<double> activate{0};
  std::chrono::duration<double> reload{0};
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
