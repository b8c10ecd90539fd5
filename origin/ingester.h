// The visit ingester: follows one source of visit lines (visit_record.h) and
// loads it into a VisitStore exactly once.
//
// A source is either
//   - a journal directory written by JournalWriters (journal.h): every
//     "<prefix>-<seq>.jsonl[.open]" file in it, each checkpointed under its
//     key "<prefix>-<seq>". A finished (.jsonl) file is deleted once all of it
//     is committed; so is a .open file whose writer is gone (its prefix lock
//     is free and it has not grown for `abandoned_after`): its bytes after
//     the last '\n' are a write the writer never acknowledged. One ingester
//     per directory at a time (flock on "<dir>/.ingest.lock").
//   - a log file written by nginx, checkpointed under its path, followed
//     across rotation by rename: after PATH is renamed (PATH.1) and
//     `nginx -s reopen` creates a new PATH, the renamed file is read to its
//     end through the descriptor already open, until it has been quiet for
//     `rotation_grace`; then the new PATH is read from its start. Never
//     deleted, never written.
//
// Invariants:
//  1. Only complete lines are consumed: bytes after a file's last '\n' wait
//     for their '\n'. Exception: when a rotated log file is left behind, an
//     unterminated tail is dead-lettered (nothing will ever complete it).
//  2. Every consumed line is in exactly one committed batch, as a row or as
//     a dead letter, with its file's checkpoint (visit_store.h). A batch is
//     read and sent in chunks (VisitStream) but committed as one.
//  3. After any store failure (or a checkpoint conflict) every position is
//     reloaded from the store, so a commit of unknown outcome is neither
//     repeated nor skipped.
//  4. A journal file is deleted only after the commit covering its last line.
//  5. A checkpointed file found shorter than its offset (truncated), with
//     another inode, or with other first bytes (replaced) is reported (log
//     line and counter) and read again from its start.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "core/config.h"
#include "core/visit_record.h"
#include "origin/visit_store.h"

