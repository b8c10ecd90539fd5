// DATABASE_READ_URL against a real streaming replica (pg_basebackup -R of a
// private cluster, `pg-cluster replica`), logging every statement it runs:
//  - the origin reads stats on the replica (a replica with replay paused
//    answers the old counts while the primary has new ones), and redirects
//    and writes on the primary (none of their statements reach the replica);
//  - with the replica stopped, stats fall back to the primary (logged once)
//    while redirects go on, and return to the replica when it is back;
//  - `exporter compile` selects on the replica, and a replica that has not
//    replayed a link's disabling never puts that link back on the edge.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "exporter/watch.h"
#include "integration/support/http_client.h"
#include "integration/support/process.h"
#include "integration/support/test_env.h"

namespace integration {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const Headers kBrowser = {{"User-Agent", "Mozilla/5.0 (X11; Linux x86_64) replica-test"}};

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// Polls `done` every 50 ms until it returns true or `limit` passes.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

std::size_t occurrences(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// A streaming replica of the cluster on `primary_port`, made by
// `pg-cluster replica` in a folder of its own and started with
// log_statement=all; stopped and removed when destroyed.
class Replica {
 public:
  explicit Replica(uint16_t primary_port) {
    const char* script = std::getenv("TEST_PG_CLUSTER_SCRIPT");
    if (script == nullptr || *script == '\0') {
      throw std::runtime_error("TEST_PG_CLUSTER_SCRIPT is not set: run through scripts/test");
    }
    script_ = script;
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/it-replica-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    ::chmod(pattern.c_str(), 0755);
    parent_ = pattern;
    data_dir_ = parent_ + "/replica";
    const CommandResult port = run({"free-port"});
    if (!port.exit || !port.exit->success()) {
      throw std::runtime_error("pg-cluster free-port: " + port.describe());
    }
    port_ = static_cast<uint16_t>(std::stoi(port.out));
    const CommandResult made = run({"replica", std::to_string(primary_port), data_dir_});
    if (!made.exit || !made.exit->success()) {
      throw std::runtime_error("pg-cluster replica: " + made.describe());
    }
    start();
  }
  ~Replica() {
    if (running_) run({"stop", data_dir_, "immediate"});
    std::error_code ignored;
    if (!::testing::Test::HasFailure()) fs::remove_all(parent_, ignored);
  }
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  std::string server_url() const {
    return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/postgres";
  }
  // Every statement the replica ran (log_statement=all).
  std::string log() const { return read_text(data_dir_ + ".log"); }

  void start() {
    const CommandResult started = run({"start", data_dir_, std::to_string(port_)});
    if (!started.exit || !started.exit->success()) {
      throw std::runtime_error("pg-cluster start (replica): " + started.describe());
    }
    running_ = true;
    if (!eventually(
            [&] {
              try {
                return trimmed(query_text(server_url(), "SELECT pg_is_in_recovery()")) == "t";
              } catch (const std::exception&) {
                return false;
              }
            },
            30s)) {
      throw std::runtime_error("the replica does not answer: " + tail_of_file(data_dir_ + ".log"));
    }
  }
  void stop() {
    const CommandResult stopped = run({"stop", data_dir_, "immediate"});
    if (!stopped.exit || !stopped.exit->success()) {
      throw std::runtime_error("pg-cluster stop (replica): " + stopped.describe());
    }
    running_ = false;
  }
  void pause_replay() {
    query_text(server_url(), "SELECT pg_wal_replay_pause()");
    if (!eventually(
            [&] {
              return trimmed(query_text(server_url(), "SELECT pg_get_wal_replay_pause_state()")) ==
                     "paused";
            },
            10s)) {
      throw std::runtime_error("replay did not pause");
    }
  }
  void resume_replay() { query_text(server_url(), "SELECT pg_wal_replay_resume()"); }

 private:
  CommandResult run(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{script_};
    argv.insert(argv.end(), args.begin(), args.end());
    Environment env = inherited_environment();
    // Same max_connections as the primary (a standby needs at least as many).
    env["PG_EXTRA_OPTS"] = env["PG_EXTRA_OPTS"] + " -c log_statement=all";
    return run_command(argv, env, 120s);
  }

  std::string script_;
  std::string parent_;
  std::string data_dir_;
  uint16_t port_ = 0;
  bool running_ = false;
};

class ReadReplica : public ::testing::Test {
 protected:
  std::string replica_url() const { return url_with_database(replica_.server_url(), db_.name()); }

  // True once the replica's copy of the test database answers `sql` with `want`.
  bool replica_shows(const std::string& sql, const std::string& want) const {
    return eventually(
        [&] {
          try {
            return trimmed(query_text(replica_url(), sql)) == want;
          } catch (const std::exception&) {
            return false;  // the database may not be replayed yet
          }
        },
        60s);
  }

  // A new link with `clicks` redirects, counted on the primary and replayed
  // on the replica; its code.
  std::string link_with_clicks(HttpClient& api, const std::string& target, int clicks);

  PrivateCluster cluster_;
  Replica replica_{cluster_.port()};
  TestDatabase db_{cluster_.server_url(), TestDatabase::Schema::kMigrated};
};

// Clicks (humans and bots) of a stats answer, or -1.
long long clicks_of(const Response& r) {
  if (r.status != 200) return -1;
  const JsonBody body(r.body);
  return body.integer("total").value_or(-1000000) + body.integer("bots").value_or(-1000000);
}

// Clicks of `code` in the primary's count tables.
long long primary_clicks(const std::string& url, const std::string& code) {
  const std::string n = trimmed(query_text(
      url, "SELECT coalesce(sum(humans + bots), 0) FROM visit_counts_daily WHERE code = '" + code +
               "'"));
  return std::stoll(n);
}

std::string metric(const std::string& metrics, const std::string& name) {
  const auto at = metrics.find("\n" + name + " ");
  if (at == std::string::npos) return "";
  const auto start = at + name.size() + 2;
  return metrics.substr(start, metrics.find('\n', start) - start);
}

std::string ReadReplica::link_with_clicks(HttpClient& api, const std::string& target, int clicks) {
  const Response created = api.post_json("/api/links", R"({"url":")" + target + R"("})");
  EXPECT_EQ(created.status, 201) << created.summary();
  const std::string code = JsonBody(created.body).str("code").value_or("");
  EXPECT_EQ(trimmed(query_text(db_.url(), "SELECT target FROM links WHERE code = '" + code + "'")),
            target)
      << "the create was written on the primary";
  for (int i = 0; i < clicks; ++i) EXPECT_EQ(api.get("/" + code, kBrowser).status, 307);
  EXPECT_TRUE(eventually([&] { return primary_clicks(db_.url(), code) == clicks; }, 20s));
  EXPECT_TRUE(
      replica_shows("SELECT sum(humans + bots) FROM visit_counts_daily WHERE code = '" + code + "'",
                    std::to_string(clicks)));
  return code;
}

TEST_F(ReadReplica, StatsAreReadOnTheReplicaWhileRedirectsAndWritesStayOnThePrimary) {
  OriginProcess origin(db_.url(), {{"DATABASE_READ_URL", replica_url()}, {"INGEST_POLL_MS", "50"}});
  HttpClient api = origin.client();
  const std::string code = link_with_clicks(api, "https://example.com/r", 5);
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(clicks_of(api.get("/api/links/" + code + "/stats")), 5);

  // Replay paused: the primary counts 3 more clicks, the replica does not.
  replica_.pause_replay();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(api.get("/" + code, kBrowser).status, 307);
  ASSERT_TRUE(eventually([&] { return primary_clicks(db_.url(), code) == 8; }, 20s));
  const Response behind = api.get("/api/links/" + code + "/stats");
  EXPECT_EQ(clicks_of(behind), 5) << "stats come from the paused replica: " << behind.summary();

  // A link the replica has not replayed yet is found on the primary, not 404.
  const Response fresh = api.post_json("/api/links", R"({"url":"https://example.com/fresh"})");
  ASSERT_EQ(fresh.status, 201) << fresh.summary();
  const std::string fresh_code = JsonBody(fresh.body).str("code").value_or("");
  EXPECT_EQ(trimmed(query_text(replica_url(),
                               "SELECT count(*) FROM links WHERE code = '" + fresh_code + "'")),
            "0");
  const Response fresh_stats = api.get("/api/links/" + fresh_code + "/stats");
  EXPECT_EQ(fresh_stats.status, 200) << fresh_stats.summary();
  EXPECT_EQ(api.get("/api/links/nosuchcode/stats").status, 404);

  replica_.resume_replay();
  EXPECT_TRUE(
      eventually([&] { return clicks_of(api.get("/api/links/" + code + "/stats")) == 8; }, 20s))
      << "stats catch up once the replica replays";

  const std::string statements = replica_.log();
  EXPECT_GE(occurrences(statements, "source, humans, bots FROM visit_counts_daily"), 3u)
      << "the stats queries ran on the replica";
  for (const char* primary_only : {"link_find", "link_insert", "INSERT", "UPDATE", "COPY"}) {
    EXPECT_EQ(statements.find(primary_only), std::string::npos)
        << primary_only << " reached the replica";
  }
  const std::string metrics = api.get("/metrics").body;
  EXPECT_NE(metric(metrics, "origin_stats_reads_total{database=\"replica\"}"), "0");
  EXPECT_EQ(metric(metrics, "origin_stats_replica_failures_total"), "0");
}

TEST_F(ReadReplica, StatsFallBackToThePrimaryWhileTheReplicaIsDownAndRedirectsGoOn) {
  OriginProcess origin(db_.url(), {{"DATABASE_READ_URL", replica_url()}, {"INGEST_POLL_MS", "50"}});
  HttpClient api = origin.client();
  const std::string code = link_with_clicks(api, "https://example.com/d", 4);
  ASSERT_FALSE(HasFailure());
  ASSERT_EQ(clicks_of(api.get("/api/links/" + code + "/stats")), 4);

  replica_.stop();
  // Over more than one retry period (5 s): every answer right, one log line.
  const auto until = Clock::now() + 6500ms;
  int asked = 0;
  while (Clock::now() < until) {
    const Clock::time_point sent = Clock::now();
    const Response r = api.get("/api/links/" + code + "/stats");
    EXPECT_EQ(clicks_of(r), 4) << r.summary();
    EXPECT_LT(Clock::now() - sent, 3000ms) << "a stats answer while the replica is down";
    // A link not cached yet: the redirect needs the (primary) database.
    const Response link = api.post_json("/api/links", R"({"url":"https://example.com/e"})");
    ASSERT_EQ(link.status, 201) << link.summary();
    EXPECT_EQ(api.get("/" + JsonBody(link.body).str("code").value_or(""), kBrowser).status, 307);
    ++asked;
    std::this_thread::sleep_for(300ms);
  }
  EXPECT_GE(asked, 5);
  EXPECT_EQ(api.get("/readyz").status, 200) << "the replica is not needed to be ready";
  EXPECT_EQ(occurrences(read_text(origin.log_path()), "read replica unavailable"), 1u)
      << origin.log_tail();
  const std::string down_metrics = api.get("/metrics").body;
  EXPECT_NE(metric(down_metrics, "origin_stats_replica_failures_total"), "0");

  const std::string before = metric(down_metrics, "origin_stats_reads_total{database=\"replica\"}");
  replica_.start();
  EXPECT_TRUE(eventually(
      [&] {
        api.get("/api/links/" + code + "/stats");
        return read_text(origin.log_path()).find("read replica answers again") != std::string::npos;
      },
      30s))
      << origin.log_tail();
  EXPECT_NE(metric(api.get("/metrics").body, "origin_stats_reads_total{database=\"replica\"}"),
            before);
  EXPECT_EQ(clicks_of(api.get("/api/links/" + code + "/stats")), 4);
}

TEST_F(ReadReplica, ExporterSelectsOnTheReplicaButNeverReExportsALinkDisabledOnThePrimary) {
  query_text(db_.url(),
             "INSERT INTO links (code, target, status, forward_query) VALUES"
             " ('hot1', 'https://example.com/1', 307, false),"
             " ('hot2', 'https://example.com/2', 307, false),"
             " ('hot3', 'https://example.com/3', 307, false);"
             "INSERT INTO visit_counts_hourly (code, hour, source, humans, bots)"
             " SELECT code, date_trunc('hour', now()), 'origin', 500, 0"
             " FROM links WHERE code LIKE 'hot_'");
  const std::string out = (fs::temp_directory_path() / ("exports-" + db_.name())).string();
  Environment env = inherited_environment();
  env["DATABASE_URL"] = db_.url();
  env["DATABASE_READ_URL"] = replica_url();
  env["EXPORT_STABLE_S"] = "0";
  env["EXPORT_MIN_CLICKS"] = "100";
  env["EXPORT_REPLICA_WAIT_MS"] = "30000";  // generous: a loaded machine may replay slowly
  auto compile = [&](const std::string& version) {
    return run_command({EXPORTER_BIN, "compile", "--out", out, "--version", version}, env, 60s);
  };
  using Codes = std::vector<std::string>;

  // The test database, created moments ago, may not be replayed yet (the
  // exporter would then rightly read the primary).
  ASSERT_TRUE(replica_shows("SELECT count(*) FROM links WHERE code LIKE 'hot_'", "3"));
  const CommandResult v1 = compile("v1");
  ASSERT_TRUE(v1.exit && v1.exit->success()) << v1.describe();
  EXPECT_NE(v1.err.find("selection read on the replica"), std::string::npos) << v1.err;
  EXPECT_EQ(exporter::exported_codes(out + "/v1"), (Codes{"hot1", "hot2", "hot3"}));
  EXPECT_GE(occurrences(replica_.log(), "FROM visit_counts_hourly"), 1u)
      << "the selection query ran on the replica";

  // The replica stops replaying; hot2 is disabled on the primary. A selection
  // on the replica as it stands would still export hot2.
  replica_.pause_replay();
  query_text(db_.url(), "UPDATE links SET disabled = true WHERE code = 'hot2'");
  EXPECT_EQ(trimmed(query_text(replica_url(), "SELECT disabled FROM links WHERE code = 'hot2'")),
            "f");
  env["EXPORT_REPLICA_WAIT_MS"] = "1500";
  const CommandResult v2 = compile("v2");
  ASSERT_TRUE(v2.exit && v2.exit->success()) << v2.describe();
  EXPECT_NE(v2.err.find("selection read on the primary: the replica has replayed up to"),
            std::string::npos)
      << v2.err;
  EXPECT_EQ(exporter::exported_codes(out + "/v2"), (Codes{"hot1", "hot3"}));

  // hot3 disabled too; replay resumes while the compile waits for it.
  query_text(db_.url(), "UPDATE links SET disabled = true WHERE code = 'hot3'");
  env["EXPORT_REPLICA_WAIT_MS"] = "30000";
  const std::string log = out + "-v3.log";
  Process v3({EXPORTER_BIN, "compile", "--out", out, "--version", "v3"}, env, log, log);
  std::this_thread::sleep_for(700ms);
  EXPECT_TRUE(v3.running()) << "compile waits for the replica: " << read_text(log);
  replica_.resume_replay();
  const std::optional<ExitStatus> v3_exit = v3.wait_exit(60s);
  ASSERT_TRUE(v3_exit && v3_exit->success()) << read_text(log);
  EXPECT_NE(read_text(log).find("selection read on the replica"), std::string::npos)
      << read_text(log);
  EXPECT_EQ(exporter::exported_codes(out + "/v3"), (Codes{"hot1"}));

  // The replica down: the primary selects.
  replica_.stop();
  const CommandResult v4 = compile("v4");
  ASSERT_TRUE(v4.exit && v4.exit->success()) << v4.describe();
  EXPECT_NE(v4.err.find("selection read on the primary: the replica cannot be read"),
            std::string::npos)
      << v4.err;
  EXPECT_EQ(exporter::exported_codes(out + "/v4"), (Codes{"hot1"}));
  std::error_code ignored;
  fs::remove_all(out, ignored);
  fs::remove(log, ignored);
}

}  // namespace
}  // namespace integration
