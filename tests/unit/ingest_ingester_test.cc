// The Ingester's file side against a fake store: complete lines only,
// rotation, truncation and replacement, journal files, and exactly-once
// across store failures and commits of unknown outcome.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/visit_record.h"
#include "origin/ingester.h"
#include "origin/journal.h"
#include "origin/link_store.h"

namespace origin {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/ingest_ingester_test.XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Checkpoints, rows and dead letters in memory, with the store's contract:
// conditional checkpoint moves, all-or-nothing commits. Can fail before a
// commit, or after one (the outcome the ingester cannot know).
class FakeStore : public VisitStore {
 public:
  std::vector<Checkpoint> load_checkpoints(const std::string& source) override {
    std::vector<Checkpoint> out;
    for (const auto& [key, cp] : checkpoints[source]) out.push_back(cp);
    return out;
  }

  // Like PgVisitStore when its counts grow large: asks every transaction's
  // stream to wind down after this many chunks (0: never).
  int wind_down_after_chunk = 0;

  CommitOutcome commit(const std::string& source, VisitStream& stream) override {
    if (before_commit) before_commit();
    if (fail_before_commit > 0) {
      --fail_before_commit;
      throw StoreUnavailable("database down");
    }
    // The whole stream first, like a transaction: nothing is kept if a chunk
    // fails.
    VisitBatch batch;
    VisitBatch chunk;
    int chunk_count = 0;
    while (stream.next(chunk)) {
      ++chunk_count;
      if (fail_at_chunk > 0 && chunk_count == fail_at_chunk) {
        fail_at_chunk = 0;
        throw StoreUnavailable("connection lost in the middle of a COPY");
      }
      if (wind_down_after_chunk > 0 && chunk_count == wind_down_after_chunk) stream.wind_down();
      batch.rows.insert(batch.rows.end(), chunk.rows.begin(), chunk.rows.end());
      batch.dead_letters.insert(batch.dead_letters.end(), chunk.dead_letters.begin(),
                                chunk.dead_letters.end());
    }
    chunks.push_back(chunk_count);
    batch.checkpoints = stream.checkpoints();
    last_moves = batch.checkpoints;
    auto& table = checkpoints[source];
    for (const CheckpointMove& move : batch.checkpoints) {
      auto it = table.find(move.next.file_key);
      if (move.expected.has_value() != (it != table.end()))
        return CommitOutcome::kCheckpointConflict;
      if (move.expected && (it->second.inode != move.expected->inode ||
                            it->second.offset != move.expected->offset)) {
        return CommitOutcome::kCheckpointConflict;
      }
    }
    for (const CheckpointMove& move : batch.checkpoints) table[move.next.file_key] = move.next;
    rows.insert(rows.end(), batch.rows.begin(), batch.rows.end());
    dead_letters.insert(dead_letters.end(), batch.dead_letters.begin(), batch.dead_letters.end());
    ++commits;
    if (fail_after_commit > 0) {
      --fail_after_commit;
      throw StoreUnavailable("connection lost during COMMIT");
    }
    return CommitOutcome::kCommitted;
  }

  void delete_checkpoint(const std::string& source, const std::string& file_key) override {
    checkpoints[source].erase(file_key);
  }

  void maintain(core::TimePoint) override {}

  // Rows by user agent (each test line has a unique one).
  std::multiset<std::string> agents() const {
    std::multiset<std::string> out;
    for (const VisitRow& r : rows) out.insert(r.user_agent);
    return out;
  }