namespace origin {

enum class SourceKind { kJournalDirectory, kLogFile };

struct IngestSource {
  std::string name;  // checkpoint namespace; printable ASCII, 1-200 bytes, no '='
  std::string path;
  SourceKind kind = SourceKind::kLogFile;
};

// Parses "NAME=PATH" (origin ingest --source). PATH naming an existing
// directory is a journal directory, anything else a log file (which may not
// exist yet). Returns a one-line reason when malformed.
std::variant<IngestSource, std::string> parse_source_argument(std::string_view argument);

// The source name under which `origin serve` ingests the journal directory
// `dir`: "journal:<hostname>:<absolute dir>". Instances sharing a directory
// share the name, so no file is ever checkpointed under two names.
std::string journal_source_name(const std::string& dir);

struct IngesterOptions {
  // One transaction holds at most max_batch_lines lines and takes at most
  // about max_batch_time (checked between chunks); it also ends when the
  // source has nothing more to read. Lines are read, parsed and sent in
  // chunks of chunk_lines, the next parsed while the current one is sent.
  std::size_t max_batch_lines = 1'000'000;           // INGEST_BATCH_LINES
  std::chrono::milliseconds max_batch_time{10'000};  // INGEST_BATCH_MS
  std::size_t chunk_lines = 8192;                    // INGEST_CHUNK_LINES
  std::chrono::milliseconds poll_interval{200};      // INGEST_POLL_MS: wait when caught up
  std::chrono::milliseconds rotation_grace{2000};    // INGEST_ROTATION_GRACE_MS
  std::chrono::milliseconds abandoned_after{10'000};
  std::chrono::milliseconds retry_initial{200};               // back-off after a store failure,
  std::chrono::milliseconds retry_max{5000};                  // doubling up to this
  std::chrono::milliseconds maintenance_interval{3'600'000};  // VisitStore::maintain
  core::IpMode ip_mode = core::IpMode::kAnonymized;           // VISIT_IP_MODE
};

// Reads the variables named above. Throws core::ConfigError naming one.
IngesterOptions load_ingester_options(const core::Env& env);

// DATABASE_URL, VISITS_RETENTION_DAYS (default 90) and the test-only
// INGEST_TEST_PAUSE_BEFORE_COMMIT_MS. Throws core::ConfigError.
PgVisitStoreOptions load_visit_store_options(const core::Env& env);

// Counters since construction, for logs and /metrics.
struct IngesterStats {
  std::uint64_t lines_ingested = 0;       // rows committed
  std::uint64_t lines_dead_lettered = 0;  // dead letters committed
  std::uint64_t lines_repaired = 0;       // invalid UTF-8 replaced by U+FFFD, then ingested
  std::uint64_t batches = 0;              // commits
  std::uint64_t store_failures = 0;       // failed attempts (each retried)
  std::uint64_t checkpoint_conflicts = 0;
  std::uint64_t truncations = 0;   // files found shorter than their checkpoint
  std::uint64_t replacements = 0;  // checkpointed files replaced or gone
  std::uint64_t files_deleted = 0;
  std::uint64_t lag_bytes = 0;  // bytes in the source's files not yet committed
  // Time since the ingester was last caught up (0 while it is).
  std::chrono::milliseconds oldest_unread_age{0};
  bool database_ok = true;  // false from a store failure to the next success
};

// What one line becomes: a row, or the reason it is dead-lettered.
struct LineVerdict {
  std::optional<VisitRow> row;
  std::string reason;     // when !row
  bool repaired = false;  // invalid UTF-8 was replaced before parsing
};

// Parses one line (without '\n') with core::parse_visit_line. A line refused
// only for invalid UTF-8 (nginx logs header bytes as they came) is parsed
// again with every invalid sequence replaced by U+FFFD, and kept if that
// parses: the click happened. The IP is stored as `ip_mode` says (and only if
// it is an address); bot from the user agent; referrer_host from the referrer.
LineVerdict interpret_visit_line(std::string_view line, core::IpMode ip_mode);

// The lowercase host of an absolute URL referrer ("https://News.Example:8443/x"
// -> "news.example", "android-app://com.google.android.gm/" ->
// "com.google.android.gm"), without userinfo, port or trailing dot; "" when
// the referrer has no "scheme://host". At most 255 bytes.
std::string referrer_host(std::string_view referrer);

// One line read from a file.
struct RawLine {
  std::uint64_t offset = 0;  // of its first byte
  std::uint64_t length = 0;  // bytes, including the '\n'
  std::string text;          // without '\n'; for an oversized line, its first kMaxDeadLetterBytes
  bool oversized = false;    // longer than core::kMaxVisitLineBytes
};

// Reads complete lines of one file from a byte offset, with pread on a
// descriptor it owns; never holds more than about kMaxVisitLineBytes plus one
// read chunk of an unfinished line. Not thread-safe.
class LineReader {
 public:
  explicit LineReader(int fd);  // takes ownership of `fd`
  ~LineReader();
  LineReader(LineReader&& other) noexcept;
  LineReader& operator=(LineReader&& other) noexcept;
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  int fd() const { return fd_; }
  // Offset of the first byte not consumed: the start of the next line.
  std::uint64_t position() const { return position_; }
  // Forgets what was read ahead and continues at `offset`.
  void seek(std::uint64_t offset);

  // Appends up to `max_lines` complete lines from position() to `out`.
  // Returns true when it stopped at the end of the file (every complete line
  // consumed), false when it stopped at max_lines. Throws std::system_error
  // on a read error.
  bool read(std::size_t max_lines, std::vector<RawLine>& out);

  // After read() returned true: bytes after position() without a '\n', and
  // the first kMaxDeadLetterBytes of them.
  std::uint64_t unterminated_bytes() const;
  std::string unterminated_head() const;

 private:
  int fd_ = -1;
  std::uint64_t position_ = 0;
  // buffer_[start_..end_) holds the bytes from file offset position_ +
  // skipped_ on; buffer_[start_..scanned_) is known to hold no '\n'.
  // buffer_[end_..] is spare room for the next read (kept between reads, so
  // a read neither reallocates nor zero-fills).
  std::string buffer_;
  std::size_t end_ = 0;
  std::size_t start_ = 0;
  std::size_t scanned_ = 0;
  std::uint64_t skipped_ = 0;  // bytes of an unfinished oversized line dropped so far
  std::string skipped_head_;   // its first kMaxDeadLetterBytes
};

// Follows one source and commits its lines to a store. start()/stop() run it
// on a thread of its own; run_until_caught_up() on the caller's. Store
// failures are retried with back-off for ever (the files are the queue).
// Threads: stop() and stats() from any thread; the rest from one.
class Ingester {
 public:
  // `store` must outlive the Ingester and is used by its thread only.
  Ingester(IngestSource source, VisitStore& store, IngesterOptions options = {});
  ~Ingester();  // stop()
  Ingester(const Ingester&) = delete;
  Ingester& operator=(const Ingester&) = delete;

  // Starts following on a new thread (at most once).
  void start();

  // Asks the loop to end after the batch in progress (committed or not) and
  // joins the thread start() made. Idempotent.
  void stop();

  // Ingests until every complete line present is committed (and finished
  // journal files are deleted, rotated log files drained). Returns true then,
  // false if stop() came first. Keeps retrying while the store fails.
  bool run_until_caught_up();

  IngesterStats stats() const;
  const IngestSource& source() const { return source_; }

  class Follower;  // the file side of one source kind (ingester.cc)

 private:
  class Stream;  // the lines of one transaction (ingester.cc)

  bool run_loop(bool until_caught_up);
  bool wait_for(std::chrono::milliseconds duration);  // false when stopping

  const IngestSource source_;
  VisitStore& store_;
  const IngesterOptions options_;
  std::unique_ptr<Follower> follower_;  // loop thread only
  std::thread thread_;

  std::atomic<bool> stopping_{false};
  std::mutex wake_mutex_;
  std::condition_variable wake_;

  mutable std::mutex stats_mutex_;
  IngesterStats stats_;  // guarded by stats_mutex_
};

}  // namespace origin
