// The origin's visit journal: append-only files of visit lines, written by
// the io threads before a redirect is sent and read by the ingester.
//
// File protocol in the journal directory (the ingester relies on it):
//   <prefix>-<seq>.jsonl.open  the one file a writer is appending to. Readers
//                              may read it but must consume complete lines
//                              only: bytes after the last '\n' may be a line
//                              still being written, or one the writer will
//                              truncate away after a failed write.
//   <prefix>-<seq>.jsonl       complete: the writer closed it, then renamed it
//                              (rename is atomic; the inode, and so an open
//                              reader's descriptor, stays the same). It never
//                              changes again; the ingester deletes it once
//                              fully ingested.
//   <prefix>.seq               last sequence handed out, and the writer's lock
//                              (flock, held while a writer lives). Never delete.
// <seq> is 20 zero-padded decimal digits and grows by one per new file, also
// across restarts and after every file was deleted (the .seq file remembers
// it), so "<prefix>-<seq>" names one file for ever and is a sound checkpoint
// key. Files of a prefix are ordered by <seq>; within a prefix, line order is
// append order. A writer never reopens an old file.
//
// Crash recovery: a writer killed with -9 leaves its .open file behind, at
// worst with a torn last line (a write in progress when the kill came, which
// append never acknowledged, so no redirect was sent for it). Before it opens
// a file, a writer holding the lock truncates every .open file of its prefix
// back to its last '\n' and renames it to .jsonl. A .open file whose prefix
// lock is free (flock LOCK_EX|LOCK_NB on <prefix>.seq succeeds) belongs to no
// live writer; another process may complete it the same way while holding
// that lock.
//
// Durability: a line is in the page cache when append returns, so it survives
// the death of the process, not the loss of power (nothing is fsynced: an
// fsync per redirect would cost more than the redirect).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace origin {

struct JournalOptions {
  // A file is closed before a write that would make it larger than this,
  // unless it is empty (a longer line then gets a file of its own).
  std::uint64_t max_bytes = 64ull * 1024 * 1024;
  // A non-empty file is closed once it has been open this long.
  std::chrono::milliseconds max_age{60'000};
  // Monotonic clock for ages and retry pacing; steady_clock::now when empty.
  // Tests substitute a fake.
  std::function<std::chrono::steady_clock::time_point()> clock;
};

// Parts of a journal file name, for the ingester.
struct JournalFileName {
  std::string prefix;
  std::uint64_t sequence = 0;
  bool open = false;  // ".jsonl.open" rather than ".jsonl"
};

// "<prefix>-<20 digits>.jsonl" or, when `open`, "....jsonl.open".
std::string journal_file_name(std::string_view prefix, std::uint64_t sequence, bool open);

// The inverse of journal_file_name; nullopt for any other name (the .seq
// file, temporary files, files of other tools).
std::optional<JournalFileName> parse_journal_file_name(std::string_view name);

// Appends visit lines to the journal files of one prefix. One writer per io
// thread, each with its own prefix (e.g. "origin-<instance>-t3"), so the
// redirect path takes no lock shared between threads.
//
// Threads: append and rotate_if_idle must be called from one thread at a
// time (the owning io thread); healthy and last_error from any thread.
//
// Failures (ENOSPC, EACCES, EROFS, a missing directory, another live writer
// holding the prefix lock) are values: append returns false, healthy() turns
// false and last_error() describes it. After a failure the writer retries at
// most once per second (earlier appends fail at once, without a system
// call), from append or from rotate_if_idle, so it recovers without traffic.
class JournalWriter {
 public:
  // `file_prefix` must match [A-Za-z0-9._-]{1,100} and not start with '.';
  // throws std::invalid_argument otherwise. Takes the prefix lock and
  // completes .open files left by an earlier writer; failures there are
  // reported through healthy()/last_error() and retried, never thrown.
  JournalWriter(std::string dir, std::string file_prefix, JournalOptions options = {});

  // Closes and completes the current file (renamed to .jsonl) and releases
  // the lock.
  ~JournalWriter();

  JournalWriter(const JournalWriter&) = delete;
  JournalWriter& operator=(const JournalWriter&) = delete;

  // Appends `line`, which must end with '\n' and contain no other '\n'
  // (throws std::invalid_argument otherwise), with one write(2) on a file
  // opened O_WRONLY|O_APPEND|O_CREAT|O_EXCL|O_CLOEXEC; short writes and
  // EINTR continue with the remainder. Rotates first when the line would
  // overflow max_bytes or the file is older than max_age, so a line never
  // straddles two files.
  //
  // Returns true once the whole line is in the file. Returns false when it
  // is not: then the file holds no part of it either, because a partly
  // written line (only possible when a write fails midway, e.g. ENOSPC) is
  // cut off again with ftruncate. If even ftruncate fails the file is closed
  // as .open and the recovery above cuts the torn tail before the file is
  // completed.
  bool append(std::string_view line);

  // Appends one or more complete lines (each ending with '\n', the block
  // ending with one; throws std::invalid_argument if it does not) with one
  // write(2), all or nothing, as append does for one line: the io threads
  // gather the visits of one event-loop turn and write them together. The
  // block is rotated as a unit, so it never straddles two files (a block
  // larger than max_bytes gets a file of its own, like a long line).
  bool append_lines(std::string_view lines);

  // Completes the current file if it is non-empty and older than max_age, so
  // files close on time without traffic. While unhealthy, also retries (at
  // most once per second): opens a file if none is open and reserves space
  // with fallocate, so a directory that became writable again, or a disk
  // with free space again, turns healthy() back to true. Call from a timer
  // on the owning thread, e.g. every second.
  void rotate_if_idle();

  // False from a failure until the next successful append or retry.
  bool healthy() const { return healthy_.load(std::memory_order_acquire); }

  // The most recent failure ("open /dir/x.jsonl.open: No space left on
  // device"), or "" if there was none. Kept after recovery, for the logs.
  std::string last_error() const;

 private:
  using SteadyTime = std::chrono::steady_clock::time_point;

  SteadyTime now() const;
  bool rotation_due(SteadyTime now, std::size_t next_line_bytes) const;
  bool acquire_lock(SteadyTime now);
  void release_lock();
  std::optional<std::uint64_t> recover_and_find_last_sequence(SteadyTime now);
  bool open_next(SteadyTime now);
  void close_current();
  bool write_block(std::string_view lines);
  bool write_line(std::string_view line, SteadyTime now);
  void probe(SteadyTime now);
  std::string path_of(std::string_view name) const;
  void fail(std::string_view operation, const std::string& path, int error, SteadyTime now);
  void fail_with(std::string text, SteadyTime now);
  void note_error(std::string text);

  // Immutable after construction.
  const std::string dir_;
  const std::string prefix_;
  const JournalOptions options_;

  // Owning thread only.
  int lock_fd_ = -1;                 // <prefix>.seq, flocked; -1 when not held
  std::uint64_t last_sequence_ = 0;  // highest sequence handed out or seen
  int fd_ = -1;                      // current .open file; -1 when none
  std::uint64_t sequence_ = 0;       // of the current file
  std::uint64_t size_ = 0;           // bytes in the current file
  SteadyTime opened_at_{};
  SteadyTime retry_after_{};  // no retry before this while unhealthy

  // Any thread.
  std::atomic<bool> healthy_{true};
  mutable std::mutex error_mutex_;
  std::string last_error_;  // guarded by error_mutex_
};

}  // namespace origin
