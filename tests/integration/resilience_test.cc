// The origin while PostgreSQL goes away and comes back, and on SIGTERM.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "integration/support/http_client.h"
#include "integration/support/process.h"
#include "integration/support/test_env.h"

namespace integration {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kMaxLatency = 2500ms;
constexpr auto kReadinessDeadline = 2000ms;
const Environment kOriginSettings = {{"DB_STATEMENT_TIMEOUT_MS", "1000"}};

std::chrono::milliseconds since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

// Counts failures of one kind and keeps the first few for the message.
struct Failures {
  std::size_t count = 0;
  std::string examples;
  void add(const std::string& what) {
    if (++count <= 5) examples += "\n  " + what;
  }
};

struct Sample {
  std::string request;
  Response response;
  std::string transport_error;
  std::chrono::milliseconds latency{0};
};

// Requests GET /{code} and POST /api/links alternately from its own thread and
// its own client until stopped, recording each answer and its latency.
class BackgroundTraffic {
 public:
  BackgroundTraffic(const OriginProcess& origin, std::string code)
      : client_(origin.client(10s)), code_(std::move(code)), thread_([this] { loop(); }) {}
  ~BackgroundTraffic() { stop(); }

  // Stops and joins the thread; returns every sample taken.
  std::vector<Sample> stop() {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
    return samples_;
  }

