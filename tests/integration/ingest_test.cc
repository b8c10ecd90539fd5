// `origin ingest` against a real PostgreSQL: exactly-once when the ingester
// is killed with -9 (also between COPY and COMMIT) and when PostgreSQL stops
// with -m immediate; a real nginx log rotated by rename and `nginx -s
// reopen`; truncated and replaced files; lines that cannot be ingested.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/visit_record.h"
#include "integration/support/http_client.h"
#include "integration/support/process.h"
#include "integration/support/test_env.h"

namespace integration {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kPauseMarker = "test pause before commit";

class TempDir {
 public:
  TempDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/it-ingest-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    if (::testing::Test::HasFailure()) {
      std::cerr << "ingest test files kept in " << path_ << "\n";
      return;
    }
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

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void append(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out << bytes;
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Line number `n`: a unique user agent "<agent_prefix><n>", a referrer, one
// of `codes` codes, a time spread over the last 36 hours (two or three days).
std::string visit_line(std::int64_t n, const std::string& agent_prefix, int codes = 10,
                       std::int64_t base_ms = now_ms()) {
  core::VisitRecord r;
  r.time = core::from_unix_ms(base_ms - (n * 997) % (36 * 3'600'000));
  r.code = "c" + std::to_string(n % codes);
  r.ip = "198.51.100." + std::to_string(n % 250);
  r.user_agent = agent_prefix + std::to_string(n);
  r.referrer = "https://ref" + std::to_string(n % 7) + ".example/page";
  r.status = 307;
  r.source = n % 3 == 0 ? "origin" : "edge";
  return core::format_visit_line(r);
}

void write_lines(const std::string& path, const std::string& agent_prefix, std::int64_t from,
                 std::int64_t to) {
  std::string bytes;
  const std::int64_t base = now_ms();
  for (std::int64_t n = from; n < to; ++n) bytes += visit_line(n, agent_prefix, 10, base);
  append(path, bytes);
}

void insert_links(const std::string& url, int count) {
  query_text(url,
             "INSERT INTO links (code, target) SELECT 'c' || i, 'https://example.com/' || i"
             " FROM generate_series(0, " +
                 std::to_string(count - 1) + ") AS i");
}

std::int64_t number(const std::string& url, const std::string& sql) {
  const std::string text = query_text(url, sql);
  return std::stoll(text.empty() ? "0" : text);
}

Environment with_defaults(const std::string& url, const Environment& extra) {
  Environment env = inherited_environment();
  env["DATABASE_URL"] = url;
  env["INGEST_POLL_MS"] = "20";
  for (const auto& [name, value] : extra) env[name] = value;
  return env;
}

// A following `origin ingest` (no --once), stdout and stderr in `log_path`.
class IngestProcess {
 public:
  IngestProcess(const std::string& url, const std::vector<std::string>& args,
                const Environment& extra, std::string log_path)
      : log_path_(std::move(log_path)) {
    std::vector<std::string> argv{ORIGIN_BIN, "ingest"};
    argv.insert(argv.end(), args.begin(), args.end());
    process_.emplace(argv, with_defaults(url, extra), log_path_, log_path_);
  }

  Process& process() { return *process_; }
  std::string log() const { return read_file(log_path_); }

  // Waits until the log holds `needle` at least `times` times.
  bool wait_for_log(const std::string& needle, std::size_t times,
                    std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (count_of(log(), needle) >= times) return true;
      if (!process_->running()) return false;
      std::this_thread::sleep_for(2ms);
    }
    return false;
  }

 private:
  std::string log_path_;
  std::optional<Process> process_;
};

CommandResult ingest_once(const std::string& url, const std::vector<std::string>& sources,
                          const Environment& extra = {}) {
  std::vector<std::string> args{"ingest"};
  args.insert(args.end(), sources.begin(), sources.end());
  args.push_back("--once");
  Environment env = {{"DATABASE_URL", url}, {"INGEST_POLL_MS", "20"}};
  for (const auto& [name, value] : extra) env[name] = value;
  return run_origin(args, env, 90s);
}

// The counters `origin ingest` printed for `source` (a JSON line on stdout).
JsonBody counters_of(const CommandResult& result, const std::string& source) {
  std::istringstream lines(result.out);
  std::string line;
  while (std::getline(lines, line)) {
    JsonBody body(line);
    if (body.str("source") == source) return body;
  }
  return JsonBody("null");
}

// Waits until `sql` answers `expected` (ignoring connection failures).
bool wait_for_number(const std::string& url, const std::string& sql, std::int64_t expected,
                     std::chrono::milliseconds timeout, std::int64_t* last = nullptr) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    try {
      const std::int64_t value = number(url, sql);
      if (last != nullptr) *last = value;
      if (value == expected) return true;
    } catch (const std::exception&) {
      // The database is restarting.
    }
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

// Every count the ingester keeps agrees with `lines` distinct visits of known
// codes, all human clicks with a referrer host.
void expect_exactly(const std::string& url, std::int64_t lines) {
  EXPECT_EQ(number(url, "SELECT count(*) FROM visits"), lines) << "raw visits";
  EXPECT_EQ(number(url, "SELECT count(DISTINCT user_agent) FROM visits"), lines)
      << "distinct lines: none twice";
  EXPECT_EQ(number(url, "SELECT coalesce(sum(humans + bots), 0) FROM visit_counts_hourly"), lines)
      << "hourly counts";
  EXPECT_EQ(number(url, "SELECT coalesce(sum(humans + bots), 0) FROM link_visit_totals"), lines)
      << "link totals";
  EXPECT_EQ(number(url, "SELECT coalesce(sum(clicks), 0) FROM referrer_counts_daily"),
            number(url, "SELECT count(*) FROM visits WHERE NOT bot AND referrer_host <> ''"))
      << "referrer counts against raw rows";
  EXPECT_EQ(number(url, "SELECT count(*) FROM ingest_dead_letters"), 0) << "dead letters";
}

std::string journal_name(const std::string& prefix, int sequence) {
  char digits[32];
  std::snprintf(digits, sizeof digits, "%020d", sequence);
  return prefix + "-" + digits + ".jsonl";
}

TEST(IngestCrash, KilledAtRandomInstantsIngestsEveryLineExactlyOnce) {
  TestDatabase db;
  insert_links(db.url(), 10);
  TempDir dir;
  const std::string journal = dir / "journal";
  fs::create_directory(journal);
  // 200,000 lines: three finished journal files and two nginx logs.
  constexpr std::int64_t kPerFile = 40'000;
  std::int64_t n = 0;
  for (int f = 1; f <= 3; ++f, n += kPerFile) {
    write_lines(journal + "/" + journal_name("edge-t0", f), "line-", n, n + kPerFile);
  }
  const std::string log1 = dir / "edge1.jsonl";
  const std::string log2 = dir / "edge2.jsonl";
  write_lines(log1, "line-", n, n + kPerFile);
  n += kPerFile;
  write_lines(log2, "line-", n, n + kPerFile);
  n += kPerFile;
  const std::vector<std::string> sources = {"--source",   "j=" + journal, "--source",
                                            "e1=" + log1, "--source",     "e2=" + log2};
  // Transactions of 2,000 lines sent as 7 chunks: kills land in the middle
  // of a transaction's COPY too.
  const Environment slow_commits = {{"INGEST_TEST_PAUSE_BEFORE_COMMIT_MS", "25"},
                                    {"INGEST_BATCH_LINES", "2000"},
                                    {"INGEST_CHUNK_LINES", "300"}};

  const unsigned seed = static_cast<unsigned>(now_ms());
  std::mt19937 rng(seed);
  SCOPED_TRACE("random seed " + std::to_string(seed));
  int kills_in_pause = 0;
  constexpr int kKills = 24;
  for (int i = 0; i < kKills; ++i) {
    IngestProcess ingest(db.url(), sources, slow_commits,
                         dir / ("ingest-" + std::to_string(i) + ".log"));
    // Spread the kills over the whole stream: let this run get past the
    // next 1/(kKills + 1) of the lines first.
    const std::int64_t target = n * (i + 1) / (kKills + 1);
    const auto deadline = Clock::now() + 30s;
    while (number(db.url(), "SELECT count(*) FROM visits") < target && Clock::now() < deadline &&
           ingest.process().running()) {
      std::this_thread::sleep_for(20ms);
    }
    if (i % 2 == 0) {
      // Between COPY and COMMIT: inside the pause that follows the marker.
      const std::size_t seen = count_of(ingest.log(), kPauseMarker);
      if (ingest.wait_for_log(kPauseMarker, seen + 1, 10s)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 20));
        ++kills_in_pause;
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 60));
    }
    const ExitStatus status = ingest.process().kill9();
    ASSERT_FALSE(status.code.has_value())
        << "the ingester died before the kill (" << status.describe() << "):\n"
        << ingest.log();
  }
  EXPECT_GE(kills_in_pause, kKills / 2 - 2) << "kills that landed between COPY and COMMIT";
  const std::int64_t before_final = number(db.url(), "SELECT count(*) FROM visits");
  std::cout << "kills between COPY and COMMIT: " << kills_in_pause << " of " << kKills
            << "; visits committed before the final run: " << before_final << " of " << n
            << std::endl;
  EXPECT_GT(before_final, n * (kKills - 2) / (kKills + 1))
      << "the kills were spread over the stream";

  const CommandResult final_run = ingest_once(db.url(), sources);
  ASSERT_TRUE(final_run.exit.has_value() && final_run.exit->success()) << final_run.describe();
  expect_exactly(db.url(), n);
  EXPECT_EQ(query_text(db.url(),
                       "SELECT file_key, byte_offset FROM ingest_checkpoints"
                       " WHERE source IN ('e1', 'e2') ORDER BY source"),
            log1 + "|" + std::to_string(fs::file_size(log1)) + "\n" + log2 + "|" +
                std::to_string(fs::file_size(log2)) + "\n")
      << "log checkpoints at the file sizes";
  EXPECT_EQ(number(db.url(), "SELECT count(*) FROM ingest_checkpoints WHERE source = 'j'"), 0)
      << "journal files are finished: their checkpoints are gone with them";
  for (const auto& entry : fs::directory_iterator(journal)) {
    EXPECT_EQ(entry.path().filename().string().find(".jsonl"), std::string::npos)
        << entry.path() << " was not deleted after ingestion";
  }
}

