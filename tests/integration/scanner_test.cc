// The scanner tarpit seen from outside: a client answered "unknown code" too
// fast gets those answers late, while redirects (also its own) stay fast,
// people are never slowed down, and the per-client table stays bounded.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
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

// Low threshold and a long delay, so held and prompt answers cannot be
// confused on a loaded machine: a held answer takes at least kDelay, and a
// prompt one is expected well under kPrompt.
constexpr int kThreshold = 20;
constexpr auto kDelay = 1500ms;
constexpr auto kPrompt = 750ms;

Environment tarpit_env(Environment extra = {}) {
  Environment env = {{"SCANNER_THRESHOLD", std::to_string(kThreshold)},
                     {"SCANNER_DELAY_MS", std::to_string(kDelay.count())}};
  for (auto& [name, value] : extra) env[name] = value;
  return env;
}

struct Timed {
  Response response;
  std::chrono::milliseconds took{0};
};

Timed timed_get(HttpClient& client, const std::string& target, const Headers& headers = {}) {
  const auto start = Clock::now();
  Timed t;
  t.response = client.get(target, headers);
  t.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  return t;
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// Sends unknown codes one after another until an answer is held (or `limit`
// requests); returns how many answers came promptly before it, or -1.
int prompt_answers_until_held(HttpClient& client, const std::string& prefix, int limit,
                              const Headers& headers = {}) {
  for (int i = 0; i < limit; ++i) {
    const Timed t = timed_get(client, "/" + prefix + std::to_string(i), headers);
    EXPECT_EQ(t.response.status, 404) << t.response.summary();
    if (t.took >= kDelay - 50ms) return i;
  }
  return -1;
}

TEST(OriginScannerTarpit, HoldsAScannersUnknownCodesWhileRedirectsFromTheSameAddressStayFast) {
  TestDatabase db;
  query_text(db.url(), "INSERT INTO links (code, target) VALUES ('real', 'https://example.com/r')");
  OriginProcess origin(db.url(), tarpit_env());
  HttpClient metrics_client = origin.anonymous_client();
  ASSERT_EQ(metric(metrics_client, "origin_scanner_delayed_total"), 0);

  HttpClient scanner = origin.anonymous_client();
  scanner.set_timeout(10s);
  const int prompt = prompt_answers_until_held(scanner, "nosuch", 200);
  ASSERT_GE(prompt, 0) << "no unknown-code answer was held within 200 requests";
  // The rate counts every unknown code, so the first kThreshold can never be
  // over it, whatever the machine's speed.
  EXPECT_GE(prompt, kThreshold);

  // The scanner keeps going (every answer held) while another connection
  // from the same address follows an existing link.
  std::atomic<bool> stop{false};
  std::atomic<int> held{0};
  std::atomic<int> not_held{0};
  std::atomic<int> wrong{0};
  std::thread scanning([&] {
    for (int i = 0; !stop; ++i) {
      const Timed t = timed_get(scanner, "/more" + std::to_string(i));
      if (t.response.status != 404 || !JsonBody(t.response.body).str("error.code")) ++wrong;
      (t.took >= kDelay - 50ms ? held : not_held)++;
    }
  });
  HttpClient person = origin.anonymous_client();
  std::vector<long> redirect_ms;
  const auto until = Clock::now() + 2 * kDelay;
  while (Clock::now() < until) {
    const Timed t = timed_get(person, "/real");
    EXPECT_EQ(t.response.status, 307) << t.response.summary();
    EXPECT_EQ(t.response.header("location"), "https://example.com/r");
    redirect_ms.push_back(static_cast<long>(t.took.count()));
    std::this_thread::sleep_for(50ms);
  }
  stop = true;
  scanning.join();

  ASSERT_FALSE(redirect_ms.empty());
  for (long ms : redirect_ms) EXPECT_LT(ms, kPrompt.count()) << "a redirect was slowed down";
  EXPECT_GE(held.load(), 1);
  EXPECT_EQ(not_held.load(), 0) << "answers of a tarpitted scanner came promptly";
  EXPECT_EQ(wrong.load(), 0) << "held answers must still be 404 with a JSON error";

  const long long delayed = metric(metrics_client, "origin_scanner_delayed_total");
  EXPECT_GE(delayed, 1 + held.load());
  EXPECT_EQ(metric(metrics_client, "origin_scanner_episodes_total"), 1);
  EXPECT_EQ(metric(metrics_client, "origin_scanner_tarpitted_clients"), 1);
  // One log line for the episode, not one per held answer.
  EXPECT_EQ(count_of(read_text(origin.log_path()), "scanner tarpitted"), 1u) << origin.log_tail();
}

TEST(OriginScannerTarpit, NeverHoldsAClientBelowTheThreshold) {
  TestDatabase db;
  OriginProcess origin(db.url(), tarpit_env());
  HttpClient person = origin.anonymous_client();
  // Half the threshold for 3 s: mistyped codes at a human's worst.
  const auto start = Clock::now();
  for (int i = 0; i < 3 * kThreshold / 2; ++i) {
    std::this_thread::sleep_until(start + i * (1000ms / (kThreshold / 2)));
    const Timed t = timed_get(person, "/typo" + std::to_string(i));
    EXPECT_EQ(t.response.status, 404);
    EXPECT_LT(t.took, kPrompt) << "answer " << i;
  }
  EXPECT_EQ(metric(person, "origin_scanner_delayed_total"), 0);
  EXPECT_EQ(metric(person, "origin_scanner_episodes_total"), 0);
}

TEST(OriginScannerTarpit, ZeroDelayTurnsTheTarpitOff) {
  TestDatabase db;
  OriginProcess origin(db.url(), {{"SCANNER_THRESHOLD", "5"}, {"SCANNER_DELAY_MS", "0"}});
  HttpClient scanner = origin.anonymous_client();
  for (int i = 0; i < 60; ++i) {
    const Timed t = timed_get(scanner, "/nosuch" + std::to_string(i));
    EXPECT_EQ(t.response.status, 404);
    EXPECT_LT(t.took, kPrompt) << "answer " << i;
  }
  EXPECT_EQ(metric(scanner, "origin_scanner_delayed_total"), 0);
  EXPECT_EQ(metric(scanner, "origin_scanner_tracked_clients"), 0);
}

TEST(OriginScannerTarpit, CountsTheForwardedClientOfATrustedProxyInABoundedTable) {
  TestDatabase db;
  constexpr int kCapacity = 64;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 750;  // 3,000 distinct addresses, 47x the table
  OriginProcess origin(db.url(),
                       tarpit_env({{"TRUSTED_PROXIES", "127.0.0.1"},
                                   {"SCANNER_TRACKED_CLIENTS", std::to_string(kCapacity)}}));
  std::atomic<int> problems{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      HttpClient client = origin.anonymous_client();
      for (int i = 0; i < kPerThread; ++i) {
        const int n = t * kPerThread + i;
        const std::string xff = "10." + std::to_string(n >> 16) + "." +
                                std::to_string((n >> 8) & 255) + "." + std::to_string(n & 255);
        // The same unknown code: answered from the negative cache.
        const Timed r = timed_get(client, "/nosuch", {{"X-Forwarded-For", xff}});
        if (r.response.status != 404 || r.took >= kDelay - 50ms) ++problems;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(problems.load(), 0) << "one unknown code per address must never be held";

  HttpClient m = origin.anonymous_client();
  EXPECT_EQ(metric(m, "origin_scanner_tracked_clients_max"), kCapacity);
  EXPECT_EQ(metric(m, "origin_scanner_tracked_clients"), kCapacity);
  EXPECT_GE(metric(m, "origin_scanner_evictions_total"), kThreads * kPerThread - kCapacity);
  EXPECT_EQ(metric(m, "origin_scanner_delayed_total"), 0);

  // A scanner behind the proxy is told apart by its forwarded address: it is
  // held, the proxy's other clients are not.
  HttpClient scanner = origin.anonymous_client();
  scanner.set_timeout(10s);
  const Headers from_scanner = {{"X-Forwarded-For", "198.51.100.9"}};
  EXPECT_GE(prompt_answers_until_held(scanner, "scan", 200, from_scanner), kThreshold);
  HttpClient other = origin.anonymous_client();
  const Timed t = timed_get(other, "/nosuch-other", {{"X-Forwarded-For", "198.51.100.10"}});
  EXPECT_EQ(t.response.status, 404);
  EXPECT_LT(t.took, kPrompt);
  EXPECT_EQ(metric(m, "origin_scanner_episodes_total"), 1);
}

TEST(OriginScannerTarpit, IgnoresForwardedForFromAnUntrustedPeer) {
  TestDatabase db;
  OriginProcess origin(db.url(), tarpit_env());  // TRUSTED_PROXIES empty
  HttpClient scanner = origin.anonymous_client();
  scanner.set_timeout(10s);
  int prompt = -1;
  for (int i = 0; i < 200 && prompt < 0; ++i) {
    // A new made-up address every time: must not make a new client.
    const Timed t = timed_get(scanner, "/spoof" + std::to_string(i),
                              {{"X-Forwarded-For", "203.0.113." + std::to_string(i % 250)}});
    EXPECT_EQ(t.response.status, 404);
    if (t.took >= kDelay - 50ms) prompt = i;
  }
  EXPECT_GE(prompt, kThreshold) << "never held: the spoofed addresses were believed";
}

}  // namespace
}  // namespace integration
