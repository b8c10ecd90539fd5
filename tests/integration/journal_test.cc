// The origin's visit journal, end to end: what a redirect writes, that it is
// written before the response, and what happens when it cannot be written.

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/visit_record.h"
#include "integration/support/http_client.h"
#include "integration/support/process.h"
#include "integration/support/test_env.h"

namespace integration {
namespace {

namespace fs = std::filesystem;

// Every complete line of every journal file in `dir`, in no particular order.
std::vector<std::string> journal_lines(const std::string& dir) {
  std::vector<std::string> lines;
  if (!fs::exists(dir)) return lines;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.find(".jsonl") == std::string::npos) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream content;
    content << in.rdbuf();
    const std::string text = content.str();
    std::size_t start = 0;
    for (std::size_t nl = text.find('\n'); nl != std::string::npos; nl = text.find('\n', start)) {
      lines.push_back(text.substr(start, nl - start));
      start = nl + 1;
    }
  }
  return lines;
}

std::string create_link(HttpClient& client, const std::string& alias) {
  const Response r = client.post_json(
      "/api/links", R"({"url":"https://example.com/landing","alias":")" + alias + R"("})");
  if (r.status != 201) throw std::runtime_error("create " + alias + ": " + r.summary());
  return alias;
}

TEST(VisitJournal, EachRedirectIsJournaledBeforeItsResponseArrives) {
  TestDatabase db;
  OriginProcess origin(db.url());
  HttpClient client = origin.client();
  create_link(client, "journaled");

  const Response r = client.request(
      "GET", "/Journaled?utm=1", "",
      {{"User-Agent", "Mozilla/5.0 (iPhone) \"quoted\""}, {"Referer", "https://news.example/a"}});
  ASSERT_EQ(r.status, 307) << r.summary();
  // No waiting: the line must already be there when the response is.
  const auto lines = journal_lines(origin.journal_dir());
  ASSERT_EQ(lines.size(), 1u) << "journal lines right after one redirect";
  auto parsed = core::parse_visit_line(lines[0]);
  ASSERT_TRUE(std::holds_alternative<core::VisitRecord>(parsed))
      << std::get<std::string>(parsed) << " in " << lines[0];
  const auto& visit = std::get<core::VisitRecord>(parsed);
  EXPECT_EQ(visit.code, "journaled");
  EXPECT_EQ(visit.status, 307);
  EXPECT_EQ(visit.source, "origin");
  EXPECT_EQ(visit.user_agent, "Mozilla/5.0 (iPhone) \"quoted\"");
  EXPECT_EQ(visit.referrer, "https://news.example/a");
  EXPECT_EQ(visit.ip, "127.0.0.0") << "VISIT_IP_MODE defaults to anonymized";
  const auto age = core::now_ms() - visit.time;
  EXPECT_LT(age, std::chrono::seconds(5)) << "visit time is now, in UTC";
}

TEST(VisitJournal, UnknownAndGoneCodesAreJournaledAsWell) {
  TestDatabase db;
  OriginProcess origin(db.url(), {{"VISIT_IP_MODE", "none"}});
  HttpClient client = origin.client();
  create_link(client, "gone");
  ASSERT_EQ(client.request("DELETE", "/api/links/gone").status, 200);
  EXPECT_EQ(client.get("/gone").status, 410);
  EXPECT_EQ(client.get("/never-created").status, 404);
  EXPECT_EQ(client.get("/api/links/gone").status, 200) << "management calls are not visits";

  const auto lines = journal_lines(origin.journal_dir());
  ASSERT_EQ(lines.size(), 2u);
  std::vector<std::pair<std::string, int>> seen;
  for (const auto& line : lines) {
    auto parsed = core::parse_visit_line(line);
    ASSERT_TRUE(std::holds_alternative<core::VisitRecord>(parsed)) << line;
    const auto& visit = std::get<core::VisitRecord>(parsed);
    EXPECT_EQ(visit.ip, "") << "VISIT_IP_MODE=none stores no address";
    seen.emplace_back(visit.code, visit.status);
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen[0], std::make_pair(std::string("gone"), 410));
  EXPECT_EQ(seen[1], std::make_pair(std::string("never-created"), 404));
}

// The addresses journaled, in order, for requests sent over one keep-alive
// connection (one io thread, so one journal file, written in order) to an
// origin started with `env`: for each request, its target and X-Forwarded-For
// ("" sends none). The first request of "/proxied" is a cache miss answered
// from the database, the later ones come from the cache.
std::vector<std::string> journaled_ips(
    const Environment& env, const std::vector<std::pair<std::string, std::string>>& requests,
    std::string* log = nullptr) {
  TestDatabase db;
  OriginProcess origin(db.url(), env);
  HttpClient client = origin.client();
  create_link(client, "proxied");
  for (const auto& [target, forwarded_for] : requests) {
    Headers headers;
    if (!forwarded_for.empty()) headers["X-Forwarded-For"] = forwarded_for;
    const Response r = client.get(target, headers);
    EXPECT_TRUE(r.status == 307 || r.status == 404) << target << ": " << r.summary();
  }
  std::vector<std::string> ips;
  for (const auto& line : journal_lines(origin.journal_dir())) {
    auto parsed = core::parse_visit_line(line);
    EXPECT_TRUE(std::holds_alternative<core::VisitRecord>(parsed)) << line;
    if (auto* visit = std::get_if<core::VisitRecord>(&parsed)) ips.push_back(visit->ip);
  }
  if (log != nullptr) *log = read_text(origin.log_path());
  return ips;
}

TEST(VisitJournal, BehindATrustedProxyTheForwardedClientIsRecorded) {
  const std::vector<std::pair<std::string, std::string>> requests = {
      {"/proxied", "203.0.113.7"},                // database path
      {"/proxied", "198.51.100.99, 192.0.2.44"},  // cached; the left-most could be forged
      {"/proxied", "2001:db8::5"},
      {"/proxied", ""},                             // the proxy's own request
      {"/unknown-code", "203.0.113.7, 127.0.0.1"},  // a trusted hop is skipped
  };
  std::string log;
  EXPECT_EQ(
      journaled_ips(
          {{"TRUSTED_PROXIES", "127.0.0.1"}, {"VISIT_IP_MODE", "full"}, {"ACCESS_LOG", "all"}},
          requests, &log),
      (std::vector<std::string>{"203.0.113.7", "192.0.2.44", "2001:db8::5", "127.0.0.1",
                                "203.0.113.7"}));
  EXPECT_NE(log.find(R"("path":"/proxied","route":"redirect","status":307)"), std::string::npos)
      << log;
  EXPECT_NE(log.find(R"("ip":"192.0.2.44")"), std::string::npos)
      << "access lines record the same client\n"
      << log;
  // VISIT_IP_MODE applies to the forwarded address as to a peer.
  EXPECT_EQ(journaled_ips({{"TRUSTED_PROXIES", "127.0.0.0/8"}}, requests),
            (std::vector<std::string>{"203.0.113.0", "192.0.2.0", "2001:db8::", "127.0.0.0",
                                      "203.0.113.0"}));
  EXPECT_EQ(journaled_ips({{"TRUSTED_PROXIES", "127.0.0.1"}, {"VISIT_IP_MODE", "none"}}, requests),
            (std::vector<std::string>(5, "")));
}

TEST(VisitJournal, ForwardedForFromAnUntrustedPeerIsIgnored) {
  EXPECT_EQ(journaled_ips({{"TRUSTED_PROXIES", "10.0.0.0/8"}, {"VISIT_IP_MODE", "full"}},
                          {{"/proxied", "203.0.113.7"}, {"/proxied", "203.0.113.7"}}),
            (std::vector<std::string>{"127.0.0.1", "127.0.0.1"}));
  EXPECT_EQ(journaled_ips({{"VISIT_IP_MODE", "full"}}, {{"/proxied", "203.0.113.7"}}),
            (std::vector<std::string>{"127.0.0.1"}))
      << "no TRUSTED_PROXIES: nobody is believed";
}

TEST(VisitJournal, KillNineAfterRedirectsLosesNoVisit) {
  TestDatabase db;
  OriginProcess origin(db.url());
  HttpClient client = origin.client();
  create_link(client, "crash");
  constexpr int kRedirects = 500;
  for (int i = 0; i < kRedirects; ++i) {
    ASSERT_EQ(client.get("/crash?i=" + std::to_string(i)).status, 307) << "redirect " << i;
  }
  origin.process().kill9();
  const auto lines = journal_lines(origin.journal_dir());
  EXPECT_EQ(lines.size(), static_cast<std::size_t>(kRedirects));
  for (const auto& line : lines) {
    EXPECT_TRUE(std::holds_alternative<core::VisitRecord>(core::parse_visit_line(line))) << line;
  }
}

// write(2) calls the process made so far (/proc/PID/io; socket sends are
// not counted there, journal and log writes are).
long long write_calls(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/io");
  std::string key;
  long long value = 0;
  while (in >> key >> value) {
    if (key == "syscw:") return value;
  }
  throw std::runtime_error("no syscw in /proc/" + std::to_string(pid) + "/io");
}

TEST(VisitJournal, VisitsAnsweredInOneTurnOfTheEventLoopShareOneWrite) {
  // Requests from many connections that one epoll wait finds ready together
  // (sent while the origin is stopped) are journaled with one write(2) for
  // all, each line still written before its answer is sent.
  TestDatabase db;
  OriginProcess origin(db.url(), {{"ORIGIN_THREADS", "1"}});
  HttpClient admin = origin.client();
  create_link(admin, "grouped");
  constexpr int kConnections = 32;
  std::vector<HttpClient> clients;
  for (int i = 0; i < kConnections; ++i) {
    clients.push_back(origin.client());
    ASSERT_EQ(clients.back().get("/grouped").status, 307) << "warm-up " << i;
  }
  ASSERT_EQ(journal_lines(origin.journal_dir()).size(), static_cast<std::size_t>(kConnections));

  ASSERT_EQ(::kill(origin.pid(), SIGSTOP), 0);
  const long long writes_before = write_calls(origin.pid());
  std::vector<int> statuses(kConnections, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kConnections; ++i) {
    threads.emplace_back([&, i] {
      try {
        statuses[i] =
            clients[i].get("/grouped", {{"User-Agent", "burst-" + std::to_string(i)}}).status;
      } catch (const std::exception&) {
        statuses[i] = -1;
      }
    });
  }
  // Every request on its way before the origin runs again.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_EQ(::kill(origin.pid(), SIGCONT), 0);
  for (auto& thread : threads) thread.join();
  const long long writes = write_calls(origin.pid()) - writes_before;

  for (int i = 0; i < kConnections; ++i) EXPECT_EQ(statuses[i], 307) << "request " << i;
  std::vector<std::string> agents;
  for (const auto& line : journal_lines(origin.journal_dir())) {
    auto parsed = core::parse_visit_line(line);
    ASSERT_TRUE(std::holds_alternative<core::VisitRecord>(parsed)) << line;
    const auto& visit = std::get<core::VisitRecord>(parsed);
    if (visit.user_agent.rfind("burst-", 0) == 0) agents.push_back(visit.user_agent);
  }
  std::sort(agents.begin(), agents.end());
  EXPECT_EQ(agents.size(), static_cast<std::size_t>(kConnections)) << "every visit journaled once";
  EXPECT_EQ(std::unique(agents.begin(), agents.end()), agents.end());
  // One write for the turn; a few more if the requests reached the origin's
  // loop in several waits, or for log lines. One per visit without grouping.
  EXPECT_LE(writes, kConnections / 4) << "write(2) calls for " << kConnections << " visits";
  std::cout << "[ figure   ] " << writes << " write(2) calls for " << kConnections << " visits\n";
}

TEST(VisitJournal, UnwritableJournalFailsReadinessButRedirectsStillWork) {
  TestDatabase db;
  // A regular file where the journal directory's parent should be: nothing
  // can be created below it, even as root.
  const fs::path blocker = fs::temp_directory_path() / ("journal-blocker-" + db.name());
  std::ofstream(blocker) << "not a directory";
  OriginProcess origin(db.url(), {{"JOURNAL_DIR", (blocker / "journal").string()}});
  HttpClient client = origin.client();
  create_link(client, "unjournaled");

  const Response ready = client.get("/readyz");
  EXPECT_EQ(ready.status, 503) << ready.summary();
  EXPECT_EQ(JsonBody(ready.body).str("journal"), "failing") << ready.body;
  EXPECT_EQ(JsonBody(ready.body).str("database"), "up") << ready.body;
  const Response redirect = client.get("/unjournaled");
  EXPECT_EQ(redirect.status, 307) << "a click is still sent on its way";
  EXPECT_NE(origin.log_tail().find("visit not journaled"), std::string::npos) << origin.log_tail();
  fs::remove(blocker);
}

}  // namespace
}  // namespace integration