TEST(IngestOutage, PostgresStoppedImmediatelyLosesAndDoublesNothing) {
  PrivateCluster cluster;
  TestDatabase db(cluster.server_url(), TestDatabase::Schema::kMigrated);
  insert_links(db.url(), 10);
  TempDir dir;
  const std::string log = dir / "edge.jsonl";
  IngestProcess ingest(db.url(), {"--source", "edge=" + log}, {}, dir / "ingest.log");

  constexpr int kChunks = 60;
  constexpr int kChunkLines = 500;
  std::thread writer([&log] {
    for (int c = 0; c < kChunks; ++c) {
      write_lines(log, "line-", c * kChunkLines, (c + 1) * kChunkLines);
      std::this_thread::sleep_for(25ms);
    }
  });
  std::this_thread::sleep_for(400ms);
  cluster.stop("immediate");
  std::this_thread::sleep_for(1500ms);
  cluster.start();
  writer.join();

  const std::int64_t total = kChunks * kChunkLines;
  std::int64_t seen = -1;
  ASSERT_TRUE(wait_for_number(db.url(), "SELECT count(*) FROM visits", total, 60s, &seen))
      << "visits after the restart: " << seen << " of " << total << "; log:\n"
      << ingest.log();
  expect_exactly(db.url(), total);
  EXPECT_TRUE(ingest.process().running()) << "recovered by itself, without a restart";
  const std::string log_text = ingest.log();
  EXPECT_NE(log_text.find("database unavailable"), std::string::npos) << log_text;
  EXPECT_NE(log_text.find("ingestion resumed"), std::string::npos) << log_text;
  const auto status = ingest.process().terminate(10s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->success()) << status->describe();
}

