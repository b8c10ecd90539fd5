// /metrics, request ids and JSON logs of the real origin, and the exporter's
// textfile: values are read before and after the test drives traffic, so a
// counter that never moves fails.
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <pqxx/pqxx>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "integration/support/http_client.h"
#include "integration/support/process.h"
#include "integration/support/test_env.h"

namespace integration {
namespace {

using namespace std::chrono_literals;
using Labels = std::map<std::string, std::string>;

// A parsed exposition (text format 0.0.4): samples keyed by name and sorted
// labels. Throws on a line that is not valid, or a sample whose family had no
// # TYPE line before it.
class Exposition {
 public:
  explicit Exposition(const std::string& text) {
    static const std::regex sample(
        R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.eE+-]+|\+Inf|NaN)$)");
    static const std::regex label(R"re(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?)re");
    std::istringstream in(text);
    std::string line;
    std::map<std::string, std::string> types;
    while (std::getline(in, line)) {
      if (line.rfind("# TYPE ", 0) == 0) {
        std::istringstream t(line.substr(7));
        std::string name, type;
        t >> name >> type;
        types[name] = type;
        continue;
      }
      if (line.empty() || line[0] == '#') continue;
      std::smatch m;
      if (!std::regex_match(line, m, sample)) throw std::runtime_error("bad line: " + line);
      const std::string name = m[1];
      std::string family = name;
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        const std::string s = suffix;
        if (types.count(family) == 0 && name.size() > s.size() &&
            name.compare(name.size() - s.size(), s.size(), s) == 0) {
          family = name.substr(0, name.size() - s.size());
        }
      }
      if (types.count(family) == 0) throw std::runtime_error("no # TYPE before: " + line);
      Labels labels;
      const std::string label_text = m[3];
      for (std::sregex_iterator it(label_text.begin(), label_text.end(), label), end; it != end;
           ++it) {
        labels[(*it)[1]] = (*it)[2];
      }
      const std::string value = m[4];
      samples_[key(name, labels)] = value == "+Inf" ? 1e300 : std::stod(value);
    }
  }

  // The sample's value, or -1 when absent.
  double value(const std::string& name, const Labels& labels = {}) const {
    auto it = samples_.find(key(name, labels));
    return it == samples_.end() ? -1 : it->second;
  }

  // Sum over every sample of `name` whose labels include `match`.
  double sum(const std::string& name, const Labels& match) const {
    double total = 0;
    for (const auto& [k, v] : samples_) {
      if (k.rfind(name + "{", 0) != 0 && k != name) continue;
      bool ok = true;
      for (const auto& [lk, lv] : match) {
        ok = ok && k.find(lk + "=\"" + lv + "\"") != std::string::npos;
      }
      if (ok) total += v;
    }
    return total;
  }

 private:
  static std::string key(const std::string& name, const Labels& labels) {
    std::string k = name + "{";
    for (const auto& [lk, lv] : labels) k += lk + "=\"" + lv + "\",";
    return k + "}";
  }
  std::map<std::string, double> samples_;
};