  std::map<std::string, std::map<std::string, Checkpoint>> checkpoints;
  std::vector<VisitRow> rows;
  std::vector<DeadLetter> dead_letters;
  int commits = 0;
  std::vector<int> chunks;  // chunks of every commit attempt that read its stream to the end
  int fail_at_chunk = 0;    // > 0: the next commit fails when it gets this chunk
  std::vector<CheckpointMove> last_moves;  // of the last commit attempt that got them
  int fail_before_commit = 0;
  int fail_after_commit = 0;
  std::function<void()> before_commit;  // runs at the start of commit()
};

IngesterOptions fast_options() {
  IngesterOptions o;
  o.max_batch_lines = 3;  // many batches from few lines
  o.chunk_lines = 2;      // of two chunks each
  o.poll_interval = milliseconds(1);
  o.rotation_grace = milliseconds(30);
  o.abandoned_after = milliseconds(0);
  o.retry_initial = milliseconds(1);
  o.retry_max = milliseconds(2);
  return o;
}

std::string line(const std::string& agent, const std::string& code = "abc") {
  core::VisitRecord r;
  r.time = core::from_unix_ms(1795812400123);
  r.code = code;
  r.ip = "203.0.113.9";
  r.user_agent = agent;
  r.status = 307;
  r.source = "edge";
  return core::format_visit_line(r);
}

void append(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out << bytes;
}

void append_lines(const std::string& path, const std::string& prefix, int from, int to) {
  std::string bytes;
  for (int i = from; i < to; ++i) bytes += line(prefix + std::to_string(i));
  append(path, bytes);
}

std::multiset<std::string> expected_agents(const std::string& prefix, int from, int to) {
  std::multiset<std::string> out;
  for (int i = from; i < to; ++i) out.insert(prefix + std::to_string(i));
  return out;
}

std::multiset<std::string> merged(std::multiset<std::string> a,
                                  const std::multiset<std::string>& b) {
  a.insert(b.begin(), b.end());
  return a;
}

IngestSource log_source(const std::string& path) {
  return IngestSource{"edge-test", path, SourceKind::kLogFile};
}

IngestSource journal_source(const std::string& dir) {
  return IngestSource{"journal-test", dir, SourceKind::kJournalDirectory};
}

std::uint64_t file_size(const std::string& path) { return fs::file_size(path); }

TEST(IngesterLogFile, IngestsEveryCompleteLineOnceAndCheckpointsTheFileSize) {
  TempDir dir;
  const std::string path = dir / "visits.log";
  append_lines(path, "a", 0, 10);
  FakeStore store;
  Ingester ingester(log_source(path), store, fast_options());
  ASSERT_TRUE(ingester.run_until_caught_up());
  EXPECT_EQ(store.agents(), expected_agents("a", 0, 10));
  EXPECT_EQ(store.checkpoints["edge-test"][path].offset, file_size(path));
  EXPECT_EQ(ingester.stats().lines_ingested, 10u);
  EXPECT_EQ(ingester.stats().lag_bytes, 0u);
}

TEST(IngesterLogFile, IngestsATornLastLineOnlyOnceItIsComplete) {
  TempDir dir;
  const std::string path = dir / "visits.log";
  const std::string torn = line("t0");
  append(path, line("a0") + torn.substr(0, 20));
  FakeStore store;
  {
    Ingester ingester(log_source(path), store, fast_options());
    ASSERT_TRUE(ingester.run_until_caught_up());
  }
  EXPECT_EQ(store.agents(), expected_agents("a", 0, 1));
  EXPECT_EQ(store.checkpoints["edge-test"][path].offset, line("a0").size());
  EXPECT_TRUE(store.dead_letters.empty());

  append(path, torn.substr(20));
  Ingester again(log_source(path), store, fast_options());
  ASSERT_TRUE(again.run_until_caught_up());
  EXPECT_EQ(store.agents(), merged(expected_agents("a", 0, 1), expected_agents("t", 0, 1)));
}

TEST(IngesterLogFile, DeadLettersBadLinesAndKeepsGoing) {
  TempDir dir;
  const std::string path = dir / "visits.log";
  append(path, line("a0") + "garbage\n" + std::string(1024 * 1024, 'x') + "\n" +
                   R"({"time":"2026-11-27T20:46:40.123Z","code":"abc","status":307})" + "\n" +
                   line("a1"));
  FakeStore store;
  Ingester ingester(log_source(path), store, fast_options());
  ASSERT_TRUE(ingester.run_until_caught_up());
  EXPECT_EQ(store.agents(), expected_agents("a", 0, 2));
  ASSERT_EQ(store.dead_letters.size(), 3u);
  EXPECT_EQ(store.dead_letters[0].offset, line("a0").size());
  EXPECT_EQ(store.dead_letters[0].raw, "garbage");
  EXPECT_EQ(store.dead_letters[1].raw_length, 1024u * 1024);
  EXPECT_EQ(store.dead_letters[1].raw.size(), kMaxDeadLetterBytes);
  EXPECT_EQ(store.dead_letters[2].reason, "field \"src\" is missing");
  EXPECT_EQ(ingester.stats().lines_dead_lettered, 3u);
}

TEST(IngesterLogFile, FollowsARenamedFileToItsEndBeforeTheNewOne) {
  TempDir dir;
  const std::string path = dir / "visits.log";
  append_lines(path, "a", 0, 5);
  FakeStore store;
  Ingester ingester(log_source(path), store, fast_options());
  ASSERT_TRUE(ingester.run_until_caught_up());

  // logrotate renames; nginx still writes to the old file until reopen.
  const int old_fd = ::open(path.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(old_fd, 0);
  fs::rename(path, dir / "visits.log.1");
  append_lines(dir / "visits.log.1", "a", 5, 8);
  append_lines(path, "b", 0, 4);  // the reopened file
  const std::string late = line("a8");
  ASSERT_EQ(::write(old_fd, late.data(), late.size()), static_cast<ssize_t>(late.size()));
  ::close(old_fd);

  ASSERT_TRUE(ingester.run_until_caught_up());
  EXPECT_EQ(store.agents(), merged(expected_agents("a", 0, 9), expected_agents("b", 0, 4)));
  const Checkpoint& cp = store.checkpoints["edge-test"][path];
  EXPECT_EQ(cp.offset, file_size(path));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(cp.inode, static_cast<std::uint64_t>(st.st_ino))
      << "the checkpoint moved to the new file";
  EXPECT_TRUE(fs::exists(dir / "visits.log.1")) << "nginx's files are never deleted";
}

TEST(IngesterLogFile, FindsTheRotatedFileOfItsCheckpointAfterARestart) {
  TempDir dir;
  const std::string path = dir / "visits.log";
  append_lines(path, "a", 0, 4);
  FakeStore store;
  {
    Ingester ingester(log_source(path), store, fast_options());
    ASSERT_TRUE(ingester.run_until_caught_up());
  }
  // While the ingester is down: more lines, rotation, a new file.
  append_lines(path, "a", 4, 7);
  fs::rename(path, dir / "visits.log.1");
  append_lines(path, "b", 0, 3);

  Ingester restarted(log_source(path), store, fast_options());
  ASSERT_TRUE(restarted.run_until_caught_up());
  EXPECT_EQ(store.agents(), merged(expected_agents("a", 0, 7), expected_agents("b", 0, 3)));
  EXPECT_EQ(store.checkpoints["edge-test"][path].offset, file_size(path));
  EXPECT_EQ(restarted.stats().replacements, 0u);
}

TEST(IngesterLogFile, ReportsTruncationAndReadsTheNewContentFromItsStart) {
  TempDir dir;
  const std::string path = dir / "visits.log";
  append_lines(path, "a", 0, 6);
  FakeStore store;
  Ingester ingester(log_source(path), store, fast_options());
  ASSERT_TRUE(ingester.run_until_caught_up());
  fs::resize_file(path, 0);
  append_lines(path, "b", 0, 2);
  ASSERT_TRUE(ingester.run_until_caught_up());
  EXPECT_EQ(store.agents(), merged(expected_agents("a", 0, 6), expected_agents("b", 0, 2)));
  EXPECT_EQ(ingester.stats().truncations, 1u);
  EXPECT_EQ(store.checkpoints["edge-test"][path].offset, file_size(path));
}

TEST(IngesterLogFile, ReportsContentReplacedUnderTheSameInode) {
  TempDir dir;
  const std::string path = dir / "visits.log";
  append_lines(path, "a", 0, 2);
  FakeStore store;
  Ingester ingester(log_source(path), store, fast_options());
  ASSERT_TRUE(ingester.run_until_caught_up());
  // copytruncate, and more lines than before arrive before the next look.
  fs::resize_file(path, 0);
  append_lines(path, "b", 0, 5);
  ASSERT_TRUE(ingester.run_until_caught_up());
  EXPECT_EQ(store.agents(), merged(expected_agents("a", 0, 2), expected_agents("b", 0, 5)));
  EXPECT_EQ(ingester.stats().replacements, 1u);
}

TEST(IngesterLogFile, ReportsAFileReplacedWhileItWasStopped) {
  TempDir dir;
  const std::string path = dir / "visits.log";
  append_lines(path, "a", 0, 3);
  FakeStore store;
  {
    Ingester ingester(log_source(path), store, fast_options());
    ASSERT_TRUE(ingester.run_until_caught_up());
  }
  fs::remove(path);
  append_lines(path, "b", 0, 5);  // may even get the same inode back
  Ingester restarted(log_source(path), store, fast_options());
  ASSERT_TRUE(restarted.run_until_caught_up());
  EXPECT_EQ(restarted.stats().replacements, 1u);
  EXPECT_EQ(store.agents(), merged(expected_agents("a", 0, 3), expected_agents("b", 0, 5)));
}

TEST(IngesterLogFile, DeadLettersTheUnterminatedTailOfARotatedFile) {
  TempDir dir;
  const std::string path = dir / "visits.log";
  append(path, line("a0") + "{\"time\":");
  FakeStore store;
  Ingester ingester(log_source(path), store, fast_options());
  ASSERT_TRUE(ingester.run_until_caught_up());
  fs::rename(path, dir / "visits.log.1");
  append_lines(path, "b", 0, 1);
  ASSERT_TRUE(ingester.run_until_caught_up());
  EXPECT_EQ(store.agents(), merged(expected_agents("a", 0, 1), expected_agents("b", 0, 1)));
  ASSERT_EQ(store.dead_letters.size(), 1u);
  EXPECT_EQ(store.dead_letters[0].raw, "{\"time\":");
}

TEST(IngesterLogFile, WaitsForAFileThatDoesNotExistYet) {
  TempDir dir;
  const std::string path = dir / "visits.log";
  FakeStore store;
  Ingester ingester(log_source(path), store, fast_options());
  ASSERT_TRUE(ingester.run_until_caught_up());
  EXPECT_TRUE(store.rows.empty());
  append_lines(path, "a", 0, 2);
  ASSERT_TRUE(ingester.run_until_caught_up());
  EXPECT_EQ(store.agents(), expected_agents("a", 0, 2));
}

TEST(IngesterExactlyOnce, RetriesFailedCommitsWithoutLosingLines) {
  TempDir dir;
  const std::string path = dir / "visits.log";
  append_lines(path, "a", 0, 20);
  FakeStore store;
  store.fail_before_commit = 4;
  Ingester ingester(log_source(path), store, fast_options());
  ASSERT_TRUE(ingester.run_until_caught_up());
  EXPECT_EQ(store.agents(), expected_agents("a", 0, 20));
  EXPECT_EQ(ingester.stats().store_failures, 4u);
  EXPECT_TRUE(ingester.stats().database_ok);
}

TEST(IngesterExactlyOnce, DoesNotRepeatACommitWhoseAnswerWasLost) {
  TempDir dir;
  const std::string path = dir / "visits.log";
  append_lines(path, "a", 0, 20);
  FakeStore store;
  store.fail_after_commit = 3;
  Ingester ingester(log_source(path), store, fast_options());
  ASSERT_TRUE(ingester.run_until_caught_up());
  EXPECT_EQ(store.agents(), expected_agents("a", 0, 20)) << "no line twice, none missing";
}

TEST(IngesterExactlyOnce, TwoIngestersOnOneSourceNeverCountALineTwice) {
  TempDir dir;
  const std::string path = dir / "visits.log";
  append_lines(path, "a", 0, 10);
  FakeStore store;
  Ingester first(log_source(path), store, fast_options());
  Ingester second(log_source(path), store, fast_options());
  // While `first` commits its first batch, `second` ingests everything.
  store.before_commit = [&] {
    store.before_commit = nullptr;
    ASSERT_TRUE(second.run_until_caught_up());
  };
  ASSERT_TRUE(first.run_until_caught_up());
  EXPECT_EQ(store.agents(), expected_agents("a", 0, 10));
  EXPECT_EQ(first.stats().checkpoint_conflicts, 1u);
  EXPECT_EQ(first.stats().lines_ingested, 0u);
  EXPECT_EQ(second.stats().lines_ingested, 10u);
}

IngesterOptions chunked_options(std::size_t batch_lines, std::size_t chunk_lines) {
  IngesterOptions o = fast_options();
  o.max_batch_lines = batch_lines;
  o.chunk_lines = chunk_lines;
  o.max_batch_time = std::chrono::minutes(10);
  return o;
}

TEST(IngesterTransactions, StreamsAllLinesOfABacklogAsChunksOfOneCommit) {
  TempDir dir;
  const std::string path = dir / "visits.log";
  append_lines(path, "a", 0, 20);
  FakeStore store;
  Ingester ingester(log_source(path), store, chunked_options(1000, 3));
  ASSERT_TRUE(ingester.run_until_caught_up());
  EXPECT_EQ(store.agents(), expected_agents("a", 0, 20));
  EXPECT_EQ(store.commits, 1);
  EXPECT_EQ(store.chunks, std::vector<int>{7}) << "20 lines in chunks of 3";
  EXPECT_EQ(store.checkpoints["edge-test"][path].offset, file_size(path));
  EXPECT_EQ(ingester.stats().batches, 1u);
  EXPECT_EQ(ingester.stats().lines_ingested, 20u);
}

TEST(IngesterTransactions, EndsATransactionAtItsLineBound) {
  TempDir dir;
  const std::string path = dir / "visits.log";
  append_lines(path, "a", 0, 20);
  FakeStore store;
  Ingester ingester(log_source(path), store, chunked_options(7, 3));
  ASSERT_TRUE(ingester.run_until_caught_up());
  EXPECT_EQ(store.agents(), expected_agents("a", 0, 20));
  EXPECT_EQ(store.chunks, (std::vector<int>{3, 3, 2})) << "3 + 3 + 1, 3 + 3 + 1, 3 + 3 lines";
  EXPECT_EQ(store.checkpoints["edge-test"][path].offset, file_size(path));
}

TEST(IngesterTransactions, EndsATransactionWhenTheStoreAsksItToWindDown) {
  TempDir dir;
  const std::string path = dir / "visits.log";
  append_lines(path, "a", 0, 20);
  FakeStore store;
  store.wind_down_after_chunk = 2;
  Ingester ingester(log_source(path), store, chunked_options(1000, 3));
  ASSERT_TRUE(ingester.run_until_caught_up());
  EXPECT_EQ(store.agents(), expected_agents("a", 0, 20)) << "every line once";
  // Asked after its second chunk, a transaction still takes the third, read
  // ahead while the second was sent: 9 + 9 + 2 lines.
  EXPECT_EQ(store.chunks, (std::vector<int>{3, 3, 1}));
  EXPECT_EQ(store.checkpoints["edge-test"][path].offset, file_size(path));
}

TEST(IngesterTransactions, EndsATransactionAtItsTimeBound) {
  TempDir dir;
  const std::string path = dir / "visits.log";
  append_lines(path, "a", 0, 20);
  FakeStore store;
  IngesterOptions options = chunked_options(1000, 3);
  options.max_batch_time = milliseconds(0);  // every transaction ends after its first chunk
  Ingester ingester(log_source(path), store, options);
  ASSERT_TRUE(ingester.run_until_caught_up());
  EXPECT_EQ(store.agents(), expected_agents("a", 0, 20));
  EXPECT_EQ(store.commits, 7);
}

TEST(IngesterTransactions, AFailureInTheMiddleOfATransactionLeavesNothingAndItIsRetriedOnce) {
  TempDir dir;
  const std::string path = dir / "visits.log";
  append_lines(path, "a", 0, 20);
  FakeStore store;
  store.fail_at_chunk = 4;  // the first attempt dies after sending 3 chunks
  Ingester ingester(log_source(path), store, chunked_options(1000, 3));
  ASSERT_TRUE(ingester.run_until_caught_up());
  EXPECT_EQ(store.agents(), expected_agents("a", 0, 20)) << "every line once";
  EXPECT_EQ(store.commits, 1);
  EXPECT_EQ(store.chunks, std::vector<int>{7}) << "the retry read the file again from its start";
  EXPECT_EQ(ingester.stats().store_failures, 1u);
  EXPECT_EQ(ingester.stats().lines_ingested, 20u) << "the failed attempt counts nothing";
}

TEST(IngesterTransactions, OneTransactionCoversEveryFileOfAJournalWithOneMovePerFile) {
  TempDir dir;
  FakeStore store;
  {
    JournalOptions options;
    options.max_bytes = 600;  // a few lines per file
    JournalWriter writer(dir.path(), "origin-a-t0", options);
    for (int i = 0; i < 30; ++i) ASSERT_TRUE(writer.append(line("j" + std::to_string(i))));
  }
  std::map<std::string, std::uint64_t> sizes;  // by file key
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    const std::string name = entry.path().filename().string();
    if (parse_journal_file_name(name)) sizes[name.substr(0, name.size() - 6)] = entry.file_size();
  }
  ASSERT_GT(sizes.size(), 3u);
  Ingester ingester(journal_source(dir.path()), store, chunked_options(1000, 4));
  ASSERT_TRUE(ingester.run_until_caught_up());
  EXPECT_EQ(store.agents(), expected_agents("j", 0, 30));
  EXPECT_EQ(store.commits, 1);
  std::map<std::string, std::uint64_t> moved;
  for (const CheckpointMove& move : store.last_moves) {
    EXPECT_FALSE(move.expected.has_value()) << move.next.file_key;
    EXPECT_TRUE(moved.emplace(move.next.file_key, move.next.offset).second)
        << "one move per file: " << move.next.file_key;
  }
  EXPECT_EQ(moved, sizes) << "each file's move ends at its end";
  EXPECT_GT(ingester.stats().files_deleted, 3u);
  EXPECT_TRUE(store.checkpoints["journal-test"].empty());
}

TEST(IngesterJournal, DeletesFinishedFilesOnceIngestedAndKeepsTheOpenOne) {
  TempDir dir;
  FakeStore store;
  {
    JournalOptions options;
    options.max_bytes = 600;  // a few lines per file
    JournalWriter writer(dir.path(), "origin-a-t0", options);
    for (int i = 0; i < 30; ++i) ASSERT_TRUE(writer.append(line("j" + std::to_string(i))));

    Ingester ingester(journal_source(dir.path()), store, fast_options());
    ASSERT_TRUE(ingester.run_until_caught_up());
    EXPECT_EQ(store.agents(), expected_agents("j", 0, 30));
    std::vector<std::string> left;
    for (const auto& entry : fs::directory_iterator(dir.path())) {
      if (parse_journal_file_name(entry.path().filename().string())) {
        left.push_back(entry.path().filename().string());
      }
    }
    ASSERT_EQ(left.size(), 1u) << "only the file being written stays";
    EXPECT_NE(left[0].find(".jsonl.open"), std::string::npos) << left[0];
    EXPECT_GT(ingester.stats().files_deleted, 3u);
    EXPECT_EQ(store.checkpoints["journal-test"].size(), 1u)
        << "rows of deleted files are deleted too";

    ASSERT_TRUE(writer.append(line("j30")));
  }  // the writer completes its file
  Ingester ingester(journal_source(dir.path()), store, fast_options());
  ASSERT_TRUE(ingester.run_until_caught_up());
  EXPECT_EQ(store.agents(), expected_agents("j", 0, 31));
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    EXPECT_FALSE(parse_journal_file_name(entry.path().filename().string()))
        << entry.path() << " is left";
  }
  EXPECT_TRUE(store.checkpoints["journal-test"].empty());
}