// nginx serving `return 307` for /{code}, logging map hits with the
// project's visit log format.
class Nginx {
 public:
  explicit Nginx(const std::string& dir) : dir_(dir), port_(free_port()) {
    // Workers run as an unprivileged user and reopen the log themselves.
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
    fs::create_directories(dir_ + "/tmp");
    conf_ = dir_ + "/nginx.conf";
    std::ofstream(conf_)
        << "daemon off;\n"
           "worker_processes 1;\n"
           "pid "
        << dir_
        << "/nginx.pid;\n"
           "error_log "
        << dir_
        << "/error.log warn;\n"
           "events { worker_connections 64; }\n"
           "http {\n"
           "  include "
        << PROJECT_SOURCE_DIR
        << "/nginx/visit_log.conf;\n"
           "  access_log off;\n"
           "  client_body_temp_path "
        << dir_
        << "/tmp/body;\n"
           "  proxy_temp_path "
        << dir_
        << "/tmp/proxy;\n"
           "  fastcgi_temp_path "
        << dir_
        << "/tmp/fastcgi;\n"
           "  uwsgi_temp_path "
        << dir_
        << "/tmp/uwsgi;\n"
           "  scgi_temp_path "
        << dir_
        << "/tmp/scgi;\n"
           "  map $uri $visit_code { ~^/(?<code>[a-z0-9_-]+)$ $code; default \"\"; }\n"
           "  map $visit_code $edge_hit { \"\" 0; default 1; }\n"
           "  server {\n"
           "    listen 127.0.0.1:"
        << port_
        << ";\n"
           "    access_log "
        << log_path()
        << " shortener_visit if=$edge_hit;\n"
           "    location / { return 307 https://example.com/; }\n"
           "  }\n"
           "}\n";
    process_.emplace(std::vector<std::string>{"/usr/sbin/nginx", "-e", dir_ + "/error.log", "-p",
                                              dir_, "-c", conf_},
                     inherited_environment(), dir_ + "/nginx.out", dir_ + "/nginx.out");
    HttpClient probe("127.0.0.1", port_, 500ms);
    const auto deadline = Clock::now() + 10s;
    while (Clock::now() < deadline) {
      try {
        if (probe.get("/").status == 307) return;
      } catch (const TransportError&) {
      }
      std::this_thread::sleep_for(50ms);
    }
    throw std::runtime_error("nginx did not start: " + read_file(dir_ + "/error.log") +
                             read_file(dir_ + "/nginx.out"));
  }
  ~Nginx() {
    if (process_) process_->terminate(5s);
  }

