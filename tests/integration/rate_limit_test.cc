// Creation rate limits shared by every instance through PostgreSQL, and the
// client address they count: X-Forwarded-For only from trusted proxies.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "integration/support/http_client.h"
#include "integration/support/process.h"
#include "integration/support/test_env.h"

namespace integration {
namespace {

using namespace std::chrono_literals;

const std::string kCreateBody = R"({"url":"https://example.com/limited"})";

// Waits until the database clock has at least `needed` left in its current
// minute, so a test's burst cannot straddle two windows.
void wait_for_room_in_window(const std::string& db_url, std::chrono::seconds needed) {
  const double second = std::stod(query_text(db_url, "SELECT extract(second FROM now())"));
  const double left = 60.0 - second;
  if (left < static_cast<double>(needed.count())) {
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(left * 1000) + 300));
  }
}

void wait_ready(const OriginProcess& origin) {
  ASSERT_TRUE(origin.wait_ready()) << "origin on port " << origin.port() << " not ready in 30 s";
}

Response create(HttpClient& client, const Headers& extra = {}) {
  Headers h = extra;
  h["Content-Type"] = "application/json";
  return client.request("POST", "/api/links", kCreateBody, h);
}

TEST(RateLimit, TwoInstancesShareOnePerIpLimit) {
  TestDatabase db;
  constexpr int kLimit = 200;
  constexpr int kThreads = 4;     // two per instance
  constexpr int kPerThread = 60;  // 240 attempts in all, 20% over
  const Environment env = {{"RATE_LIMIT_CREATE_PER_IP_PER_MIN", std::to_string(kLimit)},
                           {"RATE_LIMIT_CREATE_PER_KEY_PER_MIN", "0"}};
  OriginProcess a(db.url(), env);
  OriginProcess b(db.url(), env);
  // A link to follow while the limit bites (inserted with SQL: not counted).
  query_text(db.url(),
             "INSERT INTO links (code, target) VALUES ('follow', 'https://example.com/f')");
  wait_ready(a);
  wait_ready(b);
  wait_for_room_in_window(db.url(), 30s);

  std::mutex mu;
  std::vector<std::pair<int, Response>> answers;  // (thread, answer), in order per thread
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      HttpClient c = (t % 2 == 0 ? a : b).client(20s);
      for (int i = 0; i < kPerThread; ++i) {
        Response r = create(c);
        std::lock_guard<std::mutex> lock(mu);
        answers.emplace_back(t, std::move(r));
      }
    });
  }
  for (auto& t : threads) t.join();

  int created = 0;
  int limited = 0;
  bool refused_before[kThreads] = {};
  for (const auto& [t, r] : answers) {
    if (r.status == 201) {
      ++created;
      EXPECT_FALSE(refused_before[t]) << "thread " << t << " created a link after a 429";
    } else if (r.status == 429) {
      ++limited;
      refused_before[t] = true;
      EXPECT_TRUE(IsApiError(r, 429, "rate_limited", std::nullopt)) << r.summary();
      const std::string retry = r.header("retry-after");
      ASSERT_FALSE(retry.empty()) << "429 without Retry-After";
      EXPECT_GE(std::stoi(retry), 1);
      EXPECT_LE(std::stoi(retry), 60);
    } else {
      ADD_FAILURE() << "unexpected " << r.summary();
    }
  }
  std::cout << kThreads * kPerThread << " attempts through two instances: " << created
            << " created, " << limited << " refused with 429 (limit " << kLimit << ")\n";
  // "Within a few percent": the counters are exact, so this is the limit.
  EXPECT_GE(created, kLimit * 97 / 100);
  EXPECT_LE(created, kLimit * 103 / 100);
  EXPECT_EQ(created + limited, kThreads * kPerThread);
  EXPECT_EQ(query_text(db.url(), "SELECT count(*) FROM links WHERE code <> 'follow'"),
            std::to_string(created) + "\n");
  EXPECT_EQ(query_text(db.url(), "SELECT count(DISTINCT window_start) FROM rate_limit_counters"),
            "1\n")
      << "the burst straddled two windows; the counts above are not comparable";

  // Both instances keep refusing, and keep redirecting.
  for (OriginProcess* origin : {&a, &b}) {
    HttpClient c = origin->client();
    EXPECT_EQ(create(c).status, 429);
    for (int i = 0; i < 50; ++i) {
      const Response r = c.get("/follow");
      ASSERT_EQ(r.status, 307) << "redirect " << i << ": " << r.summary();
    }
  }

  // /metrics of both instances together count every 429 (the burst's and
  // the two above) as refused by the per-IP limit, none by the key limit.
  const auto scraped = [](OriginProcess& origin, const std::string& limit) {
    const Response r = origin.client().get("/metrics");
    const std::string prefix = "origin_rate_limit_rejections_total{limit=\"" + limit + "\"} ";
    const std::size_t at = r.body.find("\n" + prefix);
    if (r.status != 200 || at == std::string::npos) return -1L;
    return std::stol(r.body.substr(at + 1 + prefix.size()));
  };
  EXPECT_EQ(scraped(a, "ip") + scraped(b, "ip"), limited + 2);
  EXPECT_EQ(scraped(a, "key") + scraped(b, "key"), 0);
}