Exposition scrape(HttpClient& client) {
  const Response r = client.get("/metrics");
  if (r.status != 200) throw std::runtime_error("GET /metrics: " + r.summary());
  EXPECT_EQ(r.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  return Exposition(r.body);
}

std::string create(HttpClient& client, const std::string& alias) {
  const Response r = client.post_json(
      "/api/links", R"({"url":"https://example.com/)" + alias + R"(","alias":")" + alias + "\"}");
  if (r.status != 201) throw std::runtime_error("create: " + r.summary());
  return alias;
}

struct ScratchDir {
  ScratchDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/it-metrics-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = pattern;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  std::string path;
};

// Every non-empty line of `text` parsed as a JSON object.
std::vector<rapidjson::Document> json_lines(const std::string& text, std::string* bad) {
  std::vector<rapidjson::Document> docs;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    rapidjson::Document doc;
    doc.Parse(line.c_str());
    if (doc.HasParseError() || !doc.IsObject()) {
      *bad += line + "\n";
      continue;
    }
    docs.push_back(std::move(doc));
  }
  return docs;
}

std::string field(const rapidjson::Document& doc, const char* name) {
  auto it = doc.FindMember(name);
  return it != doc.MemberEnd() && it->value.IsString() ? it->value.GetString() : "";
}

TEST(Metrics, RequestCountsLatencyAndCacheMoveWithTraffic) {
  TestDatabase db;
  OriginProcess origin(db.url(), {{"ORIGIN_THREADS", "2"}});
  HttpClient client = origin.client();
  const Exposition before = scrape(client);
  const std::string code = create(client, "metricsa");

  constexpr int kRedirects = 40;
  for (int i = 0; i < kRedirects; ++i) {
    ASSERT_EQ(client.get("/" + code).status, 307);
  }
  for (int i = 0; i < 3; ++i) ASSERT_EQ(client.get("/nosuchcode").status, 404);
  ASSERT_EQ(client.get("/healthz").status, 200);
  ASSERT_EQ(client.get("/api/links/" + code).status, 200);
  ASSERT_EQ(client.get("/no/such/path").status, 404);
  ASSERT_EQ(client.request("DELETE", "/healthz").status, 405);

  const Exposition after = scrape(client);
  const auto delta = [&](const std::string& name, const Labels& labels) {
    return after.value(name, labels) - std::max(0.0, before.value(name, labels));
  };
  EXPECT_EQ(delta("origin_http_requests_total", {{"route", "redirect"}, {"status", "307"}}),
            kRedirects);
  EXPECT_EQ(delta("origin_http_requests_total", {{"route", "redirect"}, {"status", "404"}}), 3);
  EXPECT_EQ(delta("origin_http_requests_total", {{"route", "create"}, {"status", "201"}}), 1);
  EXPECT_EQ(delta("origin_http_requests_total", {{"route", "health"}, {"status", "200"}}), 1);
  EXPECT_EQ(delta("origin_http_requests_total", {{"route", "health"}, {"status", "405"}}), 1);
  EXPECT_EQ(delta("origin_http_requests_total", {{"route", "link"}, {"status", "200"}}), 1);
  EXPECT_EQ(delta("origin_http_requests_total", {{"route", "other"}, {"status", "404"}}), 1);
  // The first scrape itself was counted before the second one rendered.
  EXPECT_GE(delta("origin_http_requests_total", {{"route", "metrics"}, {"status", "200"}}), 1);

  // Histogram: count matches the requests, +Inf bucket equals the count,
  // buckets are cumulative, the sum grew by something positive.
  const Labels redirect{{"route", "redirect"}};
  const double count = after.value("origin_http_request_duration_seconds_count", redirect);
  EXPECT_EQ(
      count - std::max(0.0, before.value("origin_http_request_duration_seconds_count", redirect)),
      kRedirects + 3);
  EXPECT_EQ(after.value("origin_http_request_duration_seconds_bucket",
                        {{"route", "redirect"}, {"le", "+Inf"}}),
            count);
  double previous = 0;
  for (const char* le : {"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
                         "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10"}) {
    const double bucket = after.value("origin_http_request_duration_seconds_bucket",
                                      {{"route", "redirect"}, {"le", le}});
    ASSERT_GE(bucket, previous) << "le=" << le;
    previous = bucket;
  }
  EXPECT_GT(after.value("origin_http_request_duration_seconds_sum", redirect),
            std::max(0.0, before.value("origin_http_request_duration_seconds_sum", redirect)));
  EXPECT_LT(after.value("origin_http_request_duration_seconds_sum", redirect), 60.0);

  // The cache: every redirect lookup is a hit, a negative hit or a miss;
  // each miss (one client: no concurrent misses) led one database lookup.
  // The first redirect of each code missed; the create's NOTIFY may drop the
  // new entry once more when it arrives after that first load, and on a
  // very loaded machine the negative entry (5 s) may expire once.
  const double hits = delta("origin_link_cache_hits_total", {});
  const double negative = delta("origin_link_cache_negative_hits_total", {});
  const double misses = delta("origin_link_cache_misses_total", {});
  EXPECT_EQ(hits + negative + misses, kRedirects + 3);
  EXPECT_GE(hits, kRedirects - 2);
  EXPECT_GE(negative, 1);
  EXPECT_GE(misses, 2);
  EXPECT_LE(misses, 4);
  EXPECT_EQ(delta("origin_redirect_flights_led_total", {}), misses);
  EXPECT_EQ(delta("origin_redirect_flights_joined_total", {}), 0);
  EXPECT_EQ(delta("origin_redirect_store_lookups_total", {}), misses);
  EXPECT_EQ(delta("origin_redirect_store_queries_total", {}), misses) << "one code per query";
  EXPECT_GE(after.value("origin_link_cache_entries"), 1);
  EXPECT_LE(after.value("origin_link_cache_entries"), 2);
  EXPECT_GT(after.value("origin_link_cache_bytes"), 0);

  // The pool: connections opened for the create and lookups, none lent now.
  EXPECT_GE(after.value("origin_db_pool_open"), 1);
  EXPECT_EQ(after.value("origin_db_pool_in_use"), 0);
  EXPECT_EQ(after.value("origin_db_pool_idle"), after.value("origin_db_pool_open"));
}

// Visits are journaled, then ingested: the journal and ingest metrics follow.
TEST(Metrics, JournalAndIngestFollowTheVisits) {
  TestDatabase db;
  OriginProcess origin(db.url(), {{"INGEST_POLL_MS", "100"}});
  HttpClient client = origin.client();
  const std::string code = create(client, "metricsj");
  constexpr int kVisits = 25;
  for (int i = 0; i < kVisits; ++i) ASSERT_EQ(client.get("/" + code).status, 307);
  // The journal holds the visit lines right after the redirects were sent.
  Exposition now = scrape(client);
  EXPECT_GE(now.value("origin_journal_files"), 1);
  EXPECT_GE(now.value("origin_journal_bytes"), kVisits * 50) << "about 100 bytes per visit";
  // The origin's own ingester commits them within a few poll intervals.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (now.sum("origin_ingest_lines_total", {}) < kVisits &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
    now = scrape(client);
  }
  EXPECT_EQ(now.sum("origin_ingest_lines_total", {}), kVisits);
  EXPECT_EQ(now.sum("origin_ingest_dead_letters_total", {}), 0);
  EXPECT_EQ(now.sum("origin_ingest_lag_bytes", {}), 0);
  EXPECT_EQ(now.sum("origin_ingest_database_up", {}), 1);
  EXPECT_EQ(now.value("origin_journal_oldest_complete_age_seconds"), 0);

  // A line that does not parse is dead-lettered and counted.
  {
    std::ofstream bad(origin.journal_dir() + "/manual-t0-00000000000000000001.jsonl",
                      std::ios::binary);
    bad << "this is not a visit\n";
  }
  const auto later = std::chrono::steady_clock::now() + 30s;
  while (now.sum("origin_ingest_dead_letters_total", {}) < 1 &&
         std::chrono::steady_clock::now() < later) {
    std::this_thread::sleep_for(100ms);
    now = scrape(client);
  }
  EXPECT_EQ(now.sum("origin_ingest_dead_letters_total", {}), 1);
}