  uint16_t port() const { return port_; }
  std::string log_path() const { return dir_ + "/visits.jsonl"; }
  CommandResult reopen() const {
    return run_command(
        {"/usr/sbin/nginx", "-e", dir_ + "/error.log", "-p", dir_, "-c", conf_, "-s", "reopen"},
        inherited_environment(), 10s);
  }

 private:
  std::string dir_;
  uint16_t port_;
  std::string conf_;
  std::optional<Process> process_;
};

TEST(IngestRotation, FollowsANginxLogRotatedByRenameAndReopen) {
  TestDatabase db;
  insert_links(db.url(), 5);
  TempDir dir;
  Nginx nginx(dir.path());
  IngestProcess ingest(db.url(), {"--source", "edge=" + nginx.log_path()},
                       {{"INGEST_ROTATION_GRACE_MS", "400"}}, dir / "ingest.log");

  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> redirects{0};
  std::thread client([&] {
    HttpClient http("127.0.0.1", nginx.port(), 5s);
    for (std::int64_t n = 0; !stop.load(); ++n) {
      const Response r = http.get("/c" + std::to_string(n % 5),
                                  {{"User-Agent", "Mozilla/5.0 visitor-" + std::to_string(n)}});
      if (r.status == 307) ++redirects;
      std::this_thread::sleep_for(1ms);
    }
  });
  // logrotate's way: shift the old files, rename the live one, reopen.
  for (int rotation = 0; rotation < 5; ++rotation) {
    std::this_thread::sleep_for(500ms);
    const std::string live = nginx.log_path();
    if (fs::exists(live + ".1")) fs::rename(live + ".1", live + ".2");
    fs::rename(live, live + ".1");
    const CommandResult reopened = nginx.reopen();
    ASSERT_TRUE(reopened.exit.has_value() && reopened.exit->success()) << reopened.describe();
  }
  std::this_thread::sleep_for(300ms);
  stop = true;
  client.join();

  const std::int64_t total = redirects.load();
  ASSERT_GT(total, 1000) << "requests answered by nginx";
  std::int64_t seen = -1;
  ASSERT_TRUE(wait_for_number(db.url(), "SELECT count(*) FROM visits", total, 30s, &seen))
      << seen << " visits of " << total << " redirects; log:\n"
      << ingest.log();
  std::this_thread::sleep_for(500ms);  // nothing more may arrive
  expect_exactly(db.url(), total);
  EXPECT_EQ(number(db.url(), "SELECT count(*) FROM visits WHERE source <> 'edge' OR orphan"), 0);
  EXPECT_EQ(number(db.url(), "SELECT byte_offset FROM ingest_checkpoints WHERE source = 'edge'"),
            static_cast<std::int64_t>(fs::file_size(nginx.log_path())));
  EXPECT_GE(count_of(ingest.log(), "log file rotated"), 5u) << ingest.log();
  EXPECT_TRUE(fs::exists(nginx.log_path() + ".2")) << "nginx's files are never deleted";
  const auto status = ingest.process().terminate(10s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->success()) << status->describe();
}

// nginx rotated its log before the ingester ever ran (or before it opened
// the file): with no checkpoint yet, PATH.1 still holds lines to count.
TEST(IngestRotation, FirstStartAlsoReadsTheFileRotatedJustBefore) {
  TestDatabase db;
  insert_links(db.url(), 10);
  TempDir dir;
  const std::string log = dir / "edge.jsonl";
  const std::vector<std::string> sources = {"--source", "edge=" + log};
  write_lines(log + ".1", "before-", 0, 70);
  write_lines(log, "after-", 0, 30);
  CommandResult run = ingest_once(db.url(), sources);
  ASSERT_TRUE(run.exit.has_value() && run.exit->success()) << run.describe();
  EXPECT_EQ(counters_of(run, "edge").integer("lines_ingested"), 100) << run.err;
  expect_exactly(db.url(), 100);

  // Once a checkpoint exists, PATH.1 is an old file: never read again.
  run = ingest_once(db.url(), sources);
  ASSERT_TRUE(run.exit.has_value() && run.exit->success()) << run.describe();
  EXPECT_EQ(counters_of(run, "edge").integer("lines_ingested"), 0) << run.err;
  expect_exactly(db.url(), 100);
}

