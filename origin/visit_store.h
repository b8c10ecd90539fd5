// The database side of visit ingestion: checkpoints, raw visits, counts and
// dead letters, written together so that ingestion is exactly-once. The
// interface names no database type; PgVisitStore implements it on
// PostgreSQL, tests substitute a fake.
//
// Invariants of a committed batch (PgVisitStore::commit):
//  1. Its rows, the counts derived from them, its dead letters and its
//     checkpoint moves are committed in one transaction, or none of them is.
//     A batch may be streamed in chunks (VisitStream): still one transaction,
//     with the counts of all its chunks summed and written once, at its end.
//  2. Every checkpoint move applies only if the stored checkpoint still equals
//     `expected`; otherwise nothing is written (kCheckpointConflict). Two
//     ingesters on one source can therefore never both count a line.
//  3. Commits are durable before commit() returns (synchronous_commit on for
//     the session, whatever the server default), so files may be deleted.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "core/time_format.h"

namespace origin {

// Where a source stands in one of its files.
struct Checkpoint {
  std::string file_key;           // names the file within its source
  std::uint64_t inode = 0;        // identity of the file the offset refers to
  std::uint64_t offset = 0;       // just past the last line consumed
  std::uint64_t fingerprint = 0;  // file_fingerprint of the first fingerprint_bytes
  std::uint32_t fingerprint_bytes = 0;

  bool operator==(const Checkpoint& other) const {
    return file_key == other.file_key && inode == other.inode && offset == other.offset &&
           fingerprint == other.fingerprint && fingerprint_bytes == other.fingerprint_bytes;
  }
};

// One visit as it is stored. Text fields are valid UTF-8 without NUL.
struct VisitRow {
  std::int64_t time_ms = 0;  // Unix milliseconds, UTC
  std::string code;          // lowercase, valid
  std::string ip;            // a literal inet_pton accepts, or "" (stored as NULL)
  std::string user_agent;
  std::string referrer;
  std::string referrer_host;  // see referrer_host() in ingester.h
  int status = 0;
  std::string source;  // "origin" or "edge"
  bool bot = false;
};

// A line that could not be ingested.
struct DeadLetter {
  std::string file_key;
  std::uint64_t offset = 0;      // of the line's first byte
  std::string reason;            // one line, no user data
  std::string raw;               // the line's first bytes, at most kMaxDeadLetterBytes
  std::uint64_t raw_length = 0;  // bytes of the whole line, without '\n'
};

inline constexpr std::size_t kMaxDeadLetterBytes = 4096;

// Moves a file's checkpoint from `expected` (nullopt: no row for the file
// yet) to `next`; both name the same file_key.
struct CheckpointMove {
  std::optional<Checkpoint> expected;
  Checkpoint next;
};

struct VisitBatch {
  std::vector<VisitRow> rows;
  std::vector<DeadLetter> dead_letters;
  std::vector<CheckpointMove> checkpoints;

  bool empty() const { return rows.empty() && dead_letters.empty() && checkpoints.empty(); }
};

// The lines of one transaction, handed to the store chunk by chunk, so that
// the store sends one chunk while the next is read and parsed, and holds the
// counts of the whole transaction but never more than a chunk of rows.
class VisitStream {
 public:
  virtual ~VisitStream() = default;
  // Replaces the rows and dead letters of `chunk` with the next ones. Returns
  // false when the transaction has no more (`chunk` is then empty). May throw
  // (a read error): the transaction is then abandoned.
  virtual bool next(VisitBatch& chunk) = 0;
  // Once next() returned false: the checkpoint moves covering every chunk.
  virtual std::vector<CheckpointMove> checkpoints() = 0;
  // Asks the stream to end the transaction early: next() still gives what
  // was already read, then returns false. The store calls it when the
  // transaction's counts grow large (a backlog of many distinct codes), so
  // the memory they take stays bounded.
  virtual void wind_down() {}
};

// A VisitStream of one batch given whole (its checkpoints included).
class SingleBatchStream : public VisitStream {
 public:
  explicit SingleBatchStream(VisitBatch batch) : batch_(std::move(batch)) {}
  bool next(VisitBatch& chunk) override;
  std::vector<CheckpointMove> checkpoints() override { return std::move(batch_.checkpoints); }

 private:
  VisitBatch batch_;
  bool given_ = false;
};

enum class CommitOutcome {
  kCommitted,
  kCheckpointConflict,  // a stored checkpoint was not `expected`; nothing written
};

// Storage for one ingester thread. Every method may throw StoreUnavailable
// (link_store.h) when the database cannot be reached or the transaction's
// outcome is unknown; the caller then reloads its checkpoints, because a
// commit that threw may or may not have happened. Other exceptions mean a
// bug or a schema problem. Not thread-safe: one ingester owns one store.
class VisitStore {
 public:
  virtual ~VisitStore() = default;

  // Every checkpoint of `source`.
  virtual std::vector<Checkpoint> load_checkpoints(const std::string& source) = 0;

  // Commits every chunk of `stream` for `source` in one transaction, as
  // described at the top of this file: all of them or none.
  virtual CommitOutcome commit(const std::string& source, VisitStream& stream) = 0;

  // Removes one checkpoint (after its journal file was deleted).
  virtual void delete_checkpoint(const std::string& source, const std::string& file_key) = 0;

