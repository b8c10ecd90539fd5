// Exactly-once counting through origin crashes: a load client records every
// redirect it receives while the origin is killed with -9 and restarted; once
// the journal is ingested, each received redirect is counted exactly once,
// and extra counts are bounded by the requests in flight at the kills.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
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

constexpr int kCodes = 4;
constexpr int kClients = 8;
constexpr int kKills = 6;

// Counted clicks (humans and bots: the test client sends no User-Agent) per code.
std::map<std::string, long long> counted(const std::string& db_url) {
  std::map<std::string, long long> out;
  const std::string rows = query_text(
      db_url, "SELECT code, sum(humans + bots) FROM visit_counts_hourly GROUP BY code ORDER BY 1");
  std::size_t start = 0;
  while (start < rows.size()) {
    std::size_t end = rows.find('\n', start);
    if (end == std::string::npos) end = rows.size();
    const std::string row = rows.substr(start, end - start);
    const auto bar = row.find('|');
    if (bar != std::string::npos) out[row.substr(0, bar)] = std::stoll(row.substr(bar + 1));
    start = end + 1;
  }
  return out;
}

TEST(VisitsExactlyOnce, EveryReceivedRedirectIsCountedOnceThroughKillNineOfTheOrigin) {
  TestDatabase db;
  const std::string journal =
      (std::filesystem::temp_directory_path() / ("crash-journal-" + db.name())).string();
  const std::string listen = "127.0.0.1:" + std::to_string(free_port());
  const Environment env = {{"ORIGIN_LISTEN", listen},
                           {"JOURNAL_DIR", journal},
                           {"ORIGIN_INSTANCE", "crash-test"},
                           {"INGEST_POLL_MS", "50"}};
  auto origin = std::make_unique<OriginProcess>(db.url(), env);
  const uint16_t port = origin->port();

  std::vector<std::string> codes;
  {
    HttpClient setup = origin->client();
    for (int i = 0; i < kCodes; ++i) {
      const Response r = setup.post_json(
          "/api/links", R"({"url":"https://example.com/c)" + std::to_string(i) + R"("})");
      ASSERT_EQ(r.status, 201) << r.summary();
      codes.push_back(JsonBody(r.body).str("code").value_or(""));
    }
  }

  std::mutex mu;
  std::map<std::string, long long> received;  // guarded by mu
  std::atomic<bool> stop{false};
  std::atomic<int> in_flight{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&, t] {
      HttpClient c("127.0.0.1", port, 2s);
      long long n = 0;
      while (!stop.load()) {
        const std::string& code = codes[static_cast<std::size_t>((t + n++) % kCodes)];
        ++in_flight;
        try {
          const Response r = c.get("/" + code);
          --in_flight;
          if (r.status == 307) {
            std::lock_guard<std::mutex> lock(mu);
            ++received[code];
          }
        } catch (const std::exception&) {
          --in_flight;  // no response: the client never learned of a redirect
          c.close();
          std::this_thread::sleep_for(20ms);
        }
      }
    });
  }

  long long in_flight_at_kills = 0;
  for (int kill = 0; kill < kKills; ++kill) {
    std::this_thread::sleep_for(700ms);
    in_flight_at_kills += in_flight.load();
    origin->process().kill9();
    in_flight_at_kills += in_flight.load();
    origin = std::make_unique<OriginProcess>(db.url(), env);
  }
  std::this_thread::sleep_for(500ms);
  stop = true;
  for (auto& t : clients) t.join();

  long long total_received = 0;
  for (const auto& [code, n] : received) total_received += n;
  ASSERT_GT(total_received, 1000) << "the load client received redirects";

  // The last origin ingests everything journaled by all its predecessors.
  std::map<std::string, long long> counts;
  const auto deadline = Clock::now() + 60s;
  for (;;) {
    counts = counted(db.url());
    bool caught_up = true;
    for (const auto& [code, n] : received) caught_up = caught_up && counts[code] >= n;
    if (caught_up || Clock::now() > deadline) break;
    std::this_thread::sleep_for(200ms);
  }
  std::this_thread::sleep_for(1s);  // anything more would be a double count
  counts = counted(db.url());

  long long extra = 0;
  for (const std::string& code : codes) {
    EXPECT_GE(counts[code], received[code]) << "code " << code << ": a received redirect was lost";
    extra += counts[code] - received[code];
  }
  EXPECT_LE(extra, in_flight_at_kills)
      << "counts beyond received redirects must be requests in flight at a kill";
  ::testing::Test::RecordProperty("received", static_cast<int>(total_received));
  ::testing::Test::RecordProperty("extra", static_cast<int>(extra));
  std::cerr << "received " << total_received << " redirects over " << kKills
            << " kills; counted extra " << extra << " (in flight at kills: " << in_flight_at_kills
            << ")\n";
  std::string dead_letters = query_text(db.url(), "SELECT count(*) FROM ingest_dead_letters");
  while (!dead_letters.empty() && dead_letters.back() == '\n') dead_letters.pop_back();
  EXPECT_EQ(dead_letters, "0") << "no journal line was dead-lettered";
  std::filesystem::remove_all(journal);
}

}  // namespace
}  // namespace integration
