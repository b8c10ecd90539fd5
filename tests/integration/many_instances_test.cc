// Two origin instances on one database, as in production behind a load
// balancer: a change made through one is served by the other within 1 s
// (NOTIFY evicts its cache), concurrent creates through both never share a
// code, and SIGKILL of one instance under load behind a real nginx upstream
// (the edge's nginx.conf from `exporter edge-config` with two ORIGIN_SERVERS)
// loses no acknowledged create and no visit of a redirect a client received,
// once both journals are ingested with `origin ingest`.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "integration/support/http_client.h"
#include "integration/support/nginx_process.h"
#include "integration/support/process.h"
#include "integration/support/test_env.h"

namespace integration {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

long long ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

// Rows of query_text split into lines.
std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

// The source name `origin serve` ingests its journal directory under
// (origin/ingester.h journal_source_name), so `origin ingest` continues
// from the instance's own checkpoints instead of reading its files twice.
std::string journal_source(const std::string& dir) {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
    std::snprintf(host, 10, "localhost");
  return "journal:" + std::string(host) + ":" + fs::weakly_canonical(dir).string();
}

class ManyInstances : public ::testing::Test {
 protected:
  // Small codes (31^4), so that concurrent creates do collide and the
  // unique index and retry are what keeps them apart.
  static Environment instance_env(const std::string& name) {
    return {{"ORIGIN_INSTANCE", name},
            {"CODE_LENGTH", "4"},
            {"INGEST_POLL_MS", "50"},
            {"ORIGIN_THREADS", "2"}};
  }

  std::string create(HttpClient& client, const std::string& target) {
    const Response r = client.post_json("/api/links", R"({"url":")" + target + R"("})");
    EXPECT_EQ(r.status, 201) << r.summary();
    return JsonBody(r.body).str("code").value_or("");
  }