// logrotate's way, done twice before the ingester looks again: the file it
// was reading is PATH.2, the one nginx wrote in between PATH.1.
void rotate_twice_with_lines_in_between(const std::string& log) {
  fs::rename(log, log + ".1");
  write_lines(log, "between-", 0, 40);
  fs::rename(log + ".1", log + ".2");
  fs::rename(log, log + ".1");
  write_lines(log, "latest-", 0, 30);
}

TEST(IngestRotation, TwoRotationsBetweenRunsLoseNoFile) {
  TestDatabase db;
  insert_links(db.url(), 10);
  TempDir dir;
  const std::string log = dir / "edge.jsonl";
  const std::vector<std::string> sources = {"--source", "edge=" + log};
  write_lines(log, "first-", 0, 50);
  CommandResult run = ingest_once(db.url(), sources);
  ASSERT_TRUE(run.exit.has_value() && run.exit->success()) << run.describe();
  expect_exactly(db.url(), 50);

  write_lines(log, "first-", 50, 70);  // after the checkpoint, before the rotations
  rotate_twice_with_lines_in_between(log);
  run = ingest_once(db.url(), sources);
  ASSERT_TRUE(run.exit.has_value() && run.exit->success()) << run.describe();
  EXPECT_EQ(counters_of(run, "edge").integer("lines_ingested"), 20 + 40 + 30) << run.err;
  EXPECT_NE(run.err.find("reading the file in between"), std::string::npos) << run.err;
  expect_exactly(db.url(), 140);
}

TEST(IngestRotation, TwoRotationsWhileTheFollowerIsStoppedLoseNoFile) {
  TestDatabase db;
  insert_links(db.url(), 10);
  TempDir dir;
  const std::string log = dir / "edge.jsonl";
  write_lines(log, "first-", 0, 50);
  IngestProcess ingest(db.url(), {"--source", "edge=" + log}, {{"INGEST_ROTATION_GRACE_MS", "200"}},
                       dir / "ingest.log");
  std::int64_t seen = -1;
  ASSERT_TRUE(wait_for_number(db.url(), "SELECT count(*) FROM visits", 50, 30s, &seen))
      << seen << "; log:\n"
      << ingest.log();

  // Stopped (as by a long transaction) while nginx's log turns twice.
  ASSERT_EQ(::kill(ingest.process().pid(), SIGSTOP), 0);
  write_lines(log, "first-", 50, 70);
  rotate_twice_with_lines_in_between(log);
  ASSERT_EQ(::kill(ingest.process().pid(), SIGCONT), 0);

  ASSERT_TRUE(wait_for_number(db.url(), "SELECT count(*) FROM visits", 140, 30s, &seen))
      << seen << " visits of 140; log:\n"
      << ingest.log();
  std::this_thread::sleep_for(500ms);  // nothing more may arrive
  expect_exactly(db.url(), 140);
  EXPECT_EQ(count_of(ingest.log(), "reading the file in between"), 1u) << ingest.log();
}

TEST(IngestRotation, ReportsTruncatedAndReplacedFilesAndIngestsTheirNewContent) {
  TestDatabase db;
  insert_links(db.url(), 10);
  TempDir dir;
  const std::string log = dir / "edge.jsonl";
  const std::vector<std::string> sources = {"--source", "edge=" + log};
  write_lines(log, "first-", 0, 100);
  CommandResult run = ingest_once(db.url(), sources);
  ASSERT_TRUE(run.exit.has_value() && run.exit->success()) << run.describe();
  EXPECT_EQ(counters_of(run, "edge").integer("lines_ingested"), 100);

  // Truncated in place (same inode, shorter than the checkpoint).
  fs::resize_file(log, 0);
  write_lines(log, "second-", 0, 30);
  run = ingest_once(db.url(), sources);
  ASSERT_TRUE(run.exit.has_value() && run.exit->success()) << run.describe();
  EXPECT_EQ(counters_of(run, "edge").integer("truncations"), 1) << run.describe();
  EXPECT_EQ(counters_of(run, "edge").integer("lines_ingested"), 30);
  EXPECT_NE(run.err.find("truncated"), std::string::npos) << run.err;

  // Truncated and refilled past the checkpoint before the ingester looked
  // (copytruncate): same inode, other first bytes.
  fs::resize_file(log, 0);
  write_lines(log, "third-", 0, 200);
  run = ingest_once(db.url(), sources);
  ASSERT_TRUE(run.exit.has_value() && run.exit->success()) << run.describe();
  EXPECT_EQ(counters_of(run, "edge").integer("replacements"), 1) << run.describe();
  EXPECT_EQ(counters_of(run, "edge").integer("lines_ingested"), 200);

  // Replaced by another, shorter file. With a new inode it is "replaced";
  // when the file system hands the old inode out again, it cannot be told
  // from a truncation, and is reported as one.
  fs::remove(log);
  write_lines(log, "fourth-", 0, 10);
  run = ingest_once(db.url(), sources);
  ASSERT_TRUE(run.exit.has_value() && run.exit->success()) << run.describe();
  const JsonBody last = counters_of(run, "edge");
  EXPECT_EQ(last.integer("replacements").value_or(0) + last.integer("truncations").value_or(0), 1)
      << run.describe();
  EXPECT_EQ(last.integer("lines_ingested"), 10);

  expect_exactly(db.url(), 340);
  EXPECT_EQ(number(db.url(), "SELECT byte_offset FROM ingest_checkpoints WHERE source = 'edge'"),
            static_cast<std::int64_t>(fs::file_size(log)));
}