// With both connections of a pool of one plus one overflow blocked, the
// gauges show them lent out, and the overflow connection is counted.
TEST(Metrics, PoolWaitsAndOverflowAreCounted) {
  TestDatabase db;
  OriginProcess origin(db.url(), {{"DB_POOL_SIZE", "1"},
                                  {"DB_MAX_OVERFLOW", "1"},
                                  {"DB_ACQUIRE_TIMEOUT_MS", "5000"},
                                  {"DB_STATEMENT_TIMEOUT_MS", "10000"}});
  HttpClient client = origin.client();
  const Exposition before = scrape(client);
  {
    pqxx::connection locker(db.url());
    pqxx::work lock_txn(locker);
    lock_txn.exec("LOCK TABLE links IN ACCESS EXCLUSIVE MODE");
    std::vector<std::thread> creates;
    for (int i = 0; i < 3; ++i) {
      creates.emplace_back([&origin, i] {
        HttpClient c = origin.client(20s);
        c.post_json("/api/links", R"({"url":"https://example.com/p)" + std::to_string(i) + "\"}");
      });
    }
    std::this_thread::sleep_for(1500ms);
    const Exposition during = scrape(client);
    EXPECT_EQ(during.value("origin_db_pool_in_use"), 2) << "both connections blocked";
    EXPECT_EQ(during.value("origin_db_pool_open"), 2);
    EXPECT_EQ(during.value("origin_db_pool_idle"), 0);
    lock_txn.abort();
    for (auto& t : creates) t.join();
  }
  const Exposition after = scrape(client);
  EXPECT_EQ(after.value("origin_db_pool_in_use"), 0);
  EXPECT_GE(after.value("origin_db_pool_overflow_opened_total") -
                std::max(0.0, before.value("origin_db_pool_overflow_opened_total")),
            1);
}

// Requests never wait for a connection (there are as many database workers
// as connections); the rate-limit janitor, running on its own thread, does
// when a request holds the only one. A create blocked on a table lock holds
// it while the janitor (every second) waits.
TEST(Metrics, PoolWaitsAreCountedWhileAllConnectionsAreLent) {
  TestDatabase db;
  OriginProcess origin(db.url(), {{"DB_POOL_SIZE", "1"},
                                  {"DB_MAX_OVERFLOW", "0"},
                                  {"RATE_LIMIT_CLEANUP_INTERVAL_S", "1"},
                                  {"DB_ACQUIRE_TIMEOUT_MS", "20000"},
                                  {"DB_STATEMENT_TIMEOUT_MS", "30000"}});
  ASSERT_TRUE(origin.wait_ready()) << origin.log_tail();
  HttpClient client = origin.client();
  const Exposition before = scrape(client);
  ASSERT_GE(before.value("origin_db_pool_waits_total"), 0);
  Response created;
  {
    pqxx::connection locker(db.url());
    pqxx::work lock_txn(locker);
    lock_txn.exec("LOCK TABLE links IN ACCESS EXCLUSIVE MODE");
    std::thread create([&origin, &created] {
      HttpClient c = origin.client(60s);
      created = c.post_json("/api/links", R"({"url":"https://example.com/waited"})");
    });
    // The janitor's next run finds the connection lent out and waits.
    double waiting = 0;
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (waiting < 1 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(100ms);
      waiting = scrape(client).value("origin_db_pool_waiting");
    }
    const Exposition during = scrape(client);
    lock_txn.abort();
    create.join();
    EXPECT_EQ(waiting, 1) << "a waiter seen within 20 s";
    EXPECT_EQ(during.value("origin_db_pool_in_use"), 1) << "the create holds the connection";
    EXPECT_GE(
        during.value("origin_db_pool_waits_total") - before.value("origin_db_pool_waits_total"), 1);
  }
  EXPECT_EQ(created.status, 201) << created.summary();
  // The woken waiter leaves the gauge once it runs: moments after the
  // create's answer, or later on a loaded machine.
  Exposition after = scrape(client);
  for (int i = 0; i < 100 && after.value("origin_db_pool_waiting") != 0; ++i) {
    std::this_thread::sleep_for(100ms);
    after = scrape(client);
  }
  EXPECT_EQ(after.value("origin_db_pool_waiting"), 0) << "within 10 s of the create";
  EXPECT_GE(after.value("origin_db_pool_waits_total") - before.value("origin_db_pool_waits_total"),
            1);
  EXPECT_EQ(after.value("origin_db_pool_timeouts_total"),
            before.value("origin_db_pool_timeouts_total"))
      << "the waiter got the connection once the create released it";
}

// `origin ingest` runs apart from the service: it leaves its metrics in a
// textfile for node_exporter.
TEST(Metrics, IngestCommandWritesATextfile) {
  TestDatabase db;
  ScratchDir dir;
  const std::string log = dir.path + "/edge.jsonl";
  {
    std::ofstream out(log, std::ios::binary);
    for (int i = 0; i < 3; ++i) {
      out << R"({"time":"2026-11-27T20:46:40.12)" << i
          << R"(Z","code":"summer","ip":"203.0.113.0","ua":"Mozilla/5.0","ref":"","status":307,"src":"edge"})"
          << "\n";
    }
    out << "not a visit\n";
  }
  const std::string metrics_file = dir.path + "/ingest.prom";
  const CommandResult run =
      run_origin({"ingest", "--source", "edge-a=" + log, "--once", "--metrics-file", metrics_file},
                 {{"DATABASE_URL", db.url()}, {"INGEST_POLL_MS", "20"}}, 90s);
  ASSERT_TRUE(run.exit && run.exit->success()) << run.describe();
  const Exposition metrics(read_text(metrics_file));
  EXPECT_EQ(metrics.value("origin_ingest_lines_total", {{"source", "edge-a"}}), 3);
  EXPECT_EQ(metrics.value("origin_ingest_dead_letters_total", {{"source", "edge-a"}}), 1);
  EXPECT_EQ(metrics.value("origin_ingest_lag_bytes", {{"source", "edge-a"}}), 0);
  EXPECT_EQ(metrics.value("origin_ingest_database_up", {{"source", "edge-a"}}), 1);
}