 private:
  void loop() {
    for (int i = 0; !stopping_; ++i) {
      Sample s;
      const auto start = Clock::now();
      try {
        if (i % 2 == 0) {
          s.request = "GET /" + code_;
          s.response = client_.get("/" + code_);
        } else {
          s.request = "POST /api/links";
          s.response = client_.post_json("/api/links", R"({"url":"https://example.com/bg"})");
        }
      } catch (const TransportError& e) {
        s.transport_error = e.what();
      }
      s.latency = since(start);
      samples_.push_back(std::move(s));
      std::this_thread::sleep_for(20ms);
    }
  }

  HttpClient client_;
  std::string code_;
  std::atomic<bool> stopping_{false};
  std::vector<Sample> samples_;  // written by the thread, read after join
  std::thread thread_;
};

// Polls `path` every 50 ms until it answers `status` or `limit` passes;
// returns the time it took, or nullopt.
std::optional<std::chrono::milliseconds> time_until_status(HttpClient& client,
                                                           const std::string& path, int status,
                                                           Clock::time_point since_when,
                                                           std::chrono::milliseconds limit) {
  while (since(since_when) < limit) {
    try {
      if (client.get(path).status == status) return since(since_when);
    } catch (const TransportError&) {
    }
    std::this_thread::sleep_for(50ms);
  }
  return std::nullopt;
}

// Expects a quick 503 database_unavailable with Retry-After: 1.
void expect_fast_unavailable(HttpClient& client, const std::string& method, const std::string& path,
                             const std::string& body) {
  const auto start = Clock::now();
  const Response r =
      body.empty() ? client.request(method, path)
                   : client.request(method, path, body, {{"Content-Type", "application/json"}});
  const auto latency = since(start);
  EXPECT_TRUE(IsApiError(r, 503, "database_unavailable", std::nullopt))
      << method << " " << path << " while PostgreSQL is down";
  EXPECT_EQ(r.header("retry-after"), "1") << method << " " << path << " Retry-After";
  EXPECT_LT(latency, kMaxLatency) << method << " " << path << " latency while PostgreSQL is down";
}

void outage_and_recovery(const std::string& stop_mode) {
  PrivateCluster cluster;
  TestDatabase db(cluster.server_url(), TestDatabase::Schema::kMigrated);
  OriginProcess origin(db.url(), kOriginSettings);
  HttpClient client = origin.client(10s);
  const pid_t pid = origin.pid();

  const Response created = client.post_json("/api/links", R"({"url":"https://example.com/up"})");
  ASSERT_EQ(created.status, 201) << created.summary();
  const std::string code = JsonBody(created.body).str("code").value_or("");
  ASSERT_EQ(client.get("/" + code).status, 307) << "redirect before the outage";
  // A link nobody followed yet is in no cache: following it needs the database.
  const Response cold = client.post_json("/api/links", R"({"url":"https://example.com/cold"})");
  ASSERT_EQ(cold.status, 201) << cold.summary();
  const std::string cold_code = JsonBody(cold.body).str("code").value_or("");

  BackgroundTraffic traffic(origin, code);
  std::this_thread::sleep_for(300ms);

  cluster.stop(stop_mode);
  const auto down = Clock::now();
  const auto not_ready = time_until_status(client, "/readyz", 503, down, 10s);
  ASSERT_TRUE(not_ready.has_value()) << "/readyz never answered 503 within 10 s of the stop";
  EXPECT_LE(*not_ready, kReadinessDeadline) << "/readyz 503 after the stop returned";
  ::testing::Test::RecordProperty("readyz_503_after_ms", static_cast<int>(not_ready->count()));
  const Response readyz = client.get("/readyz");
  EXPECT_EQ(readyz.status, 503) << "/readyz stays 503 while PostgreSQL is down";
  EXPECT_EQ(JsonBody(readyz.body).str("status"), "unavailable") << "/readyz body " << readyz.body;
  EXPECT_EQ(JsonBody(readyz.body).str("database"), "down") << "/readyz body " << readyz.body;

  expect_fast_unavailable(client, "GET", "/" + cold_code, "");
  EXPECT_EQ(client.get("/" + code).status, 307)
      << "a redirect already in the origin's cache keeps working while PostgreSQL is down";
  expect_fast_unavailable(client, "POST", "/api/links", R"({"url":"https://example.com/down"})");
  EXPECT_EQ(client.get("/healthz").status, 200) << "/healthz while PostgreSQL is down";
  // Longer than the statement timeout, so a request stuck on a dead
  // connection would show in the background samples.
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(client.get("/healthz").status, 200) << "/healthz 2.5 s into the outage";

  cluster.start();
  const auto up = Clock::now();
  const auto ready = time_until_status(client, "/readyz", 200, up, 10s);
  ASSERT_TRUE(ready.has_value()) << "/readyz never answered 200 within 10 s of the restart";
  EXPECT_LE(*ready, kReadinessDeadline) << "/readyz 200 after PostgreSQL accepted connections";
  ::testing::Test::RecordProperty("readyz_200_after_ms", static_cast<int>(ready->count()));

  for (int i = 0; i < 20; ++i) {
    const Response redirect = client.get("/" + code);
    EXPECT_EQ(redirect.status, 307)
        << "redirect #" << i << " after recovery: " << redirect.summary();
    const Response create =
        client.post_json("/api/links", R"({"url":"https://example.com/after"})");
    EXPECT_EQ(create.status, 201) << "create #" << i << " after recovery: " << create.summary();
  }

  const std::vector<Sample> samples = traffic.stop();
  std::size_t unavailable = 0;
  Failures no_answer, slow, wrong;
  for (const Sample& s : samples) {
    if (!s.transport_error.empty()) {
      no_answer.add(s.request + ": " + s.transport_error);
      continue;
    }
    if (s.latency >= kMaxLatency) {
      slow.add(s.request + " took " + std::to_string(s.latency.count()) + " ms");
    }
    const int ok_status = s.request == "GET /" + code ? 307 : 201;
    if (s.response.status == 503) {
      ++unavailable;
      if (!IsApiError(s.response, 503, "database_unavailable", std::nullopt)) {
        wrong.add(s.request + " -> " + s.response.summary());
      }
    } else if (s.response.status != ok_status) {
      wrong.add(s.request + " -> " + s.response.summary());
    }
  }
  EXPECT_EQ(no_answer.count, 0u) << "background requests without an answer:" << no_answer.examples;
  EXPECT_EQ(slow.count, 0u) << "background requests slower than 2.5 s:" << slow.examples;
  EXPECT_EQ(wrong.count, 0u) << "background answers other than success or 503 "
                                "database_unavailable:"
                             << wrong.examples;
  EXPECT_GT(unavailable, 0u) << "the background traffic saw the outage (" << samples.size()
                             << " samples)";

  EXPECT_EQ(origin.pid(), pid) << "same origin process";
  EXPECT_TRUE(origin.process().running()) << "the origin was not restarted or stopped";
}

TEST(DatabaseOutage, FastShutdownGives503QuicklyAndRecoversWithoutRestart) {
  outage_and_recovery("fast");
}

TEST(DatabaseOutage, ImmediateShutdownGives503QuicklyAndRecoversWithoutRestart) {
  outage_and_recovery("immediate");
}

TEST(OriginShutdown, SigtermExitsWithStatusZeroWithinTenSecondsDespiteAnIdleKeepAlive) {
  TestDatabase db;
  OriginProcess origin(db.url());
  HttpClient idle = origin.client();
  ASSERT_EQ(idle.post_json("/api/links", R"({"url":"https://example.com/"})").status, 201)
      << "a request that leaves a keep-alive connection open";

  const auto start = Clock::now();
  const std::optional<ExitStatus> status = origin.process().terminate(10s);
  ASSERT_TRUE(status.has_value()) << "origin still running 10 s after SIGTERM (then killed)";
  EXPECT_TRUE(status->success()) << "exit after SIGTERM: " << status->describe() << " after "
                                 << since(start).count() << " ms";
}

}  // namespace
}  // namespace integration

namespace integration {
namespace {

long long pool_gauge(HttpClient& client, const std::string& name) {
  const Response r = client.get("/metrics");
  const std::string key = "\n" + name + " ";
  const auto at = r.body.find(key);
  if (at == std::string::npos) return -1;
  return std::stoll(r.body.substr(at + key.size()));
}

// DB_POOL_SIZE connections are kept; up to DB_MAX_OVERFLOW more open under
// load and close again once idle for DB_OVERFLOW_IDLE_S.
TEST(ConnectionPool, OverflowOpensUnderLoadAndClosesWhenIdle) {
  TestDatabase db;
  OriginProcess origin(db.url(), {{"DB_POOL_SIZE", "2"},
                                  {"DB_MAX_OVERFLOW", "3"},
                                  {"DB_OVERFLOW_IDLE_S", "1"},
                                  {"DB_ACQUIRE_TIMEOUT_MS", "3000"},
                                  {"DB_STATEMENT_TIMEOUT_MS", "5000"}});
  HttpClient probe = origin.client();
  {
    pqxx::connection locker(db.url());
    pqxx::work lock_txn(locker);
    lock_txn.exec("LOCK TABLE links IN ACCESS EXCLUSIVE MODE");
    std::vector<std::thread> creates;
    for (int i = 0; i < 8; ++i) {
      creates.emplace_back([&origin, i] {
        HttpClient c = origin.client(10s);
        c.post_json("/api/links", R"({"url":"https://example.com/p)" + std::to_string(i) + R"("})");
      });
    }
    std::this_thread::sleep_for(800ms);
    EXPECT_EQ(pool_gauge(probe, "origin_db_pool_open"), 5)
        << "pool size 2 + overflow 3 open while every connection waits on the lock";
    EXPECT_EQ(pool_gauge(probe, "origin_db_pool_in_use"), 5);
    lock_txn.abort();
    for (auto& t : creates) t.join();
  }
  const auto start = Clock::now();
  long long open = -1;
  while (Clock::now() - start < 5s) {
    open = pool_gauge(probe, "origin_db_pool_open");
    if (open <= 2) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_LE(open, 2) << "overflow connections closed after being idle for 1 s";
  EXPECT_EQ(pool_gauge(probe, "origin_db_pool_waits_total"), 0)
      << "database workers never outnumber connections: requests beyond 5 queue for a "
         "worker, none holds a thread waiting for a connection";
}

}  // namespace
}  // namespace integration