// Rows of `table` (columns `columns`) that the same columns computed from the
// raw visits (`computed`, a SELECT) do not have, and the other way round.
std::string count_mismatches(const std::string& url, const std::string& table,
                             const std::string& columns, const std::string& computed) {
  return query_text(url, "(SELECT " + columns + " FROM " + table + " EXCEPT " + computed +
                             ") UNION ALL (" + computed + " EXCEPT SELECT " + columns + " FROM " +
                             table + ")");
}

// One transaction of many chunks, with orphans, bots, referrers and a day
// whose partition does not exist until a later chunk needs it: every count
// table equals what the committed raw rows add up to.
TEST(IngestTransactions, CountsOfAManyChunkTransactionEqualTheRawRows) {
  TestDatabase db;
  insert_links(db.url(), 10);
  TempDir dir;
  const std::string log = dir / "edge.jsonl";
  const std::int64_t now = now_ms();
  std::string bytes;
  for (std::int64_t n = 0; n < 3000; ++n) {
    // Codes c0..c11 (c10, c11 are no links), a bot every 5th line, and from
    // line 2000 on, visits of three days ago (no partition yet).
    core::VisitRecord r;
    r.time = core::from_unix_ms((n < 2000 ? now : now - 3 * 86'400'000) - n * 1000);
    r.code = "c" + std::to_string(n % 12);
    r.ip = "198.51.100." + std::to_string(n % 250);
    r.user_agent = (n % 5 == 0 ? "curl/" : "agent-") + std::to_string(n);
    r.referrer = n % 2 == 0 ? "https://ref" + std::to_string(n % 7) + ".example/page" : "";
    r.status = n % 13 == 0 ? 404 : 307;
    r.source = n % 3 == 0 ? "origin" : "edge";
    bytes += core::format_visit_line(r);
  }
  append(log, bytes);
  const CommandResult run =
      ingest_once(db.url(), {"--source", "edge=" + log}, {{"INGEST_CHUNK_LINES", "100"}});
  ASSERT_TRUE(run.exit.has_value() && run.exit->success()) << run.describe();
  const JsonBody counters = counters_of(run, "edge");
  EXPECT_EQ(counters.integer("lines_ingested"), 3000) << run.out;
  EXPECT_EQ(counters.integer("batches"), 1) << "30 chunks, one transaction: " << run.out;
  EXPECT_EQ(number(db.url(), "SELECT count(*) FROM visits"), 3000);
  EXPECT_EQ(number(db.url(), "SELECT count(*) FROM visits_default"), 0)
      << "the partition of three days ago was made inside the transaction, before its rows";
  EXPECT_EQ(number(db.url(), "SELECT count(*) FROM visits WHERE orphan"), 500);
  EXPECT_EQ(number(db.url(), "SELECT count(*) FROM visits WHERE bot"), 600);

  const std::string clicks = " FROM visits WHERE NOT orphan AND status BETWEEN 300 AND 399";
  EXPECT_EQ(
      count_mismatches(
          db.url(), "visit_counts_hourly", "code, hour, source, humans, bots",
          "SELECT code, date_trunc('hour', time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', source,"
          " count(*) FILTER (WHERE NOT bot), count(*) FILTER (WHERE bot)" +
              clicks + " GROUP BY 1, 2, 3"),
      "");
  EXPECT_EQ(count_mismatches(db.url(), "visit_counts_daily", "code, day, source, humans, bots",
                             "SELECT code, (time AT TIME ZONE 'UTC')::date, source,"
                             " count(*) FILTER (WHERE NOT bot),"
                             " count(*) FILTER (WHERE bot)" +
                                 clicks + " GROUP BY 1, 2, 3"),
            "");
  EXPECT_EQ(
      count_mismatches(
          db.url(), "orphan_counts_hourly", "code, hour, source, humans, bots",
          "SELECT code, date_trunc('hour', time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', source,"
          " count(*) FILTER (WHERE NOT bot), count(*) FILTER (WHERE bot)"
          " FROM visits WHERE orphan GROUP BY 1, 2, 3"),
      "");
  EXPECT_EQ(
      count_mismatches(db.url(), "referrer_counts_daily", "code, day, host, clicks",
                       "SELECT code, (time AT TIME ZONE 'UTC')::date, referrer_host, count(*)" +
                           clicks + " AND NOT bot AND referrer_host <> '' GROUP BY 1, 2, 3"),
      "");
  EXPECT_EQ(count_mismatches(
                db.url(), "referrer_counts_monthly", "code, month, host, clicks",
                "SELECT code, date_trunc('month', time AT TIME ZONE 'UTC')::date, referrer_host,"
                " count(*)" +
                    clicks + " AND NOT bot AND referrer_host <> '' GROUP BY 1, 2, 3"),
            "");
  EXPECT_EQ(count_mismatches(db.url(), "link_visit_totals", "code, humans, bots, last_click_at",
                             "SELECT code, count(*) FILTER (WHERE NOT bot),"
                             " count(*) FILTER (WHERE bot), max(time) FILTER (WHERE NOT bot)" +
                                 clicks + " GROUP BY 1"),
            "");
  EXPECT_GT(number(db.url(), "SELECT count(*) FROM referrer_counts_monthly"), 0);
}

