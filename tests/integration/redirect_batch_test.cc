// Cache misses of distinct codes are looked up in batches: one query for all
// the codes waiting when a database worker becomes free. Seen from outside
// (the real binary over HTTP, a real PostgreSQL) and at the store.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <pqxx/pqxx>
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

// Sends one GET per element of `mix` at once, each on its own connection,
// while `links` is locked by the caller; releases the lock (by calling
// `release`) once every request was sent and had time to arrive. Returns
// the statuses and Locations seen, by index.
struct Answers {
  std::vector<int> status;
  std::vector<std::string> location;
};
template <typename Release>
Answers request_all_while_locked(const OriginProcess& origin, const std::vector<Expected>& mix,
                                 Release release) {
  Answers answers;
  answers.status.assign(mix.size(), 0);
  answers.location.assign(mix.size(), "");
  std::atomic<std::size_t> sent{0};
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < mix.size(); ++i) {
    threads.emplace_back([&, i] {
      try {
        HttpClient client = origin.anonymous_client(60s);
        ++sent;
        const Response r = client.get("/" + mix[i].code);
        answers.status[i] = r.status;
        answers.location[i] = r.header("location");
      } catch (const std::exception&) {
        ++sent;
        answers.status[i] = -1;
      }
    });
  }
  while (sent.load() < mix.size()) std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(700ms);  // let the last requests reach the server
  release();
  for (auto& t : threads) t.join();
  return answers;
}

// Every answer as `mix` expects; returns a description of the first wrong one.
std::string wrong_answers(const std::vector<Expected>& mix, const Answers& answers) {
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
  HttpClient setup = origin.client();
  const std::vector<Expected> mix = seed_mix(db.url(), "mix", 30);  // 120 codes
  const long long lookups0 = metric(setup, "origin_redirect_store_lookups_total");
  const long long queries0 = metric(setup, "origin_redirect_store_queries_total");
  ASSERT_GE(lookups0, 0);
  ASSERT_GE(queries0, 0);

  // The lock holds the first queries, so the other misses queue up behind
  // them, as under load.
  pqxx::connection locker(db.url());
  pqxx::work lock_txn(locker);
  lock_txn.exec("LOCK TABLE links IN ACCESS EXCLUSIVE MODE");
  const Answers answers = request_all_while_locked(origin, mix, [&] { lock_txn.abort(); });

  EXPECT_EQ(wrong_answers(mix, answers), "");
  const long long lookups = metric(setup, "origin_redirect_store_lookups_total") - lookups0;
  const long long queries = metric(setup, "origin_redirect_store_queries_total") - queries0;
  EXPECT_EQ(lookups, static_cast<long long>(mix.size())) << "one lookup per distinct code";
  // At most one query per database worker (15) can be held by the lock; the
  // codes queued behind them go in far fewer queries than codes.
  EXPECT_GE(queries, 1);
  EXPECT_LE(queries, static_cast<long long>(mix.size()) / 4)
      << queries << " queries for " << mix.size() << " codes";

  // The batch filled the cache, positive and negative entries alike.
  for (const Expected& e : mix) {
    const Response r = setup.get("/" + e.code);
    EXPECT_EQ(r.status, e.status) << e.code;
  }
  EXPECT_EQ(metric(setup, "origin_redirect_store_lookups_total") - lookups0,
            static_cast<long long>(mix.size()))
      << "the second round was answered from the cache";
}

TEST(RedirectBatches, AFreeWorkerTakesEverythingThatQueuedWhileItWasBusy) {
  TestDatabase db;
  OriginProcess origin(db.url(), with(kPatientDatabase, "REDIRECT_BATCH_QUERIES", "1"));
  HttpClient setup = origin.client();
  const std::vector<Expected> mix = seed_mix(db.url(), "one", 20);  // 80 codes
  const long long lookups0 = metric(setup, "origin_redirect_store_lookups_total");
  const long long queries0 = metric(setup, "origin_redirect_store_queries_total");

  pqxx::connection locker(db.url());
  pqxx::work lock_txn(locker);
  lock_txn.exec("LOCK TABLE links IN ACCESS EXCLUSIVE MODE");
  const Answers answers = request_all_while_locked(origin, mix, [&] { lock_txn.abort(); });

  EXPECT_EQ(wrong_answers(mix, answers), "");
  EXPECT_EQ(metric(setup, "origin_redirect_store_lookups_total") - lookups0,
            static_cast<long long>(mix.size()));
  // The first query held whatever had arrived when it started; everything
  // else arrived while it waited and went in the next one.
  EXPECT_LE(metric(setup, "origin_redirect_store_queries_total") - queries0, 2);
}

