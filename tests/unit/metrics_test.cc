// The metrics registry, the text format helpers, address ranges, request ids
// and JSON log lines.
#include "origin/metrics.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/prom_text.h"
#include "exporter/metrics_file.h"
#include "origin/address_ranges.h"
#include "origin/log.h"

namespace {

using origin::metrics::Registry;
using origin::metrics::Route;
using namespace std::chrono_literals;

// The value of the sample whose line starts with `series` + ' ', or -1.
double sample(const std::string& text, const std::string& series) {
  const std::string key = "\n" + series + " ";
  const std::size_t at = ("\n" + text).find(key);
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + key.size() - 1));
}

TEST(MetricsRegistry, CountsRequestsByRouteAndStatusAcrossShards) {
  Registry registry;
  auto& a = registry.add_request_shard();
  auto& b = registry.add_request_shard();
  a.record(Route::kRedirect, 307, 50us);
  a.record(Route::kRedirect, 307, 300us);
  b.record(Route::kRedirect, 307, 2ms);
  b.record(Route::kRedirect, 404, 20us);
  b.record(Route::kCreate, 201, 3s);
  a.record(Route::kOther, 999, 1ms);
  const std::string text = registry.render();
  EXPECT_EQ(sample(text, R"(origin_http_requests_total{route="redirect",status="307"})"), 3);
  EXPECT_EQ(sample(text, R"(origin_http_requests_total{route="redirect",status="404"})"), 1);
  EXPECT_EQ(sample(text, R"(origin_http_requests_total{route="create",status="201"})"), 1);
  EXPECT_EQ(sample(text, R"(origin_http_requests_total{route="other",status="other"})"), 1);
  EXPECT_EQ(sample(text, R"(origin_http_requests_total{route="link",status="200"})"), -1)
      << "series never seen are left out";
}

TEST(MetricsRegistry, HistogramBucketsAreCumulativeWithCountAndSum) {
  Registry registry;
  auto& shard = registry.add_request_shard();
  shard.record(Route::kRedirect, 307, 50us);   // <= 0.0001
  shard.record(Route::kRedirect, 307, 100us);  // <= 0.0001 (bounds are inclusive)
  shard.record(Route::kRedirect, 307, 300us);  // <= 0.0005
  shard.record(Route::kRedirect, 307, 2ms);    // <= 0.0025
  shard.record(Route::kRedirect, 307, 20s);    // +Inf only
  const std::string text = registry.render();
  const std::string b = R"(origin_http_request_duration_seconds_bucket{route="redirect",le=")";
  const std::vector<std::pair<std::string, double>> expected = {
      {"0.0001", 2}, {"0.00025", 2}, {"0.0005", 3}, {"0.001", 3},
      {"0.0025", 4}, {"10", 4},      {"+Inf", 5}};
  for (const auto& [le, count] : expected) {
    EXPECT_EQ(sample(text, b + le + "\"}"), count) << "le=" << le;
  }
  EXPECT_EQ(sample(text, R"(origin_http_request_duration_seconds_count{route="redirect"})"), 5);
  EXPECT_NEAR(sample(text, R"(origin_http_request_duration_seconds_sum{route="redirect"})"),
              20.00245, 1e-9);
  EXPECT_EQ(sample(text, R"(origin_http_request_duration_seconds_count{route="create"})"), 0)
      << "every route has its histogram";
}

TEST(MetricsRegistry, CountsWrittenByTheirThreadsAddUp) {
  Registry registry;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    auto* shard = &registry.add_request_shard();
    threads.emplace_back([shard] {
      for (int i = 0; i < 10000; ++i) shard->record(Route::kRedirect, 302, 10us);
      shard->flight_led();
      shard->flight_joined();
      shard->flight_joined();
    });
  }
  EXPECT_FALSE(registry.render().empty());  // concurrent with the writers
  for (auto& t : threads) t.join();
  const std::string text = registry.render();
  EXPECT_EQ(sample(text, R"(origin_http_requests_total{route="redirect",status="302"})"), 40000);
  EXPECT_EQ(sample(text, "origin_redirect_flights_led_total"), 4);
  EXPECT_EQ(sample(text, "origin_redirect_flights_joined_total"), 8);
}

TEST(MetricsRegistry, NamedCountersAreSharedAndLabelled) {
  Registry registry;
  origin::metrics::Counter& ip = registry.counter("origin_rate_limit_rejections_total",
                                                  "Requests answered 429.", {{"limit", "ip"}});
  origin::metrics::Counter& again =
      registry.counter("origin_rate_limit_rejections_total", "ignored", {{"limit", "ip"}});
  origin::metrics::Counter& key =
      registry.counter("origin_rate_limit_rejections_total", "", {{"limit", "key"}});
  EXPECT_EQ(&ip, &again);
  ip.inc();
  again.inc(2);
  key.inc();
  const std::string text = registry.render();
  EXPECT_EQ(sample(text, R"(origin_rate_limit_rejections_total{limit="ip"})"), 3);
  EXPECT_EQ(sample(text, R"(origin_rate_limit_rejections_total{limit="key"})"), 1);
  EXPECT_NE(text.find("# HELP origin_rate_limit_rejections_total Requests answered 429.\n"
                      "# TYPE origin_rate_limit_rejections_total counter\n"),
            std::string::npos);
  EXPECT_THROW(registry.counter("no_suffix", "x"), std::invalid_argument);
  EXPECT_THROW(registry.counter("bad-name_total", "x"), std::invalid_argument);
}