// Killed with -9 after every chunk of a transaction was sent, before its
// COMMIT: nothing of it is visible, and the next run ingests every line once,
// again as one transaction.
TEST(IngestTransactions, AManyChunkTransactionKilledBeforeItsCommitLeavesNothing) {
  TestDatabase db;
  insert_links(db.url(), 10);
  TempDir dir;
  const std::string log = dir / "edge.jsonl";
  write_lines(log, "line-", 0, 5000);
  const std::vector<std::string> sources = {"--source", "edge=" + log};
  {
    IngestProcess ingest(
        db.url(), sources,
        {{"INGEST_CHUNK_LINES", "500"}, {"INGEST_TEST_PAUSE_BEFORE_COMMIT_MS", "60000"}},
        dir / "ingest.log");
    ASSERT_TRUE(ingest.wait_for_log(kPauseMarker, 1, 60s)) << ingest.log();
    EXPECT_EQ(number(db.url(),
                     "SELECT count(*) FROM pg_stat_activity WHERE application_name ="
                     " 'origin-ingest' AND state = 'idle in transaction'"
                     " AND datname = current_database()"),
              1)
        << "the transaction is open, its rows sent";
    EXPECT_EQ(number(db.url(), "SELECT count(*) FROM visits"), 0);
    const ExitStatus status = ingest.process().kill9();
    ASSERT_FALSE(status.code.has_value()) << status.describe() << "\n" << ingest.log();
  }
  EXPECT_EQ(number(db.url(), "SELECT count(*) FROM ingest_checkpoints"), 0);
  const CommandResult run = ingest_once(db.url(), sources, {{"INGEST_CHUNK_LINES", "500"}});
  ASSERT_TRUE(run.exit.has_value() && run.exit->success()) << run.describe();
  EXPECT_EQ(counters_of(run, "edge").integer("batches"), 1) << run.out;
  expect_exactly(db.url(), 5000);
  EXPECT_EQ(number(db.url(), "SELECT byte_offset FROM ingest_checkpoints WHERE source = 'edge'"),
            static_cast<std::int64_t>(fs::file_size(log)));
}