TEST(RedirectBatches, CodesAboveTheBatchCapGoInSeveralQueries) {
  TestDatabase db;
  OriginProcess origin(db.url(), with(with(kPatientDatabase, "REDIRECT_BATCH_QUERIES", "1"),
                                      "REDIRECT_BATCH_MAX_CODES", "10"));
  HttpClient setup = origin.client();
  const std::vector<Expected> mix = seed_mix(db.url(), "cap", 10);  // 40 codes
  const long long queries0 = metric(setup, "origin_redirect_store_queries_total");

  pqxx::connection locker(db.url());
  pqxx::work lock_txn(locker);
  lock_txn.exec("LOCK TABLE links IN ACCESS EXCLUSIVE MODE");
  const Answers answers = request_all_while_locked(origin, mix, [&] { lock_txn.abort(); });

  EXPECT_EQ(wrong_answers(mix, answers), "");
  // 40 codes, at most 10 per query: at least 4 queries; the first held
  // query may have taken fewer than 10, so at most 5.
  const long long queries = metric(setup, "origin_redirect_store_queries_total") - queries0;
  EXPECT_GE(queries, 4);
  EXPECT_LE(queries, 5);
}

TEST(RedirectBatches, AFailingQueryAnswersEveryRequestOfItsBatch503AndCachesNothing) {
  TestDatabase db;
  // The lock outlasts the statement timeout: every held query fails (57014,
  // an unavailability), as when the database is overloaded.
  OriginProcess origin(db.url(), {{"DB_STATEMENT_TIMEOUT_MS", "1500"},
                                  {"DB_ACQUIRE_TIMEOUT_MS", "20000"},
                                  {"REDIRECT_BATCH_QUERIES", "1"}});
  HttpClient setup = origin.client();
  const std::vector<Expected> mix = seed_mix(db.url(), "fail", 10);  // 40 codes
  const long long lookups0 = metric(setup, "origin_redirect_store_lookups_total");
  const long long queries0 = metric(setup, "origin_redirect_store_queries_total");

  pqxx::connection locker(db.url());
  pqxx::work lock_txn(locker);
  lock_txn.exec("LOCK TABLE links IN ACCESS EXCLUSIVE MODE");
  // Held until both queries (the first, then everything queued behind it)
  // have timed out: 2 x 1.5 s after the last request arrived, and more.
  const Answers answers = request_all_while_locked(origin, mix, [&] {
    std::this_thread::sleep_for(4s);
    lock_txn.abort();
  });

  int unavailable = 0;
  for (std::size_t i = 0; i < mix.size(); ++i) unavailable += answers.status[i] == 503;
  EXPECT_EQ(unavailable, static_cast<int>(mix.size())) << "every request of a failed batch: 503";
  EXPECT_EQ(metric(setup, "origin_redirect_store_lookups_total") - lookups0,
            static_cast<long long>(mix.size()));
  // One query per 1.5 s while the requests arrive: a few, not one per code.
  const long long queries = metric(setup, "origin_redirect_store_queries_total") - queries0;
  EXPECT_GE(queries, 1);
  EXPECT_LE(queries, 4);

  // Nothing of the failure was cached: the same codes are answered right
  // once the database answers.
  for (const Expected& e : mix) {
    const Response r = setup.get("/" + e.code);
    EXPECT_EQ(r.status, e.status) << e.code;
    if (e.status == 307) {
      EXPECT_EQ(r.header("location"), e.location) << e.code;
    }
  }
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