  TestDatabase db_;
  std::optional<OriginProcess> a_{std::in_place, db_.url(), instance_env("mi-a")};
  std::optional<OriginProcess> b_{std::in_place, db_.url(), instance_env("mi-b")};
};

// Polls `client` for `path` until `done`; the time from `since`, or nullopt
// after 10 s.
template <typename Done>
std::optional<long long> until(HttpClient& client, const std::string& path, Clock::time_point since,
                               Done done) {
  while (Clock::now() - since < 10s) {
    if (done(client.get(path))) return ms_between(since, Clock::now());
    std::this_thread::sleep_for(5ms);
  }
  return std::nullopt;
}

TEST_F(ManyInstances, ALinkChangedThroughOneInstanceIsServedChangedByTheOtherWithinOneSecond) {
  HttpClient a = a_->client();
  HttpClient b = b_->client();
  std::vector<long long> latencies;
  for (int round = 0; round < 6; ++round) {
    // Alternate which instance changes the link and which must notice.
    HttpClient& writer = round % 2 == 0 ? a : b;
    HttpClient& reader = round % 2 == 0 ? b : a;
    const std::string code = create(writer, "https://example.com/before/" + std::to_string(round));
    ASSERT_FALSE(code.empty());
    // The reader caches the link as it is now.
    for (int i = 0; i < 3; ++i) {
      const Response r = reader.get("/" + code);
      ASSERT_EQ(r.status, 307) << r.summary();
      ASSERT_EQ(r.header("location"), "https://example.com/before/" + std::to_string(round));
    }
    std::optional<long long> latency;
    if (round < 4) {
      const std::string after = "https://example.com/after/" + std::to_string(round);
      const Response patched =
          writer.patch_json("/api/links/" + code, R"({"url":")" + after + R"("})");
      const Clock::time_point changed = Clock::now();
      ASSERT_EQ(patched.status, 200) << patched.summary();
      latency = until(reader, "/" + code, changed, [&](const Response& r) {
        return r.status == 307 && r.header("location") == after;
      });
    } else {
      const Response deleted = writer.request("DELETE", "/api/links/" + code);
      const Clock::time_point changed = Clock::now();
      ASSERT_EQ(deleted.status, 200) << deleted.summary();
      latency =
          until(reader, "/" + code, changed, [](const Response& r) { return r.status == 410; });
    }
    ASSERT_TRUE(latency.has_value()) << "round " << round << ": never served changed";
    EXPECT_LT(*latency, 1000) << "round " << round << " (" << (round < 4 ? "PATCH" : "DELETE")
                              << ")";
    latencies.push_back(*latency);
  }
  std::cout << "change through one instance served by the other after (ms):";
  for (long long ms : latencies) std::cout << " " << ms;
  std::cout << "\n";
}

TEST_F(ManyInstances, ConcurrentCreatesThroughBothInstancesNeverShareACode) {
  constexpr int kThreadsPerInstance = 2;
  constexpr int kPerThread = 500;
  constexpr int kAliases = 40;
  std::mutex mu;
  std::map<std::string, std::string> target_of;  // code -> target; guarded by mu
  std::vector<std::string> duplicates;           // guarded by mu
  std::atomic<int> failures{0};
  std::map<std::string, std::vector<int>> alias_statuses;  // guarded by mu
  std::vector<std::thread> threads;
  for (int t = 0; t < 2 * kThreadsPerInstance; ++t) {
    threads.emplace_back([&, t] {
      HttpClient client = (t % 2 == 0 ? a_ : b_)->client(10s);
      for (int i = 0; i < kPerThread; ++i) {
        const std::string target =
            "https://example.com/u/" + std::to_string(t) + "/" + std::to_string(i);
        try {
          const Response r = client.post_json("/api/links", R"({"url":")" + target + R"("})");
          const std::string code = JsonBody(r.body).str("code").value_or("");
          std::lock_guard<std::mutex> lock(mu);
          if (r.status != 201 || code.empty()) {
            ++failures;
          } else if (!target_of.emplace(code, target).second) {
            duplicates.push_back(code);
          }
        } catch (const std::exception&) {
          ++failures;
        }
      }
      // The same aliases through both instances at about the same time.
      if (t < 2) {
        for (int i = 0; i < kAliases; ++i) {
          const std::string alias = "both-" + std::to_string(i);
          const Response r = client.post_json(
              "/api/links", R"({"url":"https://example.com/alias/)" + std::to_string(t) +
                                R"(","alias":")" + alias + R"("})");
          std::lock_guard<std::mutex> lock(mu);
          alias_statuses[alias].push_back(r.status);
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();

  EXPECT_EQ(failures.load(), 0);
  EXPECT_TRUE(duplicates.empty()) << duplicates.size() << " codes handed out twice, e.g. "
                                  << (duplicates.empty() ? "" : duplicates.front());
  ASSERT_EQ(target_of.size(), static_cast<std::size_t>(2 * kThreadsPerInstance * kPerThread));
  // Each code is stored once, with the target of the request it answered.
  std::size_t matching = 0;
  for (const std::string& row : lines_of(
           query_text(db_.url(), "SELECT code, target FROM links WHERE code NOT LIKE 'both-%'"))) {
    const auto bar = row.find('|');
    auto it = target_of.find(row.substr(0, bar));
    if (it != target_of.end() && it->second == row.substr(bar + 1)) ++matching;
  }
  EXPECT_EQ(matching, target_of.size());
  for (const auto& [alias, statuses] : alias_statuses) {
    std::vector<int> sorted = statuses;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, (std::vector<int>{201, 409})) << alias << ": one instance wins, one is told";
  }
  EXPECT_EQ(alias_statuses.size(), static_cast<std::size_t>(kAliases));
}

// Writes <root>/edge/nginx.conf with `exporter edge-config` (both origins in
// ORIGIN_SERVERS) and an empty export live (no link exists yet, so every
// request goes to an origin); returns the configuration's text.
std::string write_edge(const std::string& root, uint16_t edge_port,
                       const std::vector<uint16_t>& origins, const std::string& database_url) {
  const std::string prefix = root + "/edge";
  const std::string exports = root + "/exports";
  fs::create_directories(prefix + "/tmp");
  fs::create_directories(exports);
  Environment env = inherited_environment();
  std::string servers;
  for (uint16_t port : origins) {
    servers += (servers.empty() ? "" : ",") + std::string("127.0.0.1:") + std::to_string(port);
  }
  env["ORIGIN_SERVERS"] = servers;
  env["EDGE_LISTEN"] = "127.0.0.1:" + std::to_string(edge_port);
  env["EDGE_NGINX_PREFIX"] = prefix;
  env["EXPORT_DIR"] = exports;
  env["DATABASE_URL"] = database_url;
  const CommandResult config =
      run_command({EXPORTER_BIN, "edge-config", "--template",
                   std::string(PROJECT_SOURCE_DIR) + "/nginx/edge.conf.template", "--out",
                   prefix + "/nginx.conf"},
                  env, 60s);
  if (!config.exit || !config.exit->success()) {
    throw std::runtime_error("exporter edge-config: " + config.describe());
  }
  const CommandResult empty = run_command(
      {EXPORTER_BIN, "compile", "--all", "--out", exports, "--version", "v0"}, env, 60s);
  if (!empty.exit || !empty.exit->success()) {
    throw std::runtime_error("exporter compile: " + empty.describe());
  }
  fs::create_directory_symlink(exports + "/v0", exports + "/live");  // as publish would
  return read_text(prefix + "/nginx.conf");
}

TEST_F(ManyInstances, KillingOneInstanceUnderLoadLosesNoAcknowledgedCreateAndNoReceivedVisit) {
  const std::string root = make_nginx_readable_dir("many-instances");
  const uint16_t edge_port = free_port();
  const std::string conf = write_edge(root, edge_port, {a_->port(), b_->port()}, db_.url());
  for (uint16_t port : {a_->port(), b_->port()}) {
    EXPECT_NE(conf.find("server 127.0.0.1:" + std::to_string(port) + ";"), std::string::npos)
        << "both origins in the upstream";
  }
  std::optional<NginxProcess> edge;
  edge.emplace(root + "/edge", root + "/edge/nginx.conf", edge_port, "v0");

  std::vector<std::string> codes;
  {
    HttpClient setup = a_->client();
    for (int i = 0; i < 8; ++i)
      codes.push_back(create(setup, "https://example.com/k/" + std::to_string(i)));
  }

  // Both instances share the database, so the harness's key works on either.
  const Headers key = {{"Authorization", "Bearer " + a_->admin_key()}};
  constexpr int kRedirectThreads = 4;
  constexpr int kCreateThreads = 2;
  std::mutex mu;
  std::set<std::string> received;              // User-Agents of 307s received; guarded by mu
  std::map<std::string, std::string> created;  // code -> target of 201s; guarded by mu
  std::map<std::string, int> other_statuses;   // "METHOD status" -> count; guarded by mu
  std::atomic<bool> stop{false};
  std::atomic<int> in_flight{0};
  std::atomic<long long> transport_errors{0};
  std::atomic<long long> answered_after_kill{0};
  std::atomic<bool> killed{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kRedirectThreads + kCreateThreads; ++t) {
    threads.emplace_back([&, t] {
      HttpClient client("127.0.0.1", edge_port, 5s);
      client.set_default_headers(key);
      for (long long n = 0; !stop.load(); ++n) {
        const std::string id = std::to_string(t) + "/" + std::to_string(n);
        ++in_flight;
        try {
          if (t < kRedirectThreads) {
            const std::string ua = "many-instances-load/" + id;
            const Response r =
                client.get("/" + codes[static_cast<std::size_t>(n % 8)], {{"User-Agent", ua}});
            --in_flight;
            std::lock_guard<std::mutex> lock(mu);
            if (r.status == 307) {
              received.insert(ua);
            } else {
              ++other_statuses["GET " + std::to_string(r.status)];
            }
          } else {
            const std::string target = "https://example.com/load/" + id;
            const Response r = client.post_json("/api/links", R"({"url":")" + target + R"("})");
            --in_flight;
            std::lock_guard<std::mutex> lock(mu);
            if (r.status == 201) {
              created.emplace(JsonBody(r.body).str("code").value_or(""), target);
            } else {
              ++other_statuses["POST " + std::to_string(r.status)];
            }
          }
          if (killed.load()) ++answered_after_kill;
        } catch (const std::exception&) {
          --in_flight;  // no answer: nothing was acknowledged
          ++transport_errors;
          client.close();
        }
      }
    });
  }

  std::this_thread::sleep_for(1500ms);
  long long in_flight_at_kill = in_flight.load();
  a_->process().kill9();
  killed = true;
  in_flight_at_kill += in_flight.load();
  std::this_thread::sleep_for(1500ms);
  stop = true;
  for (auto& thread : threads) thread.join();

  std::size_t received_count = 0;
  std::size_t created_count = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    received_count = received.size();
    created_count = created.size();
  }
  ASSERT_GT(received_count, 200u) << "the load received redirects";
  ASSERT_GT(created_count, 50u) << "the load created links";
  EXPECT_GT(answered_after_kill.load(), 100) << "the other instance carried the load on";

  // Every acknowledged create is in the database with its target.
  std::size_t stored = 0;
  for (const std::string& row :
       lines_of(query_text(db_.url(),
                           "SELECT code, target FROM links WHERE target LIKE "
                           "'https://example.com/load/%'"))) {
    const auto bar = row.find('|');
    auto it = created.find(row.substr(0, bar));
    if (it != created.end() && it->second == row.substr(bar + 1)) ++stored;
  }
  EXPECT_EQ(stored, created_count) << "an acknowledged create was lost";

  // Both journals ingested: the killed instance's by `origin ingest` (its
  // files are complete up to the last line written before the kill), the
  // other's after it stops, under the names the instances used.
  const std::string a_journal = a_->journal_dir();
  const std::string b_journal = b_->journal_dir();
  ASSERT_TRUE(b_->process().terminate(15s).has_value());
  const CommandResult ingest =
      run_origin({"ingest", "--once", "--source", journal_source(a_journal) + "=" + a_journal,
                  "--source", journal_source(b_journal) + "=" + b_journal},
                 {{"DATABASE_URL", db_.url()}}, 120s);
  ASSERT_TRUE(ingest.exit && ingest.exit->success()) << ingest.describe();

  std::map<std::string, long long> visits;
  for (const std::string& row :
       lines_of(query_text(db_.url(),
                           "SELECT user_agent, count(*) FROM visits"
                           " WHERE user_agent LIKE 'many-instances-load/%' GROUP BY user_agent"))) {
    const auto bar = row.find('|');
    visits[row.substr(0, bar)] = std::stoll(row.substr(bar + 1));
  }
  std::size_t lost = 0;
  for (const std::string& ua : received) lost += visits.count(ua) == 0 ? 1 : 0;
  long long extra = 0;  // journaled, but no 307 reached the client, or twice
  for (const auto& [ua, n] : visits) extra += n - (received.count(ua) != 0 ? 1 : 0);
  EXPECT_EQ(lost, 0u) << "visits of received redirects missing";
  EXPECT_LE(extra, in_flight_at_kill)
      << "visits beyond received redirects must be requests in flight at the kill";
  std::string dead_letters = query_text(db_.url(), "SELECT count(*) FROM ingest_dead_letters");
  EXPECT_EQ(lines_of(dead_letters), std::vector<std::string>{"0"});

  std::string others;
  for (const auto& [status, n] : other_statuses) {
    others += " " + status + " x" + std::to_string(n);
  }
  std::cout << "kill -9 of one of two origins behind nginx: " << received_count << " redirects and "
            << created_count << " creates acknowledged, " << answered_after_kill.load()
            << " answers after the kill; other answers:" << (others.empty() ? " none" : others)
            << "; transport errors " << transport_errors.load() << "; extra visits " << extra
            << " (in flight at kill " << in_flight_at_kill << ")\n";
  edge.reset();
  if (!HasFailure()) fs::remove_all(root);
}

}  // namespace
}  // namespace integration
