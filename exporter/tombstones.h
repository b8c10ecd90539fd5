// Per-code tombstones: empty files that tell nginx not to answer a code from
// its (possibly stale) map, but to pass the request to the origin.
//
// Layout of the tombstone folder (stable across export versions; the edge
// config names it as @TOMBSTONE_DIR@):
//   <code>  one empty file per lowercase code whose exported answer may be
//           wrong now (the link changed after the live version was compiled).
//   .any    present whenever at least one <code> file is: nginx cannot
//           lowercase a request's code, so a request whose code has an
//           uppercase letter is checked against .any instead (a code never
//           contains '.', so no code collides with it).
//
// Invariants:
//  1. add() returns only once the files exist (.any first, then the code), so
//     every nginx stat after that sees them (modulo open_file_cache_valid).
//  2. A tombstone is removed only by remove_older_than(g) with g at or after
//     its generation, i.e. after the caller published a version it began
//     compiling after the tombstone was made.
//  3. .any is removed only after the last code file.
// Thread-safe: add() is called by the listener thread, the rest by the cycle.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace exporter {

inline constexpr const char* kTombstoneAny = ".any";

// True for a code the origin accepts in a path: [A-Za-z0-9_-]{1,64}.
bool is_tombstone_code(const std::string& code);

class Tombstones {
 public:
  // Creates `dir` (mode 0755, so nginx's workers can stat in it) if missing,
  // and adopts the tombstones already there as generation 0 (made before any
  // cycle of this process). Throws std::runtime_error on I/O failure.
  explicit Tombstones(std::string dir);

  const std::string& dir() const { return dir_; }

  // Creates the tombstone of `code` (lowercased) and returns its generation.
  // Throws std::runtime_error if a file cannot be created, std::invalid_argument
  // for a code that cannot be a file name here.
  std::uint64_t add(const std::string& code);

  // The generation the next add() will exceed; a cycle takes it before it
  // reads the database.
  std::uint64_t generation() const;

  // Removes every tombstone of generation <= `generation` (then .any when
  // none is left). Returns how many were removed. Throws on I/O failure.
  std::size_t remove_older_than(std::uint64_t generation);

  // The codes currently tombstoned, sorted.
  std::vector<std::string> codes() const;

 private:
  void touch(const std::string& name);
  void unlink_name(const std::string& name);

  std::string dir_;
  mutable std::mutex mutex_;
  std::uint64_t generation_ = 0;                // guarded by mutex_
  std::map<std::string, std::uint64_t> codes_;  // guarded by mutex_
};

}  // namespace exporter
