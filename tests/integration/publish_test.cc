// `exporter publish` against a real nginx serving nginx/edge.conf.template
// from a live symlink: versions go live, unchanged ones cause no reload, bad
// ones are refused or rolled back while the old version keeps serving, runs
// never overlap, and old versions are pruned. No origin: the upstream is a
// closed port, and the tests only request exported codes.

#include "exporter/publish.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "exporter/bundle.h"
#include "exporter/bundle_writer.h"
#include "exporter/edge_config.h"
#include "integration/support/http_client.h"
#include "integration/support/load_driver.h"
#include "integration/support/nginx_process.h"
#include "integration/support/process.h"

namespace integration {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

void replace_once(std::string& text, const std::string& from, const std::string& to) {
  const std::size_t at = text.find(from);
  if (at == std::string::npos) throw std::runtime_error("no " + from + " in text");
  text.replace(at, from.size(), to);
}

std::string last_line(const std::string& text) {
  std::string line;
  std::istringstream lines(text);
  for (std::string l; std::getline(lines, l);) {
    if (!l.empty()) line = l;
  }
  return line;
}

// Codes every version serves; version `tag` sends code c to .../<tag>/c.
const std::vector<std::string> kCodes = {"alpha", "bravo", "charlie", "delta", "echo"};

std::vector<exporter::ExportEntry> entries_for(const std::string& tag,
                                               const std::vector<std::string>& extra = {}) {
  std::vector<exporter::ExportEntry> entries;
  std::vector<std::string> codes = kCodes;
  codes.insert(codes.end(), extra.begin(), extra.end());
  for (const std::string& code : codes) {
    exporter::ExportEntry e;
    e.code = code;
    e.target = "https://example.com/" + tag + "/" + code;
    e.status = 307;
    e.forward_query = false;
    entries.push_back(e);
  }
  return entries;
}

class Publish : public ::testing::Test {
 protected:
  Publish() {
    root_ = make_nginx_readable_dir("publish");
    exports_ = root_ + "/exports";
    link_ = exports_ + "/live";
    fs::create_directories(root_ + "/nginx/tmp");
    port_ = free_port();
    exporter::EdgeConfigParams params;
    params.prefix = root_ + "/nginx";
    params.worker_processes = "2";
    params.listen = "127.0.0.1:" + std::to_string(port_);
    params.origins = {"127.0.0.1:" + std::to_string(free_port())};
    params.export_dir = link_;
    params.visit_log_format = std::string(PROJECT_SOURCE_DIR) + "/nginx/visit_log.conf";
    params.visit_log = root_ + "/nginx/visits.jsonl";
    write_text(conf(), exporter::render_edge_config(
                           read_text(std::string(PROJECT_SOURCE_DIR) + "/nginx/edge.conf.template"),
                           params));
  }

  ~Publish() override {
    nginx_.reset();
    if (HasFailure()) {
      std::cerr << "kept " << root_ << "\n";
      return;
    }
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  std::string conf() const { return root_ + "/nginx/nginx.conf"; }
  std::string probe_url() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/_edge/version";
  }

  void write_version(const std::string& version, std::vector<exporter::ExportEntry> entries) {
    exporter::BundleOptions options;
    options.version = version;
    options.created_at = "2026-01-01T00:00:00Z";
    options.cloudflare.source_host = "sho.example.test";
    exporter::write_bundle(exporter::render_bundle(std::move(entries), options), exports_);
  }

  // A copy of version `from` as `to`, with a manifest digest of its own so
  // that publish does not call it unchanged.
  void copy_version(const std::string& from, const std::string& to) {
    fs::copy(exports_ + "/" + from, exports_ + "/" + to, fs::copy_options::recursive);
    std::string manifest = read_text(exports_ + "/" + to + "/manifest.json");
    replace_once(manifest, "\"version\":\"" + from + "\"", "\"version\":\"" + to + "\"");
    replace_once(manifest, "\"digest\":\"xxh3_64:", "\"digest\":\"xxh3_64:f00d");
    write_text(exports_ + "/" + to + "/manifest.json", manifest);
  }

