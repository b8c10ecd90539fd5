// The origin's visit journal, end to end: what a redirect writes, that it is
// written before the response, and what happens when it cannot be written.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
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