TEST(MetricsRegistry, CollectorsAppendAtScrapeTime) {
  Registry registry;
  int value = 1;
  registry.add_collector([&value](core::PromText& out) {
    out.single("test_gauge", "gauge", "A test gauge.", std::uint64_t(value));
  });
  EXPECT_EQ(sample(registry.render(), "test_gauge"), 1);
  value = 7;
  EXPECT_EQ(sample(registry.render(), "test_gauge"), 7);
}

TEST(PromText, EscapesLabelValuesAndFormatsNumbers) {
  core::PromText out;
  out.family("x_total", "counter", "Help with \\ and\nnewline.");
  out.sample("x_total", {{"a", "q\"b\\c\nd"}}, 1.5);
  EXPECT_EQ(out.text(),
            "# HELP x_total Help with \\\\ and\\nnewline.\n# TYPE x_total counter\n"
            "x_total{a=\"q\\\"b\\\\c\\nd\"} 1.5\n");
  EXPECT_EQ(core::format_prom_value(3.0), "3");
  EXPECT_EQ(core::format_prom_value(0.00025), "0.00025");
  EXPECT_EQ(core::format_prom_value(1.0 / 0.0), "+Inf");
}

TEST(PromText, ReadsBackWhatItWrote) {
  core::PromText out;
  out.single("a_total", "counter", "A.", std::uint64_t{42});
  out.family("b", "gauge", "B.");
  out.sample("b", {{"t", "nginx"}}, 1764000000.25);
  const auto samples = core::read_prom_samples(out.text() + "garbage line\n");
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_EQ(samples.at("a_total"), 42);
  EXPECT_EQ(samples.at("b{t=\"nginx\"}"), 1764000000.25);
}

TEST(PromText, WritesFilesAtomically) {
  const std::string dir = testing::TempDir() + "/prom_text_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/m.prom";
  core::write_file_atomically(path, "a 1\n");
  core::write_file_atomically(path, "a 2\n");
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "a 2\n");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir),
                          std::filesystem::directory_iterator()),
            1)
      << "no temporary file left";
  EXPECT_THROW(core::write_file_atomically(dir + "/missing/m.prom", "x"), std::runtime_error);
  std::filesystem::remove_all(dir);
}

TEST(ExporterMetricsFile, CountersAddUpAcrossRunsAndGaugesAreReplaced) {
  const std::string dir = testing::TempDir() + "/exporter_metrics_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/exporter.prom";
  {
    exporter::MetricsFile run(path);
    run.add("exporter_runs_total", {{"command", "compile"}, {"outcome", "ok"}}, 1);
    run.set("exporter_compiled_entries", {{"target", "nginx"}}, 10);
    run.write();
  }
  {
    exporter::MetricsFile run(path);
    run.add("exporter_runs_total", {{"command", "compile"}, {"outcome", "ok"}}, 1);
    run.add("exporter_failures_total", {{"stage", "validate"}}, 1);
    run.set("exporter_compiled_entries", {{"target", "nginx"}}, 12);
    run.set("not_a_family", {}, 5);
    run.write();
  }
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  const auto samples = core::read_prom_samples(text.str());
  EXPECT_EQ(samples.at(R"(exporter_runs_total{command="compile",outcome="ok"})"), 2);
  EXPECT_EQ(samples.at(R"(exporter_failures_total{stage="validate"})"), 1);
  EXPECT_EQ(samples.at(R"(exporter_compiled_entries{target="nginx"})"), 12);
  EXPECT_EQ(samples.count("not_a_family"), 0u);
  EXPECT_NE(text.str().find("# TYPE exporter_runs_total counter\n"), std::string::npos);
  exporter::MetricsFile off("");
  off.add("exporter_runs_total", {}, 1);
  EXPECT_NO_THROW(off.write());
  std::filesystem::remove_all(dir);
}

struct RangeCase {
  const char* spec;
  const char* ip;
  bool contained;
};