TEST(RateLimit, PerKeyLimitCountsEachKeyApart) {
  TestDatabase db;
  OriginProcess origin(db.url(), {{"RATE_LIMIT_CREATE_PER_IP_PER_MIN", "0"},
                                  {"RATE_LIMIT_CREATE_PER_KEY_PER_MIN", "10"}});
  auto new_key = [&](const std::string& name) {
    const CommandResult r =
        run_origin({"keys", "create", "--name", name}, {{"DATABASE_URL", db.url()}});
    EXPECT_TRUE(r.exit && r.exit->success()) << r.describe();
    return r.out.substr(0, r.out.find('\n'));
  };
  const std::string k1 = new_key("k1");
  const std::string k2 = new_key("k2");
  wait_ready(origin);
  wait_for_room_in_window(db.url(), 20s);
  HttpClient c = origin.anonymous_client();
  int first_refusal = -1;
  for (int i = 0; i < 15; ++i) {
    const Response r = create(c, {{"Authorization", "Bearer " + k1}});
    if (r.status == 429 && first_refusal < 0) {
      first_refusal = i;
      EXPECT_NE(r.body.find("with this API key"), std::string::npos) << r.summary();
      EXPECT_FALSE(r.header("retry-after").empty());
    }
  }
  EXPECT_EQ(first_refusal, 10) << "the 11th attempt is the first refused";
  EXPECT_EQ(create(c, {{"X-Api-Key", k2}}).status, 201) << "another key has its own count";
}

TEST(RateLimit, ForwardedForCountsOnlyFromATrustedProxy) {
  TestDatabase db;
  const Environment limits = {{"RATE_LIMIT_CREATE_PER_IP_PER_MIN", "5"},
                              {"RATE_LIMIT_CREATE_PER_KEY_PER_MIN", "0"}};
  Environment behind_proxy = limits;
  behind_proxy["TRUSTED_PROXIES"] = "10.0.0.0/8, 127.0.0.1/32";
  Environment exposed = limits;
  exposed["TRUSTED_PROXIES"] = "10.0.0.0/8";  // not loopback: our requests come straight
  OriginProcess trusting(db.url(), behind_proxy);
  wait_ready(trusting);
  wait_for_room_in_window(db.url(), 20s);

  HttpClient c = trusting.client();
  const Headers client_a = {{"X-Forwarded-For", "203.0.113.7"}};
  for (int i = 0; i < 5; ++i) ASSERT_EQ(create(c, client_a).status, 201) << i;
  EXPECT_EQ(create(c, client_a).status, 429);
  // Another client behind the same proxy has its own count; a spoofed
  // left-most entry does not move a client out of its bucket.
  EXPECT_EQ(create(c, {{"X-Forwarded-For", "203.0.113.8"}}).status, 201);
  EXPECT_EQ(create(c, {{"X-Forwarded-For", "198.51.100.99, 203.0.113.7"}}).status, 429);
  EXPECT_EQ(create(c, {{"X-Forwarded-For", "198.51.100.99, 203.0.113.9, 10.1.2.3"}}).status, 201);
  EXPECT_EQ(
      query_text(db.url(), "SELECT bucket || '=' || hits FROM rate_limit_counters ORDER BY bucket"),
      "ip:203.0.113.7=7\nip:203.0.113.8=1\nip:203.0.113.9=1\n");

  // An instance that does not trust the peer ignores the header: every
  // request counts against 127.0.0.1, whatever it claims.
  OriginProcess suspicious(db.url(), exposed);
  wait_ready(suspicious);
  HttpClient s = suspicious.client();
  for (int i = 0; i < 5; ++i) {
    const Response r = create(s, {{"X-Forwarded-For", "192.0.2." + std::to_string(i + 1)}});
    ASSERT_EQ(r.status, 201) << i << ": " << r.summary();
  }
  EXPECT_EQ(create(s, {{"X-Forwarded-For", "192.0.2.200"}}).status, 429);
  EXPECT_EQ(
      query_text(db.url(), "SELECT hits FROM rate_limit_counters WHERE bucket = 'ip:127.0.0.1'"),
      "6\n");
}