  // Housekeeping, to be called about hourly: creates the daily partitions of
  // today and tomorrow, drops those past the retention.
  virtual void maintain(core::TimePoint now) = 0;
};

// A visit counts as a click when it was answered with a redirect.
inline bool is_click_status(int status) { return status >= 300 && status <= 399; }

struct HourlyCount {
  std::string code;
  std::int64_t hour_s = 0;  // Unix seconds of the hour's start
  std::string source;
  std::int64_t humans = 0;
  std::int64_t bots = 0;
};

struct DailyCount {
  std::string code;
  std::int64_t day = 0;  // days since 1970-01-01 (UTC)
  std::string source;
  std::int64_t humans = 0;
  std::int64_t bots = 0;
};

struct ReferrerCount {
  std::string code;
  std::int64_t day = 0;  // days since 1970-01-01; the month's first day in monthly counts
  std::string host;
  std::int64_t clicks = 0;
};

struct LinkTotal {
  std::string code;
  std::int64_t humans = 0;
  std::int64_t bots = 0;
  std::optional<std::int64_t> last_click_ms;  // latest human click
};

// What a batch adds to the count tables, each vector sorted by its key (so
// concurrent ingesters lock rows in the same order).
struct VisitAggregates {
  std::vector<HourlyCount> hourly;               // clicks (3xx) to known codes
  std::vector<DailyCount> daily;                 // the same per UTC day
  std::vector<HourlyCount> orphan_hourly;        // visits (any status) to unknown codes
  std::vector<ReferrerCount> referrers;          // human clicks with a referrer host, per day
  std::vector<ReferrerCount> referrers_monthly;  // the same per month
  std::vector<LinkTotal> totals;                 // clicks to known codes
};

// Sums the counts of visits added one by one (over the chunks of a
// transaction), owning its keys, so the rows can be dropped once added.
// Memory grows with the distinct keys, not with the visits. Not thread-safe.
class VisitCounter {
 public:
  VisitCounter();
  ~VisitCounter();
  VisitCounter(const VisitCounter&) = delete;
  VisitCounter& operator=(const VisitCounter&) = delete;

  // Counts `row`; `known`: its code is a link (otherwise it is an orphan).
  void add(const VisitRow& row, bool known);
  // The counts so far, sorted as VisitAggregates says; leaves the counter empty.
  VisitAggregates take();
  // Distinct keys counted so far (hourly, orphan and referrer counts): what
  // the counter's memory grows with, about 150 bytes each.
  std::size_t keys() const;

 private:
  struct Maps;
  std::unique_ptr<Maps> maps_;
};

// Pure: the counts of `rows`; `known(code)` says whether a code is a link.
VisitAggregates aggregate_visits(const std::vector<VisitRow>& rows,
                                 const std::function<bool(std::string_view)>& known);

// The first day of the calendar month (UTC) holding `day` (days since
// 1970-01-01).
std::int64_t first_day_of_month(std::int64_t day);

// PostgreSQL array literal of `values` ("{\"a\",\"b\"}"), every element quoted.
std::string pg_text_array(const std::vector<std::string>& values);

// FNV-1a 64 of `bytes`: the checkpoint fingerprint.
std::uint64_t file_fingerprint(std::string_view bytes);

struct PgVisitStoreOptions {
  std::string url;  // libpq connection string
  // Raw visits older than this many days are dropped (VISITS_RETENTION_DAYS).
  int retention_days = 90;
  std::chrono::milliseconds statement_timeout{60'000};
  // Test only: sleep this long after writing a batch, before its commit, and
  // log "test pause before commit" first (INGEST_TEST_PAUSE_BEFORE_COMMIT_MS).
  std::chrono::milliseconds pause_before_commit{0};
};

// VisitStore on PostgreSQL over one connection of its own (plus a second one
// for looking up codes while the first is in a COPY), opened on first use and
// reopened after a failure. Daily partitions of `visits` are created in a
// short transaction of their own before a batch that needs them, or inside
// the batch's transaction when a later chunk needs one.
class PgVisitStore : public VisitStore {
 public:
  explicit PgVisitStore(PgVisitStoreOptions options);  // does not connect
  ~PgVisitStore() override;
  PgVisitStore(const PgVisitStore&) = delete;
  PgVisitStore& operator=(const PgVisitStore&) = delete;

  std::vector<Checkpoint> load_checkpoints(const std::string& source) override;
  CommitOutcome commit(const std::string& source, VisitStream& stream) override;
  void delete_checkpoint(const std::string& source, const std::string& file_key) override;
  void maintain(core::TimePoint now) override;

 private:
  struct Connection;

  template <typename Fn>
  auto run(Fn&& fn);
  Connection& connection();
  // Days of `rows` inside the window of daily partitions that have none.
  std::set<std::int64_t> missing_partitions(const std::vector<VisitRow>& rows) const;
  void create_partition(Connection& c, std::int64_t day);
  void load_partitions(Connection& c);
  // Which codes of `rows` are links, asked on the connection's second
  // session (the first may be in the middle of a COPY). Codes found unknown
  // are remembered in `unknown` (the caller's, for one transaction).
  std::unordered_set<std::string> known_codes(Connection& c, const std::vector<VisitRow>& rows,
                                              std::unordered_set<std::string>& unknown);

  const PgVisitStoreOptions options_;
  std::unique_ptr<Connection> connection_;
  // Days (since 1970-01-01) that have a partition; loaded per connection.
  std::unordered_set<std::int64_t> partition_days_;
  bool partitions_loaded_ = false;
  // Codes seen in links. Codes are never deleted, so a positive answer stays
  // true; bounded by clearing when full.
  std::unordered_set<std::string> known_codes_;
};

}  // namespace origin