TEST(AddressRanges, MatchesIpv4Ipv6AndMappedAddresses) {
  const RangeCase cases[] = {
      {"127.0.0.0/8,::1/128", "127.0.0.1", true},
      {"127.0.0.0/8,::1/128", "127.255.1.2", true},
      {"127.0.0.0/8,::1/128", "::1", true},
      {"127.0.0.0/8,::1/128", "::ffff:127.0.0.1", true},
      {"127.0.0.0/8,::1/128", "10.0.0.1", false},
      {"127.0.0.0/8,::1/128", "::2", false},
      {"10.1.0.0/16", "10.1.255.255", true},
      {"10.1.0.0/16", "10.2.0.0", false},
      {"192.168.1.7", "192.168.1.7", true},
      {"192.168.1.7", "192.168.1.8", false},
      {"10.0.0.0/9", "10.127.0.1", true},
      {"10.0.0.0/9", "10.128.0.1", false},
      {"2001:db8::/32", "2001:db8:ffff::1", true},
      {"2001:db8::/32", "2001:db9::1", false},
      {"0.0.0.0/0", "203.0.113.9", true},
      {"0.0.0.0/0", "2001:db8::1", false},
      {"::/0", "2001:db8::1", true},
      {" 10.0.0.0/8 , 127.0.0.1 ", "127.0.0.1", true},
      {"", "127.0.0.1", false},
      {"127.0.0.0/8", "not an ip", false},
      {"127.0.0.0/8", "", false},
  };
  for (const RangeCase& c : cases) {
    std::string error;
    auto ranges = origin::AddressRanges::parse(c.spec, &error);
    ASSERT_TRUE(ranges) << c.spec << ": " << error;
    EXPECT_EQ(ranges->contains(c.ip), c.contained) << c.spec << " contains " << c.ip;
  }
}

TEST(AddressRanges, RefusesMalformedItemsNamingThem) {
  for (const char* spec : {"127.0.0.1/33", "::1/129", "10.0.0.0/", "10.0.0.0/x", "localhost",
                           "10.0.0.0/8,300.1.1.1", "1.2.3.4/-1"}) {
    std::string error;
    EXPECT_FALSE(origin::AddressRanges::parse(spec, &error)) << spec;
    EXPECT_FALSE(error.empty()) << spec;
  }
  std::string error;
  origin::AddressRanges::parse("10.0.0.0/8, bogus", &error);
  EXPECT_NE(error.find("'bogus'"), std::string::npos) << error;
}

TEST(RequestIdFormat, AcceptsOnlyShortSafeIds) {
  EXPECT_TRUE(origin::is_valid_request_id("abc-123_X.y:z"));
  EXPECT_TRUE(origin::is_valid_request_id(std::string(128, 'a')));
  EXPECT_FALSE(origin::is_valid_request_id(std::string(129, 'a')));
  EXPECT_FALSE(origin::is_valid_request_id(""));
  for (const char* bad : {"a b", "a\"b", "a\\b", "a\nb", "a,b", "é", "a/b", "a=b"}) {
    EXPECT_FALSE(origin::is_valid_request_id(bad)) << bad;
  }
}

TEST(RequestIdFormat, GeneratedIdsAreValidAndDistinct) {
  std::uint64_t state = 42;
  std::set<std::string> seen;
  std::string id;
  for (int i = 0; i < 10000; ++i) {
    origin::generate_request_id(&state, &id);
    ASSERT_EQ(id.size(), 16u);
    ASSERT_TRUE(origin::is_valid_request_id(id)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 10000u);
}

// Captures what the calling process writes to fd 2 while `body` runs.
template <typename Body>
std::string capture_stderr(Body body) {
  char path[] = "/tmp/log_capture_XXXXXX";
  const int fd = ::mkstemp(path);
  const int saved = ::dup(STDERR_FILENO);
  ::dup2(fd, STDERR_FILENO);
  body();
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ::close(fd);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  ::unlink(path);
  return text.str();
}

TEST(Log, LinesAreJsonAndCarryTheRequestIdOfTheirScope) {
  const std::string text = capture_stderr([] {
    origin::log_event("info", "outside");
    {
      origin::RequestLogScope scope("req-1");
      origin::log_event("warn", "database unavailable", {{"error", "quote \" and \\ and \n"}});
      {
        origin::RequestLogScope inner("req-2");
        origin::log_event("info", "inner");
      }
      origin::log_event("info", "back");
    }
    origin::log_access("req-3", "GET", "/p\xff\x01th?secret=1", "redirect", 307, 0.25, "127.0.0.0");
  });
  std::istringstream lines(text);
  std::string line;
  std::vector<std::pair<std::string, std::string>> seen;  // msg, request_id
  while (std::getline(lines, line)) {
    rapidjson::Document doc;
    doc.Parse(line.c_str());
    ASSERT_FALSE(doc.HasParseError()) << line;
    ASSERT_TRUE(doc.IsObject() && doc["time"].IsString() && doc["level"].IsString() &&
                doc["msg"].IsString())
        << line;
    seen.emplace_back(doc["msg"].GetString(),
                      doc.HasMember("request_id") ? doc["request_id"].GetString() : "");
    if (seen.back().first == "database unavailable") {
      EXPECT_STREQ(doc["error"].GetString(), "quote \" and \\ and \n");
    }
    if (seen.back().first == "request") {
      EXPECT_STREQ(doc["path"].GetString(), "/p%FF%01th") << "no query, bytes escaped";
      EXPECT_EQ(doc["status"].GetInt(), 307);
      EXPECT_DOUBLE_EQ(doc["duration_ms"].GetDouble(), 0.25);
    }
  }
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"outside", ""},
      {"database unavailable", "req-1"},
      {"inner", "req-2"},
      {"back", "req-1"},
      {"request", "req-3"}};
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(origin::current_request_id(), "");
}

}  // namespace
