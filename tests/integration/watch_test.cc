// `exporter watch` against a real PostgreSQL, the real origin and a real nginx
// serving nginx/edge.conf.template with a 100,000-entry map: a link disabled
// or re-targeted while at the edge stops being served from the edge within
// 2 s (its tombstone sends it to the origin), the next publish makes the map
// agree and removes the tombstone; and what the tombstone check costs per
// request (printed, not asserted).

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <pqxx/pqxx>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "exporter/edge_config.h"
#include "integration/support/http_client.h"
#include "integration/support/nginx_process.h"
#include "integration/support/process.h"
#include "integration/support/test_env.h"

namespace integration {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kWrk = "/usr/bin/wrk";
constexpr int kLinks = 100000;

std::string code_of(int i) {
  std::string n = std::to_string(i);
  return "w" + std::string(6 - n.size(), '0') + n;
}

// Requests/s of `wrk -t1 -c64 -d<seconds>s` on `url`.
double wrk_rate(const std::string& url, int seconds) {
  const CommandResult run =
      run_command({kWrk, "-t1", "-c64", "-d" + std::to_string(seconds) + "s", url},
                  inherited_environment(), std::chrono::seconds(seconds + 30));
  const std::size_t at = run.out.find("Requests/sec:");
  if (!run.exit || !run.exit->success() || at == std::string::npos) {
    throw std::runtime_error("wrk failed: " + run.describe());
  }
  return std::stod(run.out.substr(at + 13));
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

class Watch : public ::testing::Test {
 protected:
  Watch() {
    root_ = make_nginx_readable_dir("watch");
    exports_ = root_ + "/exports";
    fs::create_directories(exports_);
    ::chmod(exports_.c_str(), 0755);
  }

  ~Watch() override {
    if (HasFailure()) {
      std::cerr << "kept " << root_ << "\n";
      return;
    }
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  // Writes <dir>/nginx.conf from the template; without_tombstones drops the
  // tombstone check (for the cost comparison).
  void write_conf(const std::string& dir, uint16_t port, bool without_tombstones) {
    fs::create_directories(dir + "/tmp");
    exporter::EdgeConfigParams params;
    params.prefix = dir;
    params.worker_processes = "1";
    params.listen = "127.0.0.1:" + std::to_string(port);
    params.origins = {"127.0.0.1:" + std::to_string(origin_.port())};
    params.export_dir = exports_ + "/live";
    params.visit_log_format = std::string(PROJECT_SOURCE_DIR) + "/nginx/visit_log.conf";
    params.visit_log = dir + "/visits.jsonl";
    std::string conf = exporter::render_edge_config(
        read_text(std::string(PROJECT_SOURCE_DIR) + "/nginx/edge.conf.template"), params);
    if (without_tombstones) {
      // Every `if (-f ...) { ... }` block and the open_file_cache lines go.
      std::istringstream lines(conf);
      std::string line;
      std::string kept;
      std::string block_end;  // the closing line of the block being dropped
      int dropped_blocks = 0;
      while (std::getline(lines, line)) {
        if (!block_end.empty()) {
          if (line == block_end) block_end.clear();
          continue;
        }
        const std::size_t if_at = line.find("if (-f ");
        if (if_at != std::string::npos && line.find_first_not_of(' ') == if_at) {
          block_end = std::string(if_at, ' ') + "}";
          ++dropped_blocks;
          continue;
        }
        if (line.find("open_file_cache") != std::string::npos &&
            line.find_first_not_of(' ') != line.find('#')) {
          continue;
        }
        kept += line + "\n";
      }
      if (dropped_blocks == 0) throw std::runtime_error("no tombstone check in the template");
      conf = kept;
    }
    write_text(dir + "/nginx.conf", conf);
  }

  Environment exporter_env() const {
    Environment env = inherited_environment();
    for (const char* name :
         {"EXPORT_DIR", "EXPORT_KEEP", "EDGE_LIVE_LINK", "EDGE_NGINX_CONF", "EDGE_NGINX_PREFIX",
          "EDGE_NGINX_PID", "EDGE_PROBE_URL", "EDGE_PROBE_TIMEOUT_S", "EDGE_LISTEN", "NGINX_BIN",
          "EDGE_TOMBSTONE_DIR", "EXPORT_INTERVAL_S", "EXPORT_DEBOUNCE_MS"}) {
      env.erase(name);
    }
    env["DATABASE_URL"] = db_.url();
    env["EXPORT_INTERVAL_S"] = "60";
    env["EXPORT_DEBOUNCE_MS"] = "500";
    env["EXPORTER_METRICS_FILE"] = root_ + "/exporter.prom";
    return env;
  }

  std::vector<std::string> publish_flags() const {
    return {"--exports",      exports_,
            "--nginx-conf",   root_ + "/edge/nginx.conf",
            "--nginx-prefix", root_ + "/edge/",
            "--nginx-bin",    kNginx,
            "--probe",        "http://127.0.0.1:" + std::to_string(edge_port_) + "/_edge/version"};
  }

  std::size_t tombstone_files() const {
    std::error_code ec;
    std::size_t n = 0;
    for (fs::directory_iterator it(exports_ + "/tombstones", ec), end; !ec && it != end;
         it.increment(ec)) {
      ++n;
    }
    return n;
  }

  // Polls the edge until `done(response)`; returns the time it took.
  template <typename Done>
  std::chrono::milliseconds until_edge(const std::string& path, Clock::time_point since,
                                       Done done) {
    HttpClient client("127.0.0.1", edge_port_, 2000ms);
    while (Clock::now() - since < 10s) {
      try {
        if (done(client.get(path))) {
          return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since);
        }
      } catch (const TransportError&) {
      }
      std::this_thread::sleep_for(5ms);
    }
    return 10000ms;
  }

  TestDatabase db_;
  OriginProcess origin_{db_.url()};
  std::string root_;
  std::string exports_;
  uint16_t edge_port_ = free_port();
};

TEST_F(Watch, DisabledOrRetargetedLinkLeavesTheEdgeWithinTwoSecondsInA100kMap) {
  {
    pqxx::connection connection(db_.url());
    pqxx::work tx(connection);
    tx.exec(
        "INSERT INTO links (code, target, status, forward_query)"
        " SELECT 'w' || lpad(i::text, 6, '0'), 'https://example.com/t/' || i, 307, false"
        " FROM generate_series(0, " +
        std::to_string(kLinks - 1) + ") AS i");
    tx.commit();
  }
  write_conf(root_ + "/edge", edge_port_, false);
  const Environment env = exporter_env();
  const CommandResult compile = run_command(
      {EXPORTER_BIN, "compile", "--all", "--out", exports_, "--version", "v1"}, env, 120s);
  ASSERT_TRUE(compile.exit && compile.exit->success()) << compile.describe();
  std::vector<std::string> publish = {EXPORTER_BIN, "publish"};
  for (const std::string& flag : publish_flags()) publish.push_back(flag);
  const CommandResult first = run_command(publish, env, 120s);
  ASSERT_TRUE(first.exit && first.exit->success()) << first.describe();
  NginxProcess edge(root_ + "/edge", root_ + "/edge/nginx.conf", edge_port_, "v1");

  std::vector<std::string> watch_argv = {EXPORTER_BIN, "watch", "--all"};
  for (const std::string& flag : publish_flags()) watch_argv.push_back(flag);
  const std::string watch_log = root_ + "/watch.log";
  Process watch(watch_argv, env, watch_log, watch_log);
  auto wait_log = [&](const std::string& text, std::size_t count, std::chrono::seconds limit) {
    const auto deadline = Clock::now() + limit;
    while (true) {
      const std::string log = read_text(watch_log);
      std::size_t n = 0;
      for (std::size_t at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) {
        ++n;
      }
      if (n >= count) return true;
      if (Clock::now() > deadline || !watch.running()) return false;
      std::this_thread::sleep_for(20ms);
    }
  };
  // Listening, and the cycle that follows (unchanged: same links).
  ASSERT_TRUE(wait_log("cycle in", 1, 60s)) << tail_of_file(watch_log);
  EXPECT_NE(read_text(watch_log).find("unchanged"), std::string::npos) << tail_of_file(watch_log);

  HttpClient api = origin_.client();
  HttpClient edge_client("127.0.0.1", edge_port_);
  const std::string disabled = code_of(123);
  const std::string moved = code_of(4567);
  ASSERT_EQ(edge_client.get("/" + disabled).status, 307);
  ASSERT_EQ(edge_client.get("/" + moved).header("location"), "https://example.com/t/4567");

  // (a) Disabled through the API.
  const Response del = api.request("DELETE", "/api/links/" + disabled);
  const Clock::time_point disabled_at = Clock::now();
  ASSERT_EQ(del.status, 200) << del.summary();
  const std::chrono::milliseconds disable_latency =
      until_edge("/" + disabled, disabled_at, [](const Response& r) { return r.status == 410; });
  EXPECT_LT(disable_latency, 2000ms);
  EXPECT_TRUE(fs::exists(exports_ + "/tombstones/" + disabled));

  // (b) Re-targeted through the API; the request in mixed case too (.any).
  const Response patch =
      api.patch_json("/api/links/" + moved, "{\"url\":\"https://example.com/moved\"}");
  const Clock::time_point moved_at = Clock::now();
  ASSERT_EQ(patch.status, 200) << patch.summary();
  const std::chrono::milliseconds move_latency =
      until_edge("/" + moved, moved_at, [](const Response& r) {
        return r.status == 307 && r.header("location") == "https://example.com/moved";
      });
  EXPECT_LT(move_latency, 2000ms);
  std::string upper = moved;
  upper[0] = 'W';
  const std::chrono::milliseconds upper_latency = until_edge(
      "/" + upper, moved_at,
      [](const Response& r) { return r.header("location") == "https://example.com/moved"; });
  EXPECT_LT(upper_latency, 2000ms);
  std::cout << "edge stops serving a change: disabled after " << disable_latency.count()
            << " ms, re-targeted after " << move_latency.count() << " ms (mixed-case request "
            << upper_latency.count() << " ms), map of " << kLinks << " entries\n";

  // The next publish carries both changes; then the tombstones go.
  const auto deadline = Clock::now() + 60s;
  while (tombstone_files() != 0 && Clock::now() < deadline) std::this_thread::sleep_for(50ms);
  EXPECT_EQ(tombstone_files(), 0u) << tail_of_file(watch_log);
  // The cycle's line follows the removal of its tombstones: wait for it.
  EXPECT_TRUE(wait_log("published", 1, 10s)) << tail_of_file(watch_log);
  const std::string live_map = read_text(exports_ + "/live/edge_map.conf");
  EXPECT_EQ(live_map.find(disabled + " "), std::string::npos);
  EXPECT_NE(live_map.find(moved + " \"307f https://example.com/moved\""), std::string::npos);
  EXPECT_EQ(edge_client.get("/" + disabled).status, 410);
  EXPECT_EQ(edge_client.get("/" + moved).header("location"), "https://example.com/moved");
  EXPECT_EQ(edge_client.get("/" + code_of(99999)).header("location"),
            "https://example.com/t/99999");

  // The metrics textfile, shared by compile, publish and the watch's cycles
  // (written just after each cycle's publish).
  const std::string live_nginx = R"(exporter_live_entries{target="nginx"} )";
  const std::string expected_live = live_nginx + std::to_string(kLinks - 1) + "\n";
  // A change that came during a cycle leaves a tombstone for the next one,
  // so wait for the cycle that removed the last (its file is written after
  // its tombstones are gone).
  const auto settled = [this, &expected_live] {
    const std::string text = read_text(root_ + "/exporter.prom");
    return text.find(expected_live) != std::string::npos &&
           text.find("exporter_tombstones_pending 0\n") != std::string::npos;
  };
  const auto metrics_deadline = Clock::now() + 30s;
  while (!settled() && Clock::now() < metrics_deadline) {
    std::this_thread::sleep_for(50ms);
  }
  const std::string metrics = read_text(root_ + "/exporter.prom");
  const auto value_of = [&metrics](const std::string& series) {
    const std::size_t at = ("\n" + metrics).find("\n" + series + " ");
    return at == std::string::npos ? -1.0 : std::stod(metrics.substr(at + series.size() + 1));
  };
  EXPECT_NE(metrics.find(expected_live), std::string::npos) << metrics;
  EXPECT_GE(value_of(R"(exporter_runs_total{command="publish",outcome="unchanged"})"), 1)
      << "the first cycle\n"
      << metrics;
  EXPECT_GE(value_of(R"(exporter_runs_total{command="publish",outcome="published"})"), 2)
      << "the first publish and at least one cycle's\n"
      << metrics;
  EXPECT_GE(value_of(R"(exporter_runs_total{command="compile",outcome="ok"})"), 3) << metrics;
  EXPECT_NE(metrics.find("exporter_tombstones_pending 0\n"), std::string::npos) << metrics;

  // (c) Cost of the check on a map hit: the same export served by a second
  // nginx without the tombstone check, alternating wrk runs.
  const uint16_t plain_port = free_port();
  write_conf(root_ + "/plain", plain_port, true);
  const std::string live_version = fs::read_symlink(exports_ + "/live").string();
  NginxProcess plain(root_ + "/plain", root_ + "/plain/nginx.conf", plain_port, live_version);
  const std::string hit = "/" + code_of(777);
  std::vector<double> with_check;
  std::vector<double> without_check;
  for (const uint16_t port : {plain_port, edge_port_}) {
    const Response r = HttpClient("127.0.0.1", port).get(hit);
    ASSERT_EQ(r.status, 307) << r.summary();
    ASSERT_EQ(r.header("location"), "https://example.com/t/777");
  }
  const std::string with_url = "http://127.0.0.1:" + std::to_string(edge_port_) + hit;
  const std::string without_url = "http://127.0.0.1:" + std::to_string(plain_port) + hit;
  for (int round = 0; round < 4; ++round) {
    // Alternating which goes first, so neither always runs on a warmer CPU.
    if (round % 2 == 0) without_check.push_back(wrk_rate(without_url, 2));
    with_check.push_back(wrk_rate(with_url, 2));
    if (round % 2 == 1) without_check.push_back(wrk_rate(without_url, 2));
  }
  std::cout << "map hit, 1 worker, wrk -t1 -c64 -d2s, 4 rounds: with tombstone check";
  for (const double rate : with_check) std::cout << " " << static_cast<long>(rate);
  std::cout << " req/s; without";
  for (const double rate : without_check) std::cout << " " << static_cast<long>(rate);
  std::cout << " req/s; ratio of medians " << median(with_check) / median(without_check) << "\n";

  EXPECT_TRUE(watch.terminate(10s).has_value());
}

}  // namespace
}  // namespace integration