TEST(Metrics, RefusedOutsideMetricsAllow) {
  TestDatabase db;
  OriginProcess origin(db.url(), {{"METRICS_ALLOW", "10.0.0.0/8, 2001:db8::/32"}});
  HttpClient client = origin.client();
  const Response r = client.get("/metrics");
  EXPECT_TRUE(IsApiError(r, 403, "forbidden", std::nullopt)) << r.summary();
  EXPECT_EQ(r.body.find("origin_"), std::string::npos);
  EXPECT_EQ(client.get("/healthz").status, 200) << "only /metrics is restricted";

  OriginProcess allowed(db.url(), {{"METRICS_ALLOW", "10.0.0.0/8,127.0.0.1"}});
  HttpClient allowed_client = allowed.client();
  EXPECT_EQ(allowed_client.get("/metrics").status, 200);
}

TEST(Metrics, BadMetricsAllowStopsTheStart) {
  TestDatabase db;
  const CommandResult run = run_origin({"serve"},
                                       {{"DATABASE_URL", db.url()},
                                        {"ORIGIN_LISTEN", "127.0.0.1:1"},
                                        {"METRICS_ALLOW", "127.0.0.1/40"}},
                                       30s);
  ASSERT_TRUE(run.exit) << run.describe();
  EXPECT_EQ(run.exit->code, 1) << run.describe();
  EXPECT_NE(run.err.find("METRICS_ALLOW"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("127.0.0.1/40"), std::string::npos) << run.err;
}

TEST(RequestId, EchoedGeneratedAndInTheLogLines) {
  TestDatabase db;
  OriginProcess origin(db.url(), {{"ACCESS_LOG", "all"}});
  HttpClient client = origin.client();
  const std::string code = create(client, "reqid");
  ASSERT_EQ(client.get("/" + code).status, 307);  // now cached

  // Kept when valid, on the cached redirect path and the general one.
  Response r = client.get("/" + code, {{"X-Request-Id", "trace-1.a:b_C"}});
  EXPECT_EQ(r.status, 307);
  EXPECT_EQ(r.header("x-request-id"), "trace-1.a:b_C");
  r = client.get("/api/links/" + code, {{"X-Request-Id", "trace-2"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-request-id"), "trace-2");

  // Replaced when it could forge a log field or is too long.
  const std::regex generated("^[0-9a-f]{16}$");
  for (const std::string& bad : {std::string("has space"), std::string("quote\"x"),
                                 std::string(129, 'a'), std::string("")}) {
    r = client.get("/healthz", {{"X-Request-Id", bad}});
    EXPECT_TRUE(std::regex_match(r.header("x-request-id"), generated))
        << "'" << bad << "' -> '" << r.header("x-request-id") << "'";
  }
  // Generated ids differ from request to request.
  const std::string a = client.get("/" + code).header("x-request-id");
  const std::string b = client.get("/" + code).header("x-request-id");
  EXPECT_TRUE(std::regex_match(a, generated)) << a;
  EXPECT_NE(a, b);

  // Every log line is a JSON object with time, level and msg; the access
  // lines carry the request ids answered.
  std::string log;
  std::vector<rapidjson::Document> lines;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  bool found = false;
  while (!found && std::chrono::steady_clock::now() < deadline) {
    log = read_text(origin.log_path());
    std::string bad;
    lines = json_lines(log, &bad);
    ASSERT_EQ(bad, "") << "log lines that are not JSON";
    for (const auto& doc : lines) found = found || field(doc, "request_id") == b;
    if (!found) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(found) << log;
  bool trace1 = false;
  bool trace2 = false;
  for (const auto& doc : lines) {
    EXPECT_FALSE(field(doc, "time").empty());
    EXPECT_FALSE(field(doc, "level").empty());
    EXPECT_FALSE(field(doc, "msg").empty());
    if (field(doc, "msg") != "request") continue;
    if (field(doc, "request_id") == "trace-1.a:b_C") {
      trace1 = true;
      EXPECT_EQ(field(doc, "route"), "redirect");
      EXPECT_EQ(field(doc, "path"), "/" + code);
      ASSERT_TRUE(doc.HasMember("status") && doc["status"].IsInt());
      EXPECT_EQ(doc["status"].GetInt(), 307);
    }
    if (field(doc, "request_id") == "trace-2") {
      trace2 = true;
      EXPECT_EQ(field(doc, "route"), "link");
    }
  }
  EXPECT_TRUE(trace1) << log;
  EXPECT_TRUE(trace2) << log;
}

// By default (ACCESS_LOG=errors) a successful fast request writes no line.
TEST(RequestId, NoAccessLineForFastSuccessesByDefault) {
  TestDatabase db;
  OriginProcess origin(db.url());
  HttpClient client = origin.client();
  ASSERT_EQ(client.get("/healthz", {{"X-Request-Id", "quiet-1"}}).status, 200);
  ASSERT_EQ(client.get("/nosuch", {{"X-Request-Id", "quiet-2"}}).status, 404);
  std::this_thread::sleep_for(300ms);
  const std::string log = read_text(origin.log_path());
  EXPECT_EQ(log.find("quiet-1"), std::string::npos) << log;
  EXPECT_EQ(log.find("quiet-2"), std::string::npos) << log;
}

// The exporter keeps its metrics in a textfile that each run updates.
TEST(ExporterMetrics, TextfileMovesWithCompileAndPublish) {
  TestDatabase db;
  OriginProcess origin(db.url());
  HttpClient client = origin.client();
  create(client, "expa");
  create(client, "expb");
  ScratchDir dir;
  const std::string exports = dir.path + "/exports";
  const std::string metrics_file = dir.path + "/exporter.prom";
  Environment env = inherited_environment();
  env["DATABASE_URL"] = db.url();
  env["EXPORTER_METRICS_FILE"] = metrics_file;

  CommandResult run = run_command({EXPORTER_BIN, "compile", "--all", "--out", exports}, env, 60s);
  ASSERT_TRUE(run.exit && run.exit->success()) << run.describe();
  std::string bad;
  EXPECT_FALSE(json_lines(run.err, &bad).empty());
  EXPECT_EQ(bad, "") << "exporter log lines that are not JSON";
  Exposition first(read_text(metrics_file));
  EXPECT_EQ(first.value("exporter_compiled_entries", {{"target", "nginx"}}), 2);
  EXPECT_EQ(first.value("exporter_compiled_entries", {{"target", "input"}}), 2);
  EXPECT_EQ(first.value("exporter_runs_total", {{"command", "compile"}, {"outcome", "ok"}}), 1);
  const double first_success =
      first.value("exporter_last_success_timestamp_seconds", {{"command", "compile"}});
  EXPECT_GT(first_success, 1.7e9);
  EXPECT_GE(first.value("exporter_stage_duration_seconds", {{"stage", "compile"}}), 0);

  create(client, "expc");
  env.erase("EXPORTER_METRICS_FILE");  // the flag does the same
  run = run_command(
      {EXPORTER_BIN, "compile", "--all", "--out", exports, "--metrics-file", metrics_file}, env,
      60s);
  ASSERT_TRUE(run.exit && run.exit->success()) << run.describe();
  Exposition second(read_text(metrics_file));
  EXPECT_EQ(second.value("exporter_compiled_entries", {{"target", "nginx"}}), 3);
  EXPECT_EQ(second.value("exporter_runs_total", {{"command", "compile"}, {"outcome", "ok"}}), 2);
  EXPECT_GE(second.value("exporter_last_success_timestamp_seconds", {{"command", "compile"}}),
            first_success);

  // A publish against a configuration nginx refuses fails at validate: the
  // failure is counted by stage, the run by outcome, and compile's samples stay.
  const std::string conf = dir.path + "/nginx.conf";
  {
    std::ofstream out(conf);
    out << "events {}\nhttp { include " << exports << "/live/edge_map.conf; this_is_not_valid; }\n";
  }
  run = run_command(
      {EXPORTER_BIN, "publish", "--exports", exports, "--nginx-conf", conf, "--nginx-bin", kNginx,
       "--probe", "http://127.0.0.1:1/_edge/version", "--metrics-file", metrics_file},
      env, 60s);
  ASSERT_TRUE(run.exit) << run.describe();
  EXPECT_EQ(run.exit->code, 1) << run.describe();
  bad.clear();
  const auto lines = json_lines(run.err, &bad);
  EXPECT_EQ(bad, "");
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(field(lines.back(), "level"), "error");
  EXPECT_NE(field(lines.back(), "msg").find("failed at validate"), std::string::npos) << run.err;
  Exposition third(read_text(metrics_file));
  EXPECT_EQ(third.value("exporter_failures_total", {{"stage", "validate"}}), 1);
  EXPECT_EQ(third.value("exporter_runs_total", {{"command", "publish"}, {"outcome", "failed"}}), 1);
  EXPECT_EQ(third.value("exporter_runs_total", {{"command", "compile"}, {"outcome", "ok"}}), 2);
  EXPECT_GT(third.value("exporter_stage_duration_seconds", {{"stage", "validate"}}), 0);
  EXPECT_EQ(third.value("exporter_last_success_timestamp_seconds", {{"command", "publish"}}), -1)
      << "never published";
  for (const auto& entry : std::filesystem::directory_iterator(dir.path)) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos)
        << "temporary file left: " << entry.path();
  }
}

}  // namespace
}  // namespace integration