TEST(IngestBadLines, DeadLettersWhatCannotBeIngestedAndIngestsTheRest) {
  TestDatabase db;
  insert_links(db.url(), 10);
  TempDir dir;
  const std::string log = dir / "edge.jsonl";
  const std::int64_t base = now_ms();
  std::string bad_utf8_agent = visit_line(3, "agent-QQ-", 10, base);
  bad_utf8_agent.replace(bad_utf8_agent.find("QQ"), 2, "\xC3\x28");
  std::string bad_utf8_code = visit_line(4, "agent-", 10, base);
  bad_utf8_code.replace(bad_utf8_code.find("\"c4\""), 4, "\"c\xFF\"");
  const std::string megabyte(1024 * 1024, 'x');
  const std::string missing_src =
      R"({"time":"2026-11-27T20:46:40.123Z","code":"c1","ip":"","ua":"x","ref":"","status":307})";
  const std::string torn = visit_line(9, "agent-", 10, base);
  const std::string torn_head = torn.substr(0, 40);

  std::string content;
  for (int i = 0; i < 3; ++i) content += visit_line(i, "agent-", 10, base);
  const std::uint64_t bad_code_offset = content.size() + bad_utf8_agent.size();
  content += bad_utf8_agent + bad_utf8_code;
  const std::uint64_t megabyte_offset = content.size();
  content += megabyte + "\n";
  const std::uint64_t missing_offset = content.size();
  content += missing_src + "\n";
  content += visit_line(5, "agent-", 10, base) + visit_line(60, "gone-", 99, base);
  const std::uint64_t torn_offset = content.size();
  append(log, content + torn_head);

  CommandResult run = ingest_once(db.url(), {"--source", "edge=" + log});
  ASSERT_TRUE(run.exit.has_value() && run.exit->success()) << run.describe();
  const JsonBody counters = counters_of(run, "edge");
  EXPECT_EQ(counters.integer("lines_ingested"), 6) << run.out;
  EXPECT_EQ(counters.integer("lines_dead_lettered"), 3) << run.out;
  EXPECT_EQ(counters.integer("lines_repaired"), 1) << run.out;
  EXPECT_EQ(query_text(db.url(),
                       "SELECT byte_offset, raw_length, octet_length(raw), reason"
                       " FROM ingest_dead_letters WHERE source = 'edge' ORDER BY byte_offset"),
            std::to_string(bad_code_offset) + "|" + std::to_string(bad_utf8_code.size() - 1) + "|" +
                std::to_string(bad_utf8_code.size() - 1) + "|invalid UTF-8 at byte " +
                std::to_string(bad_utf8_code.find('\xFF')) + "\n" +
                std::to_string(megabyte_offset) + "|1048576|4096|line longer than 131072 bytes\n" +
                std::to_string(missing_offset) + "|" + std::to_string(missing_src.size()) + "|" +
                std::to_string(missing_src.size()) + "|field \"src\" is missing\n");
  EXPECT_EQ(query_text(db.url(), "SELECT user_agent FROM visits WHERE user_agent LIKE 'agent-%-3'"),
            "agent-\xEF\xBF\xBD(-3\n")
      << "invalid UTF-8 in a text field is replaced and the click kept";
  EXPECT_EQ(query_text(db.url(), "SELECT code, orphan FROM visits WHERE user_agent LIKE 'gone-%'"),
            "c60|t\n")
      << "a visit to an unknown code is an orphan";
  EXPECT_EQ(number(db.url(), "SELECT coalesce(sum(humans), 0) FROM orphan_counts_hourly"), 1);
  EXPECT_EQ(number(db.url(), "SELECT byte_offset FROM ingest_checkpoints WHERE source = 'edge'"),
            static_cast<std::int64_t>(torn_offset))
      << "the torn last line is not consumed";

  append(log, torn.substr(torn_head.size()));
  run = ingest_once(db.url(), {"--source", "edge=" + log});
  ASSERT_TRUE(run.exit.has_value() && run.exit->success()) << run.describe();
  EXPECT_EQ(counters_of(run, "edge").integer("lines_ingested"), 1) << run.out;
  EXPECT_EQ(number(db.url(), "SELECT count(*) FROM visits"), 7);
  EXPECT_EQ(number(db.url(), "SELECT count(*) FROM ingest_dead_letters"), 3);
  EXPECT_EQ(number(db.url(), "SELECT byte_offset FROM ingest_checkpoints WHERE source = 'edge'"),
            static_cast<std::int64_t>(fs::file_size(log)));
}

TEST(IngestRecords, StoresTheIpAsVisitIpModeSays) {
  TestDatabase db;
  insert_links(db.url(), 10);
  TempDir dir;
  const std::string full = dir / "full.jsonl";
  const std::string none = dir / "none.jsonl";
  write_lines(full, "full-", 7, 8);
  write_lines(none, "none-", 7, 8);
  CommandResult run =
      ingest_once(db.url(), {"--source", "full=" + full}, {{"VISIT_IP_MODE", "full"}});
  ASSERT_TRUE(run.exit.has_value() && run.exit->success()) << run.describe();
  run = ingest_once(db.url(), {"--source", "none=" + none}, {{"VISIT_IP_MODE", "none"}});
  ASSERT_TRUE(run.exit.has_value() && run.exit->success()) << run.describe();
  EXPECT_EQ(query_text(db.url(), "SELECT user_agent, host(ip) FROM visits ORDER BY 1"),
            "full-7|198.51.100.7\nnone-7|<null>\n");
  run = ingest_once(db.url(), {"--source", "x=" + none}, {{"VISIT_IP_MODE", "partial"}});
  ASSERT_TRUE(run.exit.has_value());
  EXPECT_EQ(run.exit->code, 1) << run.describe();
  EXPECT_NE(run.err.find("VISIT_IP_MODE"), std::string::npos) << run.err;
}

TEST(IngestCommand, RefusesBadArgumentsWithExitCode2) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"ingest"},
        {"ingest", "--source"},
        {"ingest", "--source", "x"},
        {"ingest", "--bogus"},
        {"ingest", "--source", "a=/x", "--source", "a=/y"}}) {
    const CommandResult run = run_origin(args, {{"DATABASE_URL", "postgresql:///nowhere"}}, 10s);
    ASSERT_TRUE(run.exit.has_value());
    EXPECT_EQ(run.exit->code, 2) << run.describe();
  }
}

}  // namespace
}  // namespace integration
