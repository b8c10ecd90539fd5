// Cache misses of distinct codes are looked up in batches: one query for all
// the codes waiting when a database worker becomes free. Seen from outside
// (the real binary over HTTP, a real PostgreSQL) and at the store.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <pqxx/pqxx>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/pg_pool.h"
#include "integration/support/http_client.h"
#include "integration/support/process.h"
#include "integration/support/test_env.h"
#include "origin/pg_link_store.h"

namespace integration {
namespace {

using namespace std::chrono_literals;

// One code of the mix and what GET /{code} must answer.
struct Expected {
  std::string code;
  int status;            // 307, 404 or 410
  std::string location;  // for 307
};

// Inserts, with SQL (so no origin has them cached), `n` links of each kind:
// active (307 to a target naming the code), disabled and expired (410); and
// names `n` codes that do not exist (404). Returns them interleaved.
std::vector<Expected> seed_mix(const std::string& url, const std::string& prefix, int n) {
  pqxx::connection conn(url);
  pqxx::work txn(conn);
  std::vector<Expected> mix;
  for (int i = 0; i < n; ++i) {
    const std::string k = std::to_string(i);
    const std::string active = prefix + "a" + k, disabled = prefix + "d" + k,
                      expired = prefix + "e" + k, unknown = prefix + "u" + k;
    const std::string target = "https://example.com/" + active;
    txn.exec("INSERT INTO links (code, target) VALUES (" + txn.quote(active) + ", " +
             txn.quote(target) + ")");
    txn.exec("INSERT INTO links (code, target, disabled) VALUES (" + txn.quote(disabled) +
             ", 'https://example.com/off', true)");
    txn.exec("INSERT INTO links (code, target, expires_at) VALUES (" + txn.quote(expired) +
             ", 'https://example.com/old', now() - interval '1 hour')");
    mix.push_back({active, 307, target});
    mix.push_back({disabled, 410, ""});
    mix.push_back({expired, 410, ""});
    mix.push_back({unknown, 404, ""});
  }
  txn.commit();
  return mix;
}

// One round: `links` locked, so that the first queries wait and the other
// misses queue behind them as under load; one GET per element of `mix` at
// once, each on its own connection; the lock released `hold` after every
// request was sent and had time to arrive. Statuses and Locations by index,
// and the growth of the lookup and query counters.
struct Round {
  std::vector<int> status;
  std::vector<std::string> location;
  long long lookups = -1;
  long long queries = -1;
};
Round locked_round(const OriginProcess& origin, const std::string& database_url,
                   const std::vector<Expected>& mix, std::chrono::milliseconds hold = 0ms) {
  HttpClient metrics = origin.anonymous_client();
  const long long lookups0 = metric(metrics, "origin_redirect_store_lookups_total");
  const long long queries0 = metric(metrics, "origin_redirect_store_queries_total");
  if (lookups0 < 0 || queries0 < 0) throw std::runtime_error("no lookup or query counter");
  pqxx::connection locker(database_url);
  pqxx::work lock_txn(locker);
  lock_txn.exec("LOCK TABLE links IN ACCESS EXCLUSIVE MODE");

  Round round;
  round.status.assign(mix.size(), 0);
  round.location.assign(mix.size(), "");
  std::atomic<std::size_t> sent{0};
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < mix.size(); ++i) {
    threads.emplace_back([&, i] {
      try {
        HttpClient client = origin.anonymous_client(60s);
        ++sent;
        const Response r = client.get("/" + mix[i].code);
        round.status[i] = r.status;
        round.location[i] = r.header("location");
      } catch (const std::exception&) {
        ++sent;
        round.status[i] = -1;
      }
    });
  }
  while (sent.load() < mix.size()) std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(700ms + hold);
  lock_txn.abort();
  for (auto& t : threads) t.join();
  round.lookups = metric(metrics, "origin_redirect_store_lookups_total") - lookups0;
  round.queries = metric(metrics, "origin_redirect_store_queries_total") - queries0;
  return round;
}

// The answers of one request after the other, without a lock.
Round sequential_round(const OriginProcess& origin, const std::vector<Expected>& mix) {
  HttpClient client = origin.anonymous_client();
  Round round;
  for (const Expected& e : mix) {
    const Response r = client.get("/" + e.code);
    round.status.push_back(r.status);
    round.location.push_back(r.header("location"));
  }
  return round;
}

// Every answer as `mix` expects; returns a description of the first wrong one.
std::string wrong_answers(const std::vector<Expected>& mix, const Round& answers) {
  std::string wrong;
  int count = 0;
  for (std::size_t i = 0; i < mix.size(); ++i) {
    const bool ok = answers.status[i] == mix[i].status &&
                    (mix[i].status != 307 || answers.location[i] == mix[i].location);
    if (ok) continue;
    if (count++ == 0) {
      wrong = "/" + mix[i].code + ": got " + std::to_string(answers.status[i]) + " " +
              answers.location[i] + ", want " + std::to_string(mix[i].status) + " " +
              mix[i].location;
    }
  }
  return count == 0 ? "" : std::to_string(count) + " wrong, first " + wrong;
}

// A lookup held by the lock must neither time out nor expire in the queue.
const Environment kPatientDatabase{{"DB_STATEMENT_TIMEOUT_MS", "20000"},
                                   {"DB_ACQUIRE_TIMEOUT_MS", "20000"}};

Environment with(Environment env, const std::string& name, const std::string& value) {
  env[name] = value;
  return env;
}

TEST(RedirectBatches, ConcurrentMissesOfDistinctCodesAreAnsweredCorrectlyWithFewerQueries) {
  TestDatabase db;
  OriginProcess origin(db.url(), kPatientDatabase);
  const std::vector<Expected> mix = seed_mix(db.url(), "mix", 30);  // 120 codes
  const Round round = locked_round(origin, db.url(), mix);

  EXPECT_EQ(wrong_answers(mix, round), "");
  EXPECT_EQ(round.lookups, static_cast<long long>(mix.size())) << "one lookup per distinct code";
  // At most REDIRECT_BATCH_QUERIES (DB_POOL_SIZE: 5) queries can be held by
  // the lock; the codes queued behind them go in far fewer queries than codes.
  EXPECT_GE(round.queries, 1);
  EXPECT_LE(round.queries, static_cast<long long>(mix.size()) / 4)
      << round.queries << " queries for " << mix.size() << " codes";

  // The batches filled the cache, positive and negative entries alike.
  HttpClient client = origin.anonymous_client();
  const long long lookups = metric(client, "origin_redirect_store_lookups_total");
  EXPECT_EQ(wrong_answers(mix, sequential_round(origin, mix)), "");
  EXPECT_EQ(metric(client, "origin_redirect_store_lookups_total"), lookups)
      << "the second round was answered from the cache";
}

TEST(RedirectBatches, AFreeWorkerTakesEverythingThatQueuedWhileItWasBusy) {
  TestDatabase db;
  OriginProcess origin(db.url(), with(kPatientDatabase, "REDIRECT_BATCH_QUERIES", "1"));
  const std::vector<Expected> mix = seed_mix(db.url(), "one", 20);  // 80 codes
  const Round round = locked_round(origin, db.url(), mix);

  EXPECT_EQ(wrong_answers(mix, round), "");
  EXPECT_EQ(round.lookups, static_cast<long long>(mix.size()));
  // The first query held whatever had arrived when it started; everything
  // else arrived while it waited and went in the next one.
  EXPECT_GE(round.queries, 1);
  EXPECT_LE(round.queries, 2);
}

TEST(RedirectBatches, CodesAboveTheBatchCapGoInSeveralQueries) {
  TestDatabase db;
  OriginProcess origin(db.url(), with(with(kPatientDatabase, "REDIRECT_BATCH_QUERIES", "1"),
                                      "REDIRECT_BATCH_MAX_CODES", "10"));
  const std::vector<Expected> mix = seed_mix(db.url(), "cap", 10);  // 40 codes
  const Round round = locked_round(origin, db.url(), mix);

  EXPECT_EQ(wrong_answers(mix, round), "");
  // 40 codes, at most 10 per query: at least 4 queries; the first held
  // query may have taken fewer than 10, so at most 5.
  EXPECT_GE(round.queries, 4);
  EXPECT_LE(round.queries, 5);
}

TEST(RedirectBatches, AFailingQueryAnswersEveryRequestOfItsBatch503AndCachesNothing) {
  TestDatabase db;
  // The lock outlasts the statement timeout: every held query fails (57014,
  // an unavailability), as when the database is overloaded.
  OriginProcess origin(db.url(), {{"DB_STATEMENT_TIMEOUT_MS", "1500"},
                                  {"DB_ACQUIRE_TIMEOUT_MS", "20000"},
                                  {"REDIRECT_BATCH_QUERIES", "1"}});
  const std::vector<Expected> mix = seed_mix(db.url(), "fail", 10);  // 40 codes
  // Held until the queries (the first, then everything queued behind it)
  // have timed out: 2 x 1.5 s after the last request arrived, and more.
  const Round round = locked_round(origin, db.url(), mix, 4s);

  int unavailable = 0;
  for (int status : round.status) unavailable += status == 503;
  EXPECT_EQ(unavailable, static_cast<int>(mix.size())) << "every request of a failed batch: 503";
  EXPECT_EQ(round.lookups, static_cast<long long>(mix.size()));
  // One query per 1.5 s while the requests arrive: a few, not one per code.
  EXPECT_GE(round.queries, 1);
  EXPECT_LE(round.queries, 4);

  // Nothing of the failure was cached: the same codes are answered right
  // once the database answers.
  EXPECT_EQ(wrong_answers(mix, sequential_round(origin, mix)), "");
}

// The store itself: one query answers each code at its position, whatever
// the text (the codes travel as an array literal).
TEST(PgLinkStore, FindManyAnswersEveryCodeAtItsPosition) {
  TestDatabase db;
  {
    pqxx::connection conn(db.url());
    pqxx::work txn(conn);
    txn.exec(
        "INSERT INTO links (code, target, status, disabled) VALUES"
        " ('k1', 'https://example.com/1', 301, false),"
        " ('k2', 'https://example.com/2', 307, true),"
        " ('null', 'https://example.com/null', 302, false)");
    txn.commit();
  }
  core::DatabaseConfig config;
  config.url = db.url();
  config.pool_size = 1;
  config.max_overflow = 0;
  core::PgPool pool(config, origin::PgLinkStore::prepare_statements);
  origin::PgLinkStore store(pool, 7);

  const std::vector<std::string> codes = {"k2",   "nope", "k1",      "a,b",  "{k1}",
                                          "null", "NULL", "say\"hi", "x\\y", ""};
  const std::vector<std::optional<core::Link>> links = store.find_many(codes);
  ASSERT_EQ(links.size(), codes.size());
  const char* want[] = {"k2",   nullptr, "k1",    nullptr, nullptr,
                        "null", nullptr, nullptr, nullptr, nullptr};
  for (std::size_t i = 0; i < codes.size(); ++i) {
    if (want[i] == nullptr) {
      EXPECT_FALSE(links[i].has_value()) << "[" << i << "] " << codes[i];
    } else {
      ASSERT_TRUE(links[i].has_value()) << "[" << i << "] " << codes[i];
      EXPECT_EQ(links[i]->code, want[i]);
    }
  }
  EXPECT_EQ(links[0]->target, "https://example.com/2");
  EXPECT_TRUE(links[0]->disabled);
  EXPECT_EQ(links[2]->status, 301);
  EXPECT_EQ(links[5]->status, 302);
  EXPECT_TRUE(store.find_many({}).empty());
  const std::vector<std::optional<core::Link>> one = store.find_many({"k1"});
  ASSERT_EQ(one.size(), 1u);
  ASSERT_TRUE(one[0].has_value());
  EXPECT_EQ(one[0]->target, "https://example.com/1");
}

// The literal PostgreSQL parses is the list that was quoted.
TEST(PgLinkStore, TextArrayLiteralIsReadBackByPostgresUnchanged) {
  TestDatabase db;
  const std::vector<std::string> values = {"plain", "a,b",  "{x}",    " sp ", "NULL",
                                           "",      "q\"q", "b\\s\\", "é-ü",  "\"{,}\\"};
  pqxx::connection conn(db.url());
  pqxx::nontransaction txn(conn);
  conn.prepare("unnest", "SELECT v FROM unnest($1::text[]) WITH ORDINALITY AS t(v, n) ORDER BY n");
  const pqxx::result r = txn.exec_prepared("unnest", origin::text_array_literal(values));
  ASSERT_EQ(r.size(), values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(r[static_cast<pqxx::result::size_type>(i)][0].as<std::string>(), values[i])
        << "[" << i << "]";
  }
}

}  // namespace
}  // namespace integration