// RATE_LIMIT_EXEMPT_ADMIN=true: creations with an admin key are neither
// limited nor counted (an operator's bulk import); other keys, and requests
// without a key, keep both limits. Off by default: admin keys are limited.
TEST(RateLimit, AdminKeysAreExemptOnlyWhenConfigured) {
  TestDatabase db;
  const Environment limits = {{"RATE_LIMIT_CREATE_PER_IP_PER_MIN", "5"},
                              {"RATE_LIMIT_CREATE_PER_KEY_PER_MIN", "3"},
                              {"OPEN_SHORTEN", "true"}};
  Environment exempting = limits;
  exempting["RATE_LIMIT_EXEMPT_ADMIN"] = "true";
  OriginProcess origin(db.url(), exempting);
  const CommandResult made =
      run_origin({"keys", "create", "--name", "user"}, {{"DATABASE_URL", db.url()}});
  ASSERT_TRUE(made.exit && made.exit->success()) << made.describe();
  const std::string user_key = made.out.substr(0, made.out.find('\n'));
  wait_ready(origin);
  wait_for_room_in_window(db.url(), 30s);

  HttpClient admin = origin.client();
  for (int i = 0; i < 12; ++i) {
    const Response r = create(admin);
    ASSERT_EQ(r.status, 201) << "admin create " << i << ": " << r.summary();
  }
  EXPECT_EQ(query_text(db.url(), "SELECT count(*) FROM rate_limit_counters"), "0\n")
      << "exempt creations are not counted";
  // A user key from the same address: its own limit (3) bites first.
  HttpClient user = origin.anonymous_client();
  const Headers as_user = {{"Authorization", "Bearer " + user_key}};
  for (int i = 0; i < 3; ++i) ASSERT_EQ(create(user, as_user).status, 201) << i;
  const Response over_key = create(user, as_user);
  EXPECT_EQ(over_key.status, 429) << over_key.summary();
  EXPECT_NE(over_key.body.find("with this API key"), std::string::npos) << over_key.body;
  // Without a key (open mode) only the address counts: 4 attempts so far.
  EXPECT_EQ(create(user).status, 201);
  const Response over_ip = create(user);
  EXPECT_EQ(over_ip.status, 429) << over_ip.summary();
  EXPECT_NE(over_ip.body.find("from this address"), std::string::npos) << over_ip.body;
  EXPECT_EQ(create(admin).status, 201) << "the admin key still creates once the address is over";

  // The same limits without the setting: the admin key is limited like any.
  TestDatabase db2;
  OriginProcess strict(db2.url(), limits);
  wait_ready(strict);
  wait_for_room_in_window(db2.url(), 20s);
  HttpClient strict_admin = strict.client();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(create(strict_admin).status, 201) << i;
  const Response refused = create(strict_admin);
  EXPECT_EQ(refused.status, 429) << refused.summary();
  EXPECT_NE(refused.body.find("with this API key"), std::string::npos) << refused.body;
}

TEST(RateLimit, OldWindowsAreDeleted) {
  TestDatabase db;
  OriginProcess origin(db.url(), {{"RATE_LIMIT_CLEANUP_INTERVAL_S", "1"}});
  query_text(db.url(),
             "INSERT INTO rate_limit_counters (bucket, window_start, hits) VALUES"
             " ('ip:192.0.2.1', date_trunc('minute', now()) - interval '5 minutes', 9),"
             " ('ip:192.0.2.1', date_trunc('minute', now()) - interval '2 minutes', 9),"
             " ('ip:192.0.2.1', date_trunc('minute', now()) + interval '1 hour', 9)");
  std::string left;
  for (int i = 0; i < 100; ++i) {
    left = query_text(db.url(), "SELECT count(*) FROM rate_limit_counters");
    if (left == "1\n") break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(left, "1\n") << "windows older than the previous minute are gone within 10 s";
}

}  // namespace
}  // namespace integration