TEST(IngesterJournal, RemovesTheOpenFileOfAStoppedWriterButNotOfALiveOne) {
  TempDir dir;
  const std::string dead = dir / journal_file_name("gone-t0", 7, true);
  const std::string live = dir / journal_file_name("live-t0", 3, true);
  append(dir / "gone-t0.seq", "00000000000000000007\n");
  append(dir / "live-t0.seq", "00000000000000000003\n");
  append(dead, line("d0") + line("d1") + "{\"torn");
  append(live, line("l0") + "{\"being written");
  const int live_lock = ::open((dir / "live-t0.seq").c_str(), O_RDWR);
  ASSERT_EQ(::flock(live_lock, LOCK_EX | LOCK_NB), 0);

  FakeStore store;
  Ingester ingester(journal_source(dir.path()), store, fast_options());
  ASSERT_TRUE(ingester.run_until_caught_up());
  ASSERT_TRUE(ingester.run_until_caught_up());  // housekeeping after the idle check
  EXPECT_EQ(store.agents(), merged(expected_agents("d", 0, 2), expected_agents("l", 0, 1)));
  EXPECT_FALSE(fs::exists(dead)) << "no writer holds gone-t0: its torn line was never acknowledged";
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(store.dead_letters.empty());
  ::close(live_lock);
}

