// The origin's link cache seen from outside: changes reach every instance
// within a second, concurrent misses share one lookup, unknown codes are
// cached briefly, and the cache stays under its memory cap.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
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

std::string create(HttpClient& client, const std::string& json) {
  const Response r = client.post_json("/api/links", json);
  if (r.status != 201) throw std::runtime_error("create " + json + ": " + r.summary());
  return JsonBody(r.body).str("code").value_or("");
}

// Polls `probe` until it returns true; the time it took, or nullopt after `limit`.
template <typename Probe>
std::optional<std::chrono::milliseconds> time_until(Probe probe, std::chrono::milliseconds limit) {
  const auto start = Clock::now();
  while (Clock::now() - start < limit) {
    if (probe()) {
      return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    }
    std::this_thread::sleep_for(10ms);
  }
  return std::nullopt;
}

TEST(OriginCache, AChangeThroughOneInstanceIsServedByAnotherWithinOneSecond) {
  TestDatabase db;
  OriginProcess a(db.url());
  OriginProcess b(db.url());
  HttpClient ca = a.client();
  HttpClient cb = b.client();
  const std::string code = create(ca, R"({"url":"https://example.com/v1"})");
  // Wait until b answers from its cache (the creation's NOTIFY, on
  // link_created, leaves a positive entry alone).
  auto cached = time_until(
      [&] {
        EXPECT_EQ(cb.get("/" + code).header("location"), "https://example.com/v1");
        return metric(cb, "origin_link_cache_hits_total") >= 1;
      },
      5s);
  ASSERT_TRUE(cached.has_value()) << "b never answered from its cache";

  ASSERT_EQ(ca.patch_json("/api/links/" + code, R"({"url":"https://example.com/v2"})").status, 200);
  auto retargeted = time_until(
      [&] { return cb.get("/" + code).header("location") == "https://example.com/v2"; }, 5s);
  ASSERT_TRUE(retargeted.has_value()) << "b never served the new target";
  EXPECT_LE(*retargeted, 1000ms) << "re-target reached the other instance";

  ASSERT_EQ(ca.request("DELETE", "/api/links/" + code).status, 200);
  auto disabled = time_until([&] { return cb.get("/" + code).status == 410; }, 5s);
  ASSERT_TRUE(disabled.has_value()) << "b never stopped redirecting the disabled link";
  EXPECT_LE(*disabled, 1000ms) << "disable reached the other instance";
}

TEST(OriginCache, ACodeCreatedThroughOneInstanceEndsTheOthersNegativeEntryWithinOneSecond) {
  TestDatabase db;
  const Environment long_negative{{"LINK_CACHE_NEGATIVE_TTL_MS", "60000"}};
  OriginProcess a(db.url(), long_negative);
  OriginProcess b(db.url(), long_negative);
  HttpClient ca = a.client();
  HttpClient cb = b.client();
  ASSERT_EQ(cb.get("/launch-soon").status, 404);
  const long long lookups = metric(cb, "origin_redirect_store_lookups_total");
  ASSERT_EQ(cb.get("/launch-soon").status, 404);
  ASSERT_EQ(metric(cb, "origin_redirect_store_lookups_total"), lookups) << "b cached the 404";

  create(ca, R"({"url":"https://example.com/launched","alias":"launch-soon"})");
  auto served = time_until([&] { return cb.get("/launch-soon").status == 307; }, 5s);
  ASSERT_TRUE(served.has_value()) << "b kept answering 404 for a created code";
  EXPECT_LE(*served, 1000ms) << "the creation reached the other instance";
}

TEST(OriginCache, ThousandsOfConcurrentFirstRequestsCostOneDatabaseLookup) {
  TestDatabase db;
  OriginProcess origin(db.url(), {{"DB_STATEMENT_TIMEOUT_MS", "10000"}});
  HttpClient setup = origin.client();
  const std::string code = create(setup, R"({"url":"https://example.com/launch"})");
  const long long before = metric(setup, "origin_redirect_store_lookups_total");
  const long long queries_before = metric(setup, "origin_redirect_store_queries_total");
  ASSERT_GE(before, 0);
  ASSERT_GE(queries_before, 0);

  // Hold the first lookup behind a lock, so every request below arrives while
  // it is in flight, as during a campaign launch.
  pqxx::connection locker(db.url());
  pqxx::work lock_txn(locker);
  lock_txn.exec("LOCK TABLE links IN ACCESS EXCLUSIVE MODE");

  constexpr int kThreads = 50;
  constexpr int kRequestsPerThread = 40;  // each on its own connection: 2,000 in flight
  std::atomic<int> redirected{0};
  std::atomic<int> wrong{0};
  std::atomic<int> sent{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      std::vector<std::thread> inner;
      for (int i = 0; i < kRequestsPerThread; ++i) {
        inner.emplace_back([&] {
          HttpClient c = origin.client(20s);
          ++sent;
          try {
            const Response r = c.get("/" + code + "?n=1");
            if (r.status == 307 && r.header("location") == "https://example.com/launch?n=1") {
              ++redirected;
            } else {
              ++wrong;
            }
          } catch (const std::exception&) {
            ++wrong;
          }
        });
      }
      for (auto& th : inner) th.join();
    });
  }
  while (sent.load() < kThreads * kRequestsPerThread) std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(500ms);  // let the last requests reach the server
  lock_txn.abort();
  for (auto& t : threads) t.join();

  EXPECT_EQ(redirected.load(), kThreads * kRequestsPerThread) << "every request redirected";
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(metric(setup, "origin_redirect_store_lookups_total") - before, 1)
      << "database lookups for " << kThreads * kRequestsPerThread << " concurrent first requests";
  EXPECT_EQ(metric(setup, "origin_redirect_store_queries_total") - queries_before, 1)
      << "database queries for " << kThreads * kRequestsPerThread << " concurrent first requests";
}

TEST(OriginCache, UnknownCodesAreCachedBrieflyAndCreatingOneTakesEffectAtOnce) {
  TestDatabase db;
  OriginProcess origin(db.url(), {{"LINK_CACHE_NEGATIVE_TTL_MS", "700"}});
  HttpClient client = origin.client();
  const long long before = metric(client, "origin_redirect_store_lookups_total");
  for (int i = 0; i < 50; ++i) ASSERT_EQ(client.get("/not-yet").status, 404);
  EXPECT_EQ(metric(client, "origin_redirect_store_lookups_total") - before, 1)
      << "50 requests for one unknown code within the negative TTL";

  std::this_thread::sleep_for(800ms);
  ASSERT_EQ(client.get("/not-yet").status, 404);
  EXPECT_EQ(metric(client, "origin_redirect_store_lookups_total") - before, 2)
      << "the negative entry expired after its TTL";

  create(client, R"({"url":"https://example.com/now","alias":"not-yet"})");
  EXPECT_EQ(client.get("/not-yet").status, 307) << "a created code is served at once";
}

TEST(OriginCache, AFloodOfDistinctCodesStaysUnderTheMemoryCap) {
  TestDatabase db;
  constexpr long long kCap = 256 * 1024;
  // The flood comes from one client far above SCANNER_THRESHOLD: the tarpit
  // (scanner_test.cc) is off here, or the 8,000 answers would take minutes.
  OriginProcess origin(db.url(),
                       {{"LINK_CACHE_MAX_BYTES", std::to_string(kCap)}, {"SCANNER_DELAY_MS", "0"}});
  HttpClient client = origin.client();
  const std::string hot = create(client, R"({"url":"https://example.com/hot"})");
  for (int i = 0; i < 8000; ++i) {
    ASSERT_EQ(client.get("/scan" + std::to_string(i)).status, 404) << "scan " << i;
    if (i % 100 == 0) {
      ASSERT_EQ(client.get("/" + hot).status, 307);
    }
    if (i % 1000 == 0) {
      EXPECT_LE(metric(client, "origin_link_cache_bytes"), kCap) << "after " << i << " codes";
    }
  }
  EXPECT_LE(metric(client, "origin_link_cache_bytes"), kCap);
  EXPECT_GT(metric(client, "origin_link_cache_evictions_total"), 0) << "the flood forced evictions";
  const long long before = metric(client, "origin_redirect_store_lookups_total");
  ASSERT_EQ(client.get("/" + hot).status, 307);
  EXPECT_EQ(metric(client, "origin_redirect_store_lookups_total"), before)
      << "the hot code survived the flood in the cache";
}

}  // namespace
}  // namespace integration