  // Replaces `file` of `version` and gives its manifest the digest of the
  // files as they now are: a version as a faulty renderer would write it,
  // which publish's digest check cannot tell from a good one.
  void rewrite(const std::string& version, const std::string& file, const std::string& content) {
    const std::string folder = exports_ + "/" + version;
    write_text(folder + "/" + file, content);
    std::string manifest = read_text(folder + "/manifest.json");
    const std::string key = "\"digest\":\"xxh3_64:";
    const std::size_t at = manifest.find(key);
    ASSERT_NE(at, std::string::npos) << manifest;
    const std::size_t end = manifest.find('"', at + key.size());
    manifest.replace(at + key.size(), end - at - key.size(), exporter::folder_digest(folder));
    write_text(folder + "/manifest.json", manifest);
  }

  std::vector<std::string> command(const std::vector<std::string>& extra) const {
    std::vector<std::string> argv = {
        EXPORTER_BIN,  "publish",      "--exports", exports_,         "--live",
        link_,         "--nginx-conf", conf(),      "--nginx-prefix", root_ + "/nginx/",
        "--nginx-bin", kNginx,         "--probe",   probe_url()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  static Environment environment() {
    Environment env = inherited_environment();
    for (const char* name :
         {"EXPORT_DIR", "EXPORT_KEEP", "EDGE_LIVE_LINK", "EDGE_NGINX_CONF", "EDGE_NGINX_PREFIX",
          "EDGE_NGINX_PID", "EDGE_PROBE_URL", "EDGE_PROBE_TIMEOUT_S", "EDGE_LISTEN", "NGINX_BIN"}) {
      env.erase(name);
    }
    return env;
  }

  CommandResult publish(const std::vector<std::string>& extra = {}) const {
    return run_command(command(extra), environment(), 60s);
  }

  std::string live_target() const {
    std::error_code ec;
    return fs::read_symlink(link_, ec).string();
  }

  std::string served_version() const { return nginx_->served_version(); }

  void start_nginx(const std::string& version) {
    nginx_.emplace(root_ + "/nginx", conf(), port_, version);
  }

  std::string worker_pids() const { return nginx_->worker_pids(); }

  // Sets the live version to `version` (published while nginx is down) and
  // starts nginx on it.
  void start_on(const std::string& version) {
    const CommandResult first = publish({"--version", version});
    ASSERT_TRUE(first.exit && first.exit->code == 0) << first.describe();
    start_nginx(version);
  }

  uint16_t port_ = 0;
  std::string root_;
  std::string exports_;
  std::string link_;
  std::optional<NginxProcess> nginx_;
};

// Requests the base codes from 4 keep-alive clients until stopped; every
// answer but `tag`'s redirect is wrong.
class Load : public LoadDriver {
 public:
  Load(uint16_t port, const std::string& tag)
      : LoadDriver(port, 4, [tag](HttpClient& client, long n) {
          const std::string& code = kCodes[static_cast<std::size_t>(n) % kCodes.size()];
          const Response r = client.get("/" + code);
          const std::string expected = "https://example.com/" + tag + "/" + code;
          if (r.status == 307 && r.header("location") == expected) return std::string();
          return code + ": " + r.summary() + " " + r.header("location");
        }) {}
};

TEST_F(Publish, PutsTheNewestVersionLiveAndTheEdgeServesItsNewCodes) {
  write_version("v1", entries_for("one"));
  ASSERT_NO_FATAL_FAILURE(start_on("v1"));
  EXPECT_EQ(live_target(), "v1");
  HttpClient client("127.0.0.1", port_);
  EXPECT_EQ(client.get("/fresh").status, 502) << "not exported yet: proxied to a closed port";

  write_version("v2", entries_for("two", {"fresh"}));
  const CommandResult run = publish();
  ASSERT_TRUE(run.exit && run.exit->code == 0) << run.describe();
  EXPECT_NE(last_line(run.err).find("published v2"), std::string::npos) << run.err;
  EXPECT_NE(last_line(run.err).find("validated by its digest and nginx's reload"),
            std::string::npos)
      << run.err;
  EXPECT_EQ(live_target(), "v2");
  EXPECT_EQ(served_version(), "v2\n") << "publish returns once the probe shows the version";
  const Response fresh = client.get("/fresh");
  EXPECT_EQ(fresh.status, 307) << fresh.summary();
  EXPECT_EQ(fresh.header("location"), "https://example.com/two/fresh");
  EXPECT_EQ(client.get("/alpha").header("location"), "https://example.com/two/alpha");
}

TEST_F(Publish, SameDigestExitsUnchangedWithoutReloading) {
  write_version("v1", entries_for("one"));
  ASSERT_NO_FATAL_FAILURE(start_on("v1"));
  const std::string workers = worker_pids();
  ASSERT_FALSE(workers.empty());

  write_version("v2", entries_for("one"));
  const CommandResult run = publish();
  ASSERT_TRUE(run.exit && run.exit->code == 3) << run.describe();
  EXPECT_NE(last_line(run.err).find("unchanged"), std::string::npos) << run.err;
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(worker_pids(), workers) << "no reload: the same workers serve";
  EXPECT_EQ(live_target(), "v1");
  EXPECT_EQ(served_version(), "v1\n");
  EXPECT_FALSE(fs::exists(exports_ + "/v2")) << "the duplicate of the live version is removed";
}

TEST_F(Publish, VersionFailingNginxTestIsRefusedWhileTheOldOneServesUnderLoad) {
  write_version("v1", entries_for("one"));
  ASSERT_NO_FATAL_FAILURE(start_on("v1"));
  write_version("v2", entries_for("two"));
  const CommandResult good = publish();
  ASSERT_TRUE(good.exit && good.exit->code == 0) << good.describe();

  copy_version("v2", "v3");
  ASSERT_NO_FATAL_FAILURE(
      rewrite("v3", "edge_map.conf", "map $edge_code $edge_entry {\n    default \"\"\n"));
  const std::string workers = worker_pids();
  Load load(port_, "two");
  std::this_thread::sleep_for(200ms);
  const CommandResult bad = publish();
  std::this_thread::sleep_for(200ms);
  load.stop();

  ASSERT_TRUE(bad.exit && bad.exit->code == 1) << bad.describe();
  EXPECT_NE(last_line(bad.err).find("failed at validate"), std::string::npos) << bad.err;
  EXPECT_NE(last_line(bad.err).find("[emerg]"), std::string::npos) << bad.err;
  EXPECT_NE(last_line(bad.err).find("nginx refused it"), std::string::npos)
      << "refused by the reload itself, no nginx -t: " << bad.err;
  EXPECT_EQ(bad.err.find("nginx -t"), std::string::npos) << bad.err;
  EXPECT_EQ(live_target(), "v2");
  EXPECT_EQ(served_version(), "v2\n");
  EXPECT_EQ(worker_pids(), workers) << "nothing was reloaded";
  EXPECT_GT(load.requests(), 100);
  EXPECT_EQ(load.wrong(), 0) << load.first_problem();
  EXPECT_EQ(load.failed(), 0);
}

TEST_F(Publish, MapWithHashWarningsIsRefused) {
  write_version("v1", entries_for("one"));
  ASSERT_NO_FATAL_FAILURE(start_on("v1"));
  std::vector<std::string> same_first_letter;
  for (int i = 0; i < 60; ++i) same_first_letter.push_back("k" + std::to_string(i));
  write_version("v2", entries_for("two", same_first_letter));
  std::string map = read_text(exports_ + "/v2/edge_map.conf");
  // Below any size that fits: nginx warns "could not build optimal map_hash".
  const std::size_t at = map.find("map_hash_max_size ");
  ASSERT_NE(at, std::string::npos) << map.substr(0, 300);
  map.replace(at, map.find(';', at) - at, "map_hash_max_size 1");
  ASSERT_NO_FATAL_FAILURE(rewrite("v2", "edge_map.conf", map));
  const CommandResult run = publish();
  ASSERT_TRUE(run.exit && run.exit->code == 1) << run.describe();
  EXPECT_NE(last_line(run.err).find("[warn]"), std::string::npos) << run.err;
  EXPECT_NE(last_line(run.err).find("rolled back, v1 serves"), std::string::npos) << run.err;
  EXPECT_EQ(live_target(), "v1");
  EXPECT_EQ(served_version(), "v1\n");
}

// The same refusals with --validate nginx-t: before the swap, no reload.
TEST_F(Publish, NginxTestValidationRefusesBrokenAndWarningVersionsBeforeTheSwap) {
  write_version("v1", entries_for("one"));
  ASSERT_NO_FATAL_FAILURE(start_on("v1"));
  const std::string workers = worker_pids();
  write_version("v2", entries_for("two"));
  ASSERT_NO_FATAL_FAILURE(
      rewrite("v2", "edge_map.conf", "map $edge_code $edge_entry {\n    default \"\"\n"));
  const CommandResult broken = publish({"--validate", "nginx-t"});
  ASSERT_TRUE(broken.exit && broken.exit->code == 1) << broken.describe();
  EXPECT_NE(last_line(broken.err).find("failed at validate: nginx -t: "), std::string::npos)
      << broken.err;
  EXPECT_NE(last_line(broken.err).find("[emerg]"), std::string::npos) << broken.err;
  EXPECT_NE(last_line(broken.err).find("nothing changed"), std::string::npos) << broken.err;

  std::vector<std::string> same_first_letter;
  for (int i = 0; i < 60; ++i) same_first_letter.push_back("k" + std::to_string(i));
  write_version("v3", entries_for("three", same_first_letter));
  std::string map = read_text(exports_ + "/v3/edge_map.conf");
  const std::size_t at = map.find("map_hash_max_size ");
  ASSERT_NE(at, std::string::npos);
  map.replace(at, map.find(';', at) - at, "map_hash_max_size 1");
  ASSERT_NO_FATAL_FAILURE(rewrite("v3", "edge_map.conf", map));
  const CommandResult warned = publish({"--validate", "nginx-t", "--version", "v3"});
  ASSERT_TRUE(warned.exit && warned.exit->code == 1) << warned.describe();
  EXPECT_NE(last_line(warned.err).find("nginx -t: "), std::string::npos) << warned.err;
  EXPECT_NE(last_line(warned.err).find("[warn]"), std::string::npos) << warned.err;

  EXPECT_EQ(live_target(), "v1");
  EXPECT_EQ(served_version(), "v1\n");
  EXPECT_EQ(worker_pids(), workers) << "nothing was reloaded";

  write_version("v4", entries_for("four"));
  const CommandResult good = publish({"--validate", "nginx-t"});
  ASSERT_TRUE(good.exit && good.exit->code == 0) << good.describe();
  EXPECT_NE(last_line(good.err).find("validated by nginx -t"), std::string::npos) << good.err;
  EXPECT_EQ(served_version(), "v4\n");
}

// Warnings of a reload must be readable for it to validate: with the error
// log at nginx's default level (error), publish falls back to nginx -t.
TEST_F(Publish, WithTheErrorLogAboveWarnNginxTestValidates) {
  std::string config = read_text(conf());
  replace_once(config, "/error.log warn;", "/error.log;");
  write_text(conf(), config);
  write_version("v1", entries_for("one"));
  ASSERT_NO_FATAL_FAILURE(start_on("v1"));
  write_version("v2", entries_for("two"));
  const CommandResult run = publish();
  ASSERT_TRUE(run.exit && run.exit->code == 0) << run.describe();
  EXPECT_NE(run.err.find("nginx's reload cannot validate this publish: no error_log FILE at "
                         "level warn"),
            std::string::npos)
      << run.err;
  EXPECT_NE(last_line(run.err).find("validated by nginx -t"), std::string::npos) << run.err;
  EXPECT_EQ(served_version(), "v2\n");
}

// Files changed or damaged since compile (here a map cut short, as a full
// disk or a bad copy leaves it, which nginx might even load) never reach nginx.
TEST_F(Publish, FilesNotMatchingTheirDigestAreRefusedBeforeAnythingChanges) {
  write_version("v1", entries_for("one"));
  ASSERT_NO_FATAL_FAILURE(start_on("v1"));
  const std::string workers = worker_pids();
  write_version("v2", entries_for("two", {"fresh"}));
  const std::string map = exports_ + "/v2/edge_map.conf";
  fs::resize_file(map, fs::file_size(map) - 40);
  const CommandResult run = publish();
  ASSERT_TRUE(run.exit && run.exit->code == 1) << run.describe();
  const std::string line = last_line(run.err);
  EXPECT_NE(line.find("failed at validate: the files of "), std::string::npos) << run.err;
  EXPECT_NE(line.find("changed or damaged since compile; nothing changed"), std::string::npos)
      << run.err;
  EXPECT_EQ(live_target(), "v1");
  EXPECT_EQ(served_version(), "v1\n");
  EXPECT_EQ(worker_pids(), workers) << "nothing was reloaded";

  fs::remove(exports_ + "/v2/cloudfront_kvs.json");
  const CommandResult missing = publish();
  ASSERT_TRUE(missing.exit && missing.exit->code == 1) << missing.describe();
  EXPECT_NE(last_line(missing.err).find("cloudfront_kvs.json"), std::string::npos) << missing.err;
  EXPECT_EQ(live_target(), "v1");
}

TEST_F(Publish, VersionNeverSeenAtTheProbeIsRolledBackUnderLoadThenTheNextGoesLive) {
  write_version("v1", entries_for("one"));
  ASSERT_NO_FATAL_FAILURE(start_on("v1"));
  write_version("v2", entries_for("two"));
  const CommandResult good = publish();
  ASSERT_TRUE(good.exit && good.exit->code == 0) << good.describe();

  // Loads fine, but keeps announcing v2: the probe never sees v3. Same
  // answers for the loaded codes, so any other answer is a wrong one.
  write_version("v3", entries_for("two", {"extra"}));
  write_text(exports_ + "/v3/version.conf", read_text(exports_ + "/v2/version.conf"));
  Load load(port_, "two");
  std::this_thread::sleep_for(200ms);
  const CommandResult bad = publish({"--probe-timeout", "1.5"});
  std::this_thread::sleep_for(200ms);
  load.stop();

  ASSERT_TRUE(bad.exit && bad.exit->code == 1) << bad.describe();
  const std::string line = last_line(bad.err);
  EXPECT_NE(line.find("failed at probe"), std::string::npos) << bad.err;
  EXPECT_NE(line.find("rolled back, v2 serves"), std::string::npos) << bad.err;
  EXPECT_EQ(live_target(), "v2");
  EXPECT_EQ(served_version(), "v2\n");
  EXPECT_EQ(HttpClient("127.0.0.1", port_).get("/extra").status, 502)
      << "v3's extra code is gone again";
  EXPECT_GT(load.requests(), 100);
  EXPECT_EQ(load.wrong(), 0) << load.first_problem();
  EXPECT_EQ(load.failed(), 0) << "closed keep-alive connections are retried once";
  std::cout << "probe rollback under load: " << load.requests() << " requests, " << load.failed()
            << " transport errors, " << load.resent()
            << " sent again after a keep-alive connection closed before any response byte\n";

  write_version("v4", entries_for("four"));
  const CommandResult next = publish();
  ASSERT_TRUE(next.exit && next.exit->code == 0) << next.describe();
  EXPECT_EQ(served_version(), "v4\n") << next.describe();
  EXPECT_EQ(HttpClient("127.0.0.1", port_).get("/alpha").header("location"),
            "https://example.com/four/alpha");
}

TEST_F(Publish, ProbeOnAWrongPortRollsBack) {
  write_version("v1", entries_for("one"));
  ASSERT_NO_FATAL_FAILURE(start_on("v1"));
  write_version("v2", entries_for("two"));
  std::vector<std::string> argv = command({"--probe-timeout", "1"});
  const std::string wrong = "http://127.0.0.1:" + std::to_string(free_port()) + "/_edge/version";
  argv.push_back("--probe");
  argv.push_back(wrong);
  const CommandResult run = run_command(argv, environment(), 60s);
  ASSERT_TRUE(run.exit && run.exit->code != 0) << run.describe();
  EXPECT_NE(last_line(run.err).find("failed at probe"), std::string::npos) << run.err;
  EXPECT_EQ(live_target(), "v1");
  EXPECT_EQ(served_version(), "v1\n");
}

TEST_F(Publish, ConcurrentRunsNeverOverlap) {
  write_version("v1", entries_for("one"));
  ASSERT_NO_FATAL_FAILURE(start_on("v1"));

  {
    const std::optional<exporter::ExportLock> held = exporter::ExportLock::try_acquire(exports_);
    ASSERT_TRUE(held.has_value());
    write_version("v2", entries_for("two"));
    const CommandResult locked = publish();
    EXPECT_TRUE(locked.exit && locked.exit->code == 4) << locked.describe();
    EXPECT_NE(last_line(locked.err).find("held by another"), std::string::npos) << locked.err;
    const CommandResult compile = run_command(
        {EXPORTER_BIN, "synthesize", "--count", "3", "--out", exports_, "--version", "s1"},
        environment(), 60s);
    EXPECT_TRUE(compile.exit && compile.exit->code == 4) << compile.describe();
    EXPECT_FALSE(fs::exists(exports_ + "/s1"));
    EXPECT_EQ(live_target(), "v1");
  }

  // A slow run (its version never shows at the probe) and a second one.
  write_text(exports_ + "/v2/version.conf", read_text(exports_ + "/v1/version.conf"));
  Process slow(command({"--probe-timeout", "3"}), environment(), root_ + "/slow.out",
               root_ + "/slow.out");
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (tail_of_file(root_ + "/slow.out").find("validating") == std::string::npos) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << tail_of_file(root_ + "/slow.out");
    std::this_thread::sleep_for(10ms);
  }
  const CommandResult second = publish();
  EXPECT_TRUE(second.exit && second.exit->code == 4) << second.describe();
  const std::optional<ExitStatus> first = slow.wait_exit(20s);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->code, 1) << tail_of_file(root_ + "/slow.out");
  EXPECT_EQ(served_version(), "v1\n");
}

TEST_F(Publish, KeepsOnlyTheLastVersions) {
  for (const char* version : {"v1", "v2", "v3", "v4", "v9", "v10"}) {
    write_version(version, entries_for(version));
  }
  const CommandResult first = publish({"--version", "v3", "--keep", "2"});
  ASSERT_TRUE(first.exit && first.exit->code == 0) << first.describe();
  EXPECT_EQ(exporter::list_versions(exports_), (std::vector<std::string>{"v3", "v9", "v10"}))
      << "the two newest (natural order), and the live one";
  start_nginx("v3");

  const CommandResult second = publish({"--keep", "2"});
  ASSERT_TRUE(second.exit && second.exit->code == 0) << second.describe();
  EXPECT_EQ(served_version(), "v10\n");
  EXPECT_EQ(exporter::list_versions(exports_), (std::vector<std::string>{"v9", "v10"}));
}

// --metrics-file: each publish updates the textfile (runs by outcome, last
// success, live entries, stage durations), and the counts add up across runs.
TEST_F(Publish, MetricsFileFollowsEachPublish) {
  const std::string metrics = root_ + "/exporter.prom";
  const auto value = [&metrics](const std::string& series) {
    const std::string text = read_text(metrics);
    const std::size_t at = ("\n" + text).find("\n" + series + " ");
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + series.size() + 1));
  };
  write_version("v1", entries_for("one"));
  const CommandResult first = publish({"--version", "v1", "--metrics-file", metrics});
  ASSERT_TRUE(first.exit && first.exit->code == 0) << first.describe();
  start_nginx("v1");
  EXPECT_EQ(value(R"(exporter_runs_total{command="publish",outcome="published"})"), 1);
  const double first_success =
      value(R"(exporter_last_success_timestamp_seconds{command="publish"})");
  EXPECT_GT(first_success, 1.7e9);

  write_version("v2", entries_for("two", {"fresh", "fresher"}));
  const CommandResult second = publish({"--metrics-file", metrics});
  ASSERT_TRUE(second.exit && second.exit->code == 0) << second.describe();
  EXPECT_EQ(value(R"(exporter_runs_total{command="publish",outcome="published"})"), 2);
  EXPECT_EQ(value(R"(exporter_live_entries{target="nginx"})"),
            static_cast<double>(kCodes.size() + 2));
  EXPECT_GE(value(R"(exporter_last_success_timestamp_seconds{command="publish"})"), first_success);
  EXPECT_GT(value(R"(exporter_stage_duration_seconds{stage="validate"})"), 0);
  EXPECT_GT(value(R"(exporter_stage_duration_seconds{stage="activate"})"), 0)
      << "swap, reload and probe of a running nginx";
  EXPECT_EQ(value("exporter_tombstones_pending"), 0);

  write_version("v3", entries_for("two", {"fresh", "fresher"}));
  const CommandResult same = publish({"--metrics-file", metrics});
  ASSERT_TRUE(same.exit && same.exit->code == 3) << same.describe();
  EXPECT_EQ(value(R"(exporter_runs_total{command="publish",outcome="unchanged"})"), 1);
  EXPECT_EQ(value(R"(exporter_runs_total{command="publish",outcome="published"})"), 2);
  EXPECT_EQ(value(R"(exporter_failures_total{stage="validate"})"), -1) << "nothing failed";
}

}  // namespace
}  // namespace integration
