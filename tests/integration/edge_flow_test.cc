// The edge as `scripts/up` runs it, end to end: `exporter edge-config` writes
// nginx.conf from nginx/edge.conf.template, `exporter compile` and `publish`
// put the export live in a real nginx in front of the real origin, `exporter
// watch` keeps it current and `origin ingest` loads nginx's visit log.
//
//  - Reload under load: repeated publishes of a 100,000-entry map while
//    keep-alive clients ask for exported and origin-only codes.
//  - Edge clicks reach the stats exactly once, through a log rotation and a
//    repeated ingest.
//  - A tombstoned code requested in another letter case goes to the origin.
//  - Changes made while watch's LISTEN connection was down are caught up.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iterator>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "exporter/publish.h"
#include "exporter/watch.h"
#include "integration/support/http_client.h"
#include "integration/support/load_driver.h"
#include "integration/support/nginx_process.h"
#include "integration/support/process.h"
#include "integration/support/test_env.h"

namespace integration {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A browser's user agent: clicks by scripts count as bots, not in `total`.
const Headers kBrowser = {{"User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"}};

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

std::size_t line_count(const std::string& path) {
  if (!fs::exists(path)) return 0;
  return count_of(read_text(path), "\n");
}

// The line count of `path` once it reaches `expected` (nginx writes a log
// line just after it sent the response), or after 3 s.
std::size_t lines_once(const std::string& path, std::size_t expected) {
  const auto deadline = Clock::now() + 3s;
  while (line_count(path) < expected && Clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  // A little longer, so that a line too many would show too.
  std::this_thread::sleep_for(50ms);
  return line_count(path);
}

// Lines of the edge's visit log once nginx has written what it buffered
// (access_log ... flush=1s in nginx/edge.conf.template).
std::size_t flushed_line_count(const std::string& path) {
  std::this_thread::sleep_for(1500ms);
  return line_count(path);
}

void exec_sql(const std::string& url, const std::string& sql) {
  pqxx::connection connection(url);
  pqxx::nontransaction tx(connection);
  tx.exec(sql);
}

class EdgeFlow : public ::testing::Test {
 protected:
  EdgeFlow() {
    root_ = make_nginx_readable_dir("edge-flow");
    exports_ = root_ + "/exports";
    edge_dir_ = root_ + "/edge";
    fs::create_directories(exports_);
    fs::create_directories(edge_dir_ + "/tmp");
    ::chmod(exports_.c_str(), 0755);
    ::chmod(edge_dir_.c_str(), 0755);
  }

  ~EdgeFlow() override {
    nginx_.reset();
    if (HasFailure()) {
      std::cerr << "kept " << root_ << "\n";
      return;
    }
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  // The exporter's environment: only what the test sets.
  Environment exporter_env(const Environment& extra = {}) const {
    Environment env = inherited_environment();
    for (auto it = env.begin(); it != env.end();) {
      const std::string& name = it->first;
      const bool exporter_setting = name.rfind("EXPORT_", 0) == 0 || name.rfind("EDGE_", 0) == 0 ||
                                    name.rfind("CLOUD", 0) == 0 || name == "NGINX_BIN" ||
                                    name == "ORIGIN_SERVERS";
      it = exporter_setting ? env.erase(it) : std::next(it);
    }
    env["DATABASE_URL"] = db_.url();
    for (const auto& [name, value] : extra) env[name] = value;
    return env;
  }

  std::string conf() const { return edge_dir_ + "/nginx.conf"; }
  std::string visit_log() const { return edge_dir_ + "/visits.jsonl"; }
  std::string watch_log() const { return root_ + "/watch.log"; }

  // nginx.conf through `exporter edge-config`, as scripts/up writes it.
  void write_edge_config() {
    const CommandResult run = run_command(
        {EXPORTER_BIN, "edge-config", "--template",
         std::string(PROJECT_SOURCE_DIR) + "/nginx/edge.conf.template", "--out", conf()},
        exporter_env({{"EXPORT_DIR", exporter_dir()},
                      {"EDGE_LISTEN", "127.0.0.1:" + std::to_string(edge_port_)},
                      {"ORIGIN_SERVERS", "127.0.0.1:" + std::to_string(origin_.port())},
                      {"EDGE_NGINX_PREFIX", edge_dir_},
                      {"EDGE_VISIT_LOG", visit_log()}}),
        30s);
    ASSERT_TRUE(run.exit && run.exit->success()) << run.describe();
  }
  const std::string& exporter_dir() const { return exports_; }

  CommandResult compile(const std::string& version, const std::vector<std::string>& flags,
                        const Environment& extra = {}) const {
    std::vector<std::string> argv = {EXPORTER_BIN, "compile",   "--out",
                                     exports_,     "--version", version};
    argv.insert(argv.end(), flags.begin(), flags.end());
    return run_command(argv, exporter_env(extra), 120s);
  }

  std::vector<std::string> publish_flags() const {
    return {"--exports",      exports_,
            "--nginx-conf",   conf(),
            "--nginx-prefix", edge_dir_ + "/",
            "--nginx-bin",    kNginx,
            "--probe",        "http://127.0.0.1:" + std::to_string(edge_port_) + "/_edge/version"};
  }

  CommandResult publish(const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> argv = {EXPORTER_BIN, "publish"};
    for (const std::string& flag : publish_flags()) argv.push_back(flag);
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_command(argv, exporter_env(), 120s);
  }

  // Compiles every active link as `version`, publishes it (nginx not running
  // yet: the live link is set) and starts nginx on it.
  void start_edge_on_all_links(const std::string& version) {
    ASSERT_NO_FATAL_FAILURE(write_edge_config());
    const CommandResult compiled = compile(version, {"--all"});
    ASSERT_TRUE(compiled.exit && compiled.exit->success()) << compiled.describe();
    const CommandResult published = publish();
    ASSERT_TRUE(published.exit && published.exit->success()) << published.describe();
    nginx_.emplace(edge_dir_, conf(), edge_port_, version);
  }

  // `exporter watch --all` with a one-hour interval: after its first cycle,
  // only link changes make it publish.
  void start_watch() {
    std::vector<std::string> argv = {EXPORTER_BIN, "watch", "--all"};
    for (const std::string& flag : publish_flags()) argv.push_back(flag);
    watch_.emplace(argv,
                   exporter_env({{"EXPORT_INTERVAL_S", "3600"}, {"EXPORT_DEBOUNCE_MS", "200"}}),
                   watch_log(), watch_log());
    ASSERT_TRUE(wait_watch_log("cycle in", 1, 60s)) << tail_of_file(watch_log());
  }

  // Waits until the watch log holds `text` at least `count` times.
  bool wait_watch_log(const std::string& text, std::size_t count, std::chrono::seconds limit) {
    const auto deadline = Clock::now() + limit;
    while (true) {
      if (count_of(read_text(watch_log()), text) >= count) return true;
      if (Clock::now() > deadline || !watch_->running()) return false;
      std::this_thread::sleep_for(20ms);
    }
  }

  // Polls the edge with GET `path` until `done` holds; returns the time
  // taken, or nullopt after `limit`.
  std::optional<std::chrono::milliseconds> until_edge(
      const std::string& path, const std::function<bool(const Response&)>& done,
      std::chrono::milliseconds limit = 10s) {
    const auto since = Clock::now();
    HttpClient client = nginx_->client(2000ms);
    while (Clock::now() - since < limit) {
      try {
        if (done(client.get(path))) {
          return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since);
        }
      } catch (const TransportError&) {
      }
      std::this_thread::sleep_for(10ms);
    }
    return std::nullopt;
  }

  // Takes the export lock, so that no cycle of the watcher can publish;
  // retries while a cycle holds it.
  std::optional<exporter::ExportLock> hold_export_lock() {
    const auto deadline = Clock::now() + 20s;
    while (Clock::now() < deadline) {
      if (auto lock = exporter::ExportLock::try_acquire(exports_)) return lock;
      std::this_thread::sleep_for(20ms);
    }
    return std::nullopt;
  }

  std::string create_link(const std::string& alias, const std::string& url) {
    const Response r = origin_.client().post_json(
        "/api/links", "{\"url\":\"" + url + "\",\"alias\":\"" + alias + "\"}");
    EXPECT_EQ(r.status, 201) << r.summary();
    return alias;
  }

  TestDatabase db_;
  OriginProcess origin_{db_.url(), {{"INGEST_POLL_MS", "100"}}};
  std::string root_;
  std::string exports_;
  std::string edge_dir_;
  uint16_t edge_port_ = free_port();
  std::optional<NginxProcess> nginx_;
  std::optional<Process> watch_;
};

// ---------------------------------------------------------------------------
// Reload under load.

constexpr int kMapLinks = 100000;
constexpr int kOriginLinks = 200;
constexpr int kPublishes = 3;  // after the first version

int status_of(int i) {
  return std::vector<int>{301, 302, 307, 308}[static_cast<std::size_t>(i % 4)];
}

std::string number6(int i) {
  const std::string n = std::to_string(i);
  return std::string(6 - n.size(), '0') + n;
}

// Exported codes whose target every version changes, and ones it keeps.
bool changes_per_version(int i) { return i % 1000 == 0; }

// Target of exported link i in version k (1-based).
std::string exported_target(int i, int k) {
  return "https://example.com/v" + std::to_string(changes_per_version(i) ? k : 1) + "/" +
         std::to_string(i);
}

// One request of the load: exported codes (answered by nginx from the map)
// and origin-only codes (proxied), each answer checked against the versions
// that may be live while it was asked: from the last one published before it
// to the one being published after it.
std::string reload_exchange(HttpClient& client, long n, const std::atomic<int>& live,
                            const std::atomic<int>& attempted) {
  // Thirds: exported and changing, exported and unchanged, origin-only.
  const int which = static_cast<int>(n % 3);
  const int spread = static_cast<int>((n / 3) % 100);
  const int i = which == 0 ? spread * 1000 : which == 1 ? spread * 1000 + 500 : spread;
  const std::string code = (which == 2 ? "o" : "r") + number6(i);
  const int lo = live.load();
  const Response r = client.get("/" + code, kBrowser);
  const int hi = attempted.load();
  bool right = false;
  if (which == 2) {
    right = r.header("location") == "https://example.com/origin/" + std::to_string(i);
  } else {
    for (int k = lo; k <= hi && !right; ++k) right = r.header("location") == exported_target(i, k);
  }
  right = right && r.status == status_of(i) && r.header("cache-control") == "private, max-age=90";
  if (right) return "";
  return code + " during versions " + std::to_string(lo) + ".." + std::to_string(hi) + ": " +
         r.summary() + " Location: " + r.header("location");
}

TEST_F(EdgeFlow, RepeatedPublishesOfA100kMapUnderLoadNeverAnswerWrongly) {
  exec_sql(db_.url(),
           "INSERT INTO links (code, target, status, forward_query)"
           " SELECT 'r' || lpad(i::text, 6, '0'), 'https://example.com/v1/' || i,"
           " (ARRAY[301, 302, 307, 308])[1 + i % 4], false"
           " FROM generate_series(0, " +
               std::to_string(kMapLinks - 1) +
               ") AS i;"
               "INSERT INTO links (code, target, status, forward_query)"
               " SELECT 'o' || lpad(i::text, 6, '0'), 'https://example.com/origin/' || i,"
               " (ARRAY[301, 302, 307, 308])[1 + i % 4], false"
               " FROM generate_series(0, " +
               std::to_string(kOriginLinks - 1) +
               ") AS i;"
               // Only the r-codes are hot, so only they are exported.
               "INSERT INTO visit_counts_hourly (code, hour, source, humans)"
               " SELECT code, date_trunc('hour', now()), 'edge', 1000 FROM links"
               " WHERE code LIKE 'r%'");
  const Environment selection = {{"EXPORT_STABLE_S", "0"}, {"EXPORT_MIN_CLICKS", "100"}};
  ASSERT_NO_FATAL_FAILURE(write_edge_config());
  const CommandResult first = compile("v1", {}, selection);
  ASSERT_TRUE(first.exit && first.exit->success()) << first.describe();
  const std::string map = read_text(exports_ + "/v1/edge_map.conf");
  ASSERT_NE(map.find("r099999 "), std::string::npos) << "hot: exported";
  ASSERT_EQ(map.find("o000000 "), std::string::npos) << "no clicks: left to the origin";
  const CommandResult first_publish = publish();
  ASSERT_TRUE(first_publish.exit && first_publish.exit->success()) << first_publish.describe();
  nginx_.emplace(edge_dir_, conf(), edge_port_, "v1");

  // The versions first (each after its change of the database), so that
  // the load is on while publishing, not while compiling.
  std::vector<std::int64_t> compile_ms;
  for (int k = 2; k <= kPublishes + 1; ++k) {
    exec_sql(db_.url(), "UPDATE links SET target = 'https://example.com/v" + std::to_string(k) +
                            "/' || substr(code, 2)::int"
                            " WHERE code LIKE 'r%' AND substr(code, 2)::int % 1000 = 0");
    const CommandResult compiled = compile("v" + std::to_string(k), {}, selection);
    ASSERT_TRUE(compiled.exit && compiled.exit->success()) << compiled.describe();
    compile_ms.push_back(compiled.elapsed.count());
  }

  std::atomic<int> live{1};
  std::atomic<int> attempted{1};
  LoadDriver load(
      edge_port_, 4,
      [&](HttpClient& client, long n) { return reload_exchange(client, n, live, attempted); },
      10000ms);
  std::vector<std::int64_t> publish_ms;
  std::this_thread::sleep_for(300ms);
  for (int k = 2; k <= kPublishes + 1; ++k) {
    const std::string version = "v" + std::to_string(k);
    attempted = k;
    const CommandResult published = publish({"--version", version});
    ASSERT_TRUE(published.exit && published.exit->code == 0) << published.describe();
    ASSERT_NE(published.err.find("published " + version), std::string::npos) << published.err;
    publish_ms.push_back(published.elapsed.count());
    EXPECT_EQ(nginx_->served_version(), version + "\n") << "the probe saw it, so must we";
    live = k;
    // Some load on the new version alone before the next reload.
    std::this_thread::sleep_for(300ms);
  }
  load.stop();

  std::ostringstream times;
  for (std::size_t v = 0; v < publish_ms.size(); ++v) {
    times << (v ? ", " : "") << "v" << v + 2 << " compiled in " << compile_ms[v]
          << " ms (no load), published in " << publish_ms[v] << " ms";
  }
  std::cout << "reload under load: " << kPublishes << " publishes of a " << kMapLinks
            << "-entry map (" << times.str() << "); " << load.requests() << " requests from 4"
            << " keep-alive clients, " << load.resent()
            << " sent again after a keep-alive connection closed before any response byte, "
            << load.wrong() << " wrong, " << load.failed() << " failed\n";
  EXPECT_GT(load.requests(), 1000);
  EXPECT_EQ(load.wrong(), 0) << load.first_problem();
  EXPECT_EQ(load.failed(), 0) << load.first_problem();
  HttpClient client = nginx_->client();
  EXPECT_EQ(client.get("/r005000").header("location"), exported_target(5000, kPublishes + 1));
  EXPECT_EQ(client.get("/r005500").header("location"), exported_target(5500, kPublishes + 1));
}

// ---------------------------------------------------------------------------
// Edge clicks in the stats.

struct Totals {
  std::int64_t total = -1;
  std::int64_t edge = -1;
  std::int64_t origin = -1;
  std::int64_t bots = -1;

  bool operator==(const Totals& o) const {
    return total == o.total && edge == o.edge && origin == o.origin && bots == o.bots;
  }
};

std::ostream& operator<<(std::ostream& out, const Totals& t) {
  return out << "total " << t.total << " (edge " << t.edge << ", origin " << t.origin << "), bots "
             << t.bots;
}

TEST_F(EdgeFlow, EdgeAndOriginClicksReachTheStatsExactlyOnceThroughRotationAndRepeatedIngest) {
  const std::string at_edge = create_link("edgeclick", "https://example.com/edge-landing");
  ASSERT_NO_FATAL_FAILURE(start_edge_on_all_links("v1"));
  // Created after the export: answered by the origin behind nginx.
  const std::string at_origin = create_link("originclick", "https://example.com/origin-landing");

  const std::string edge_source = "edge=" + visit_log();
  Process ingest(
      {ORIGIN_BIN, "ingest", "--source", edge_source},
      [&] {
        Environment env = inherited_environment();
        env["DATABASE_URL"] = db_.url();
        env["INGEST_POLL_MS"] = "100";
        env["INGEST_ROTATION_GRACE_MS"] = "500";
        return env;
      }(),
      root_ + "/ingest.log", root_ + "/ingest.log");

  HttpClient client = nginx_->client();
  int edge_clicks = 0;
  int origin_clicks = 0;
  // The exported code in several letter cases, with and without a query
  // nginx can append itself; the other code through nginx to the origin.
  auto click_batch = [&](int edge_n, int origin_n) {
    static const std::vector<std::string> kForms = {"/edgeclick", "/EdgeClick", "/EDGECLICK?a=1",
                                                    "/edgeclick?utm_source=x&b=2"};
    for (int n = 0; n < edge_n; ++n) {
      const std::string& path = kForms[static_cast<std::size_t>(n) % kForms.size()];
      const Response r = client.get(path, kBrowser);
      const std::size_t q = path.find('?');
      const std::string expected =
          "https://example.com/edge-landing" + (q == std::string::npos ? "" : path.substr(q));
      ASSERT_EQ(r.status, 307) << path << " " << r.summary();
      ASSERT_EQ(r.header("location"), expected) << path;
      ++edge_clicks;
    }
    for (int n = 0; n < origin_n; ++n) {
      const Response r = client.get(n % 2 ? "/originclick" : "/OriginClick", kBrowser);
      ASSERT_EQ(r.status, 307) << r.summary();
      ASSERT_EQ(r.header("location"), "https://example.com/origin-landing");
      ++origin_clicks;
    }
  };
  auto totals = [&](const std::string& code) {
    const Response r = origin_.client().get("/api/links/" + code + "/stats");
    const JsonBody body(r.body);
    return Totals{body.integer("total").value_or(-1), body.integer("by_source.edge").value_or(-1),
                  body.integer("by_source.origin").value_or(-1), body.integer("bots").value_or(-1)};
  };
  auto wait_totals = [&](const std::string& code, const Totals& expected) {
    const auto deadline = Clock::now() + 30s;
    while (!(totals(code) == expected) && Clock::now() < deadline) {
      std::this_thread::sleep_for(100ms);
    }
    return totals(code);
  };

  ASSERT_NO_FATAL_FAILURE(click_batch(37, 23));
  EXPECT_EQ(lines_once(visit_log(), 37), 37u) << "nginx logs its own answers, and only those";
  // The ingester follows the log: it has it open before the first rotation.
  // (Started only after a rotation, it would read the new file alone.)
  ASSERT_EQ(wait_totals(at_edge, Totals{37, 37, 0, 0}), (Totals{37, 37, 0, 0}))
      << tail_of_file(root_ + "/ingest.log");
  // These may still be unread when the file is renamed: the ingester reads
  // them through the descriptor it holds.
  ASSERT_NO_FATAL_FAILURE(click_batch(11, 0));

  // Rotation as logrotate does it: rename, then USR1 (nginx -s reopen).
  const int before_rotation = edge_clicks;
  fs::rename(visit_log(), visit_log() + ".1");
  nginx_->reopen_logs();
  const auto reopen_deadline = Clock::now() + 10s;
  while (!fs::exists(visit_log()) && Clock::now() < reopen_deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(fs::exists(visit_log())) << nginx_->log_tail();
  ASSERT_NO_FATAL_FAILURE(click_batch(29, 17));
  EXPECT_EQ(line_count(visit_log() + ".1") +
                lines_once(visit_log(), static_cast<std::size_t>(edge_clicks - before_rotation)),
            static_cast<std::size_t>(edge_clicks));

  const Totals edge_expected{edge_clicks, edge_clicks, 0, 0};
  const Totals origin_expected{origin_clicks, 0, origin_clicks, 0};
  EXPECT_EQ(wait_totals(at_edge, edge_expected), edge_expected)
      << tail_of_file(root_ + "/ingest.log");
  EXPECT_EQ(wait_totals(at_origin, origin_expected), origin_expected) << origin_.log_tail();

  // Stopped and run again over the same files: nothing is counted twice.
  const std::optional<ExitStatus> stopped = ingest.terminate(10s);
  ASSERT_TRUE(stopped.has_value());
  EXPECT_TRUE(stopped->success()) << stopped->describe();
  for (int run = 0; run < 2; ++run) {
    const CommandResult again =
        run_origin({"ingest", "--source", edge_source, "--once"}, {{"DATABASE_URL", db_.url()}});
    ASSERT_TRUE(again.exit && again.exit->success()) << again.describe();
  }
  std::this_thread::sleep_for(500ms);  // the origin's own ingester polls every 100 ms
  EXPECT_EQ(totals(at_edge), edge_expected);
  EXPECT_EQ(totals(at_origin), origin_expected);
  EXPECT_EQ(query_text(db_.url(),
                       "SELECT code, source, count(*) FROM visits GROUP BY 1, 2 ORDER BY 1, 2"),
            "edgeclick|edge|" + std::to_string(edge_clicks) + "\noriginclick|origin|" +
                std::to_string(origin_clicks) + "\n");
  std::cout << "edge clicks: " << edge_clicks << " at the edge and " << origin_clicks
            << " at the origin counted once each, across one log rotation and 2 repeated ingests\n";
}

// ---------------------------------------------------------------------------
// Tombstones and letter case; LISTEN connection lost.

// Every letter-case form of a 4-letter prefix of `code`, plus two more.
std::vector<std::string> case_forms(const std::string& code) {
  std::vector<std::string> forms;
  for (int mask = 0; mask < 16; ++mask) {
    std::string form = code;
    for (int bit = 0; bit < 4; ++bit) {
      if (mask & (1 << bit))
        form[static_cast<std::size_t>(bit)] =
            static_cast<char>(form[static_cast<std::size_t>(bit)] - 'a' + 'A');
    }
    forms.push_back(form);
  }
  std::string upper = code;
  for (char& c : upper) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  forms.push_back(upper);
  std::string last = code;
  last.back() = static_cast<char>(last.back() - 'a' + 'A');
  forms.push_back(last);
  return forms;
}

TEST_F(EdgeFlow, TombstonedCodeRequestedInAnyLetterCaseGoesToTheOrigin) {
  const std::string gone = create_link("casegone", "https://example.com/gone");
  const std::string moved = create_link("casemove", "https://example.com/before");
  const std::string kept = create_link("casekept", "https://example.com/kept");
  ASSERT_NO_FATAL_FAILURE(start_edge_on_all_links("v1"));
  ASSERT_NO_FATAL_FAILURE(start_watch());
  HttpClient client = nginx_->client();
  for (const std::string& form : case_forms(gone)) {
    ASSERT_EQ(client.get("/" + form, kBrowser).status, 307) << form << " is served before";
  }

  {
    // No cycle can publish while the test holds the lock: the tombstones
    // stay pending, and the map keeps the old answers.
    const std::optional<exporter::ExportLock> lock = hold_export_lock();
    ASSERT_TRUE(lock.has_value());
    HttpClient api = origin_.client();
    ASSERT_EQ(api.request("DELETE", "/api/links/" + gone).status, 200);
    ASSERT_EQ(
        api.patch_json("/api/links/" + moved, "{\"url\":\"https://example.com/after\"}").status,
        200);
    ASSERT_TRUE(wait_watch_log("tombstoned " + moved, 1, 10s)) << tail_of_file(watch_log());
    ASSERT_TRUE(fs::exists(exports_ + "/tombstones/" + gone));
    // open_file_cache_valid 1s: a cached "no tombstone" lasts at most a second.
    std::this_thread::sleep_for(1100ms);
    const std::size_t edge_lines = flushed_line_count(visit_log());
    for (const std::string& form : case_forms(gone)) {
      const Response r = client.get("/" + form, kBrowser);
      EXPECT_EQ(r.status, 410) << "/" << form << ": " << r.summary();
    }
    for (const std::string& form : case_forms(moved)) {
      const Response r = client.get("/" + form, kBrowser);
      EXPECT_EQ(r.header("location"), "https://example.com/after") << "/" << form;
    }
    for (const std::string& form : case_forms(kept)) {
      const Response r = client.get("/" + form, kBrowser);
      EXPECT_EQ(r.header("location"), "https://example.com/kept") << "/" << form;
    }
    // nginx answered only the untouched code's lowercase form itself; while
    // a tombstone is pending, every form with an uppercase letter goes to the
    // origin (nginx cannot lowercase it to find its tombstone).
    EXPECT_EQ(lines_once(visit_log(), edge_lines + 1), edge_lines + 1);
    EXPECT_NE(read_text(exports_ + "/live/edge_map.conf").find(gone), std::string::npos)
        << "still in the live map: only its tombstone keeps it from the edge";
  }
  // With the lock free, the next cycle publishes and removes the tombstones.
  ASSERT_TRUE(wait_watch_log("published", 1, 60s)) << tail_of_file(watch_log());
  const auto deadline = Clock::now() + 30s;
  while (fs::exists(exports_ + "/tombstones/" + gone) && Clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_FALSE(fs::exists(exports_ + "/tombstones/" + gone)) << tail_of_file(watch_log());
  EXPECT_FALSE(fs::exists(exports_ + "/tombstones/.any"));
  for (const std::string& form : {gone, std::string("CaseGone")}) {
    EXPECT_EQ(client.get("/" + form, kBrowser).status, 410) << form;
  }
  // No tombstone left: mixed case is answered by nginx again (once a cached
  // ".any exists" has expired).
  std::this_thread::sleep_for(1100ms);
  const std::size_t edge_lines = flushed_line_count(visit_log());
  EXPECT_EQ(client.get("/CaseMove", kBrowser).header("location"), "https://example.com/after");
  EXPECT_EQ(client.get("/CASEKEPT", kBrowser).header("location"), "https://example.com/kept");
  EXPECT_EQ(lines_once(visit_log(), edge_lines + 2), edge_lines + 2);
  EXPECT_TRUE(watch_->terminate(10s).has_value());
}

TEST_F(EdgeFlow, LinkDisabledWhileWatchWasNotListeningLeavesTheEdgeSoonAfterItReconnects) {
  const std::string code = create_link("downtime", "https://example.com/downtime");
  create_link("bystander", "https://example.com/bystander");
  ASSERT_NO_FATAL_FAILURE(start_edge_on_all_links("v1"));
  ASSERT_NO_FATAL_FAILURE(start_watch());
  HttpClient client = nginx_->client();
  ASSERT_EQ(client.get("/" + code, kBrowser).status, 307);

  // Held throughout: no cycle can publish, so only a tombstone can take the
  // link off the edge.
  const std::optional<exporter::ExportLock> lock = hold_export_lock();
  ASSERT_TRUE(lock.has_value());
  // Opened now: it stays usable while the database refuses new connections.
  pqxx::connection changer(db_.url());
  pqxx::connection admin(test_server_url());
  auto admin_exec = [&](const std::string& sql) {
    pqxx::nontransaction tx(admin);
    return tx.exec(sql);
  };
  const std::string database = admin.quote_name(db_.name());
  // Refuse new connections, so the watcher stays away until the test lets it
  // back; connections already open (the origin's, this test's) go on.
  admin_exec("ALTER DATABASE " + database + " WITH ALLOW_CONNECTIONS false");
  const pqxx::result listener = admin_exec(
      "SELECT pid FROM pg_stat_activity WHERE datname = " + admin.quote(db_.name()) +
      " AND application_name = " + admin.quote(std::string(exporter::kListenerApplicationName)));
  ASSERT_EQ(listener.size(), 1u) << "the watcher's LISTEN connection";
  admin_exec("SELECT pg_terminate_backend(" + listener[0][0].as<std::string>() + ")");
  ASSERT_TRUE(wait_watch_log("not listening for link changes", 1, 10s))
      << tail_of_file(watch_log());

  {
    pqxx::nontransaction tx(changer);
    tx.exec("UPDATE links SET disabled = true WHERE code = " + tx.quote(code));
  }
  // Its NOTIFY reached no exporter: the edge still answers from its map.
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(client.get("/" + code, kBrowser).status, 307);
  EXPECT_FALSE(fs::exists(exports_ + "/tombstones/" + code));

  admin_exec("ALTER DATABASE " + database + " WITH ALLOW_CONNECTIONS true");
  const std::optional<std::chrono::milliseconds> gone =
      until_edge("/" + code, [](const Response& r) { return r.status == 410; });
  ASSERT_TRUE(gone.has_value()) << "still served by the edge; " << tail_of_file(watch_log());
  // Reconnect attempts every 500 ms, then the tombstone (at most 1 s to show).
  EXPECT_LT(*gone, 5000ms);
  EXPECT_TRUE(wait_watch_log("listening for link changes again", 1, 1s));
  EXPECT_TRUE(wait_watch_log("tombstoned " + code, 1, 1s)) << tail_of_file(watch_log());
  EXPECT_EQ(client.get("/bystander", kBrowser).header("location"), "https://example.com/bystander");
  std::cout << "LISTEN connection lost: the link disabled meanwhile left the edge " << gone->count()
            << " ms after connections were allowed again\n";
  EXPECT_TRUE(watch_->terminate(10s).has_value());
}

}  // namespace
}  // namespace integration