TEST(IngesterJournal, ResumesEveryFileFromItsCheckpoint) {
  TempDir dir;
  const std::string a = dir / journal_file_name("p-t0", 1, true);
  const std::string b = dir / journal_file_name("p-t1", 1, true);
  append(dir / "p-t0.seq", "x");
  append(dir / "p-t1.seq", "x");
  const int lock0 = ::open((dir / "p-t0.seq").c_str(), O_RDWR);
  const int lock1 = ::open((dir / "p-t1.seq").c_str(), O_RDWR);
  ASSERT_EQ(::flock(lock0, LOCK_EX | LOCK_NB), 0);
  ASSERT_EQ(::flock(lock1, LOCK_EX | LOCK_NB), 0);
  append_lines(a, "a", 0, 4);
  append_lines(b, "b", 0, 4);
  FakeStore store;
  {
    Ingester ingester(journal_source(dir.path()), store, fast_options());
    ASSERT_TRUE(ingester.run_until_caught_up());
  }
  append_lines(a, "a", 4, 9);
  append_lines(b, "b", 4, 6);
  Ingester ingester(journal_source(dir.path()), store, fast_options());
  ASSERT_TRUE(ingester.run_until_caught_up());
  EXPECT_EQ(store.agents(), merged(expected_agents("a", 0, 9), expected_agents("b", 0, 6)));
  ::close(lock0);
  ::close(lock1);
}

TEST(IngesterJournal, WaitsWhileAnotherIngesterHoldsTheDirectory) {
  TempDir dir;
  FakeStore store;
  Ingester first(journal_source(dir.path()), store, fast_options());
  ASSERT_TRUE(first.run_until_caught_up());  // takes the directory lock
  Ingester second(journal_source(dir.path()), store, fast_options());
  std::thread stopper([&second] {
    std::this_thread::sleep_for(milliseconds(50));
    second.stop();
  });
  EXPECT_FALSE(second.run_until_caught_up()) << "stopped while waiting for the lock";
  stopper.join();
}

}  // namespace
}  // namespace origin
