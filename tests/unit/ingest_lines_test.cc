// Pure pieces of the ingester: reading complete lines, interpreting them,
// referrer hosts, --source arguments.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/visit_record.h"
#include "origin/ingester.h"

namespace origin {
namespace {

namespace fs = std::filesystem;

class TempFile {
 public:
  TempFile() {
    char pattern[] = "/tmp/ingest_lines_test.XXXXXX";
    const int fd = ::mkstemp(pattern);
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    ::close(fd);
    path_ = pattern;
  }
  ~TempFile() {
    std::error_code ignored;
    fs::remove(path_, ignored);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  const std::string& path() const { return path_; }
  void append(const std::string& bytes) const {
    std::ofstream out(path_, std::ios::binary | std::ios::app);
    out << bytes;
  }
  LineReader reader() const { return LineReader(::open(path_.c_str(), O_RDONLY | O_CLOEXEC)); }

 private:
  std::string path_;
};

std::vector<RawLine> read_all(LineReader& reader, std::size_t max_lines = 1000) {
  std::vector<RawLine> out;
  reader.read(max_lines, out);
  return out;
}

std::string valid_line(const std::string& code = "abc", const std::string& ua = "Mozilla/5.0",
                       const std::string& ref = "", int status = 307) {
  core::VisitRecord r;
  r.time = core::from_unix_ms(1795812400123);
  r.code = code;
  r.ip = "203.0.113.77";
  r.user_agent = ua;
  r.referrer = ref;
  r.status = status;
  r.source = std::string(core::kSourceEdge);
  std::string line = core::format_visit_line(r);
  line.pop_back();
  return line;
}

TEST(LineReader, ReadsCompleteLinesWithTheirOffsets) {
  TempFile file;
  file.append("one\ntwo\nthree\n");
  LineReader reader = file.reader();
  std::vector<RawLine> lines;
  EXPECT_TRUE(reader.read(10, lines));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].text, "one");
  EXPECT_EQ(lines[0].offset, 0u);
  EXPECT_EQ(lines[1].text, "two");
  EXPECT_EQ(lines[1].offset, 4u);
  EXPECT_EQ(lines[2].offset, 8u);
  EXPECT_EQ(lines[2].length, 6u);
  EXPECT_EQ(reader.position(), 14u);
  EXPECT_EQ(reader.unterminated_bytes(), 0u);
}

TEST(LineReader, NeverConsumesATornLastLineUntilItsNewlineArrives) {
  TempFile file;
  file.append("first\nsec");
  LineReader reader = file.reader();
  std::vector<RawLine> lines = read_all(reader);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(reader.position(), 6u) << "position stays before the torn line";
  EXPECT_EQ(reader.unterminated_bytes(), 3u);
  EXPECT_EQ(reader.unterminated_head(), "sec");

  file.append("ond\n");
  lines = read_all(reader);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].text, "second");
  EXPECT_EQ(lines[0].offset, 6u);
  EXPECT_EQ(reader.position(), 13u);
}

TEST(LineReader, StopsAtMaxLinesAndContinuesWhereItStopped) {
  TempFile file;
  for (int i = 0; i < 10; ++i) file.append("line" + std::to_string(i) + "\n");
  LineReader reader = file.reader();
  std::vector<RawLine> lines;
  EXPECT_FALSE(reader.read(4, lines)) << "stopped at max_lines, not at the end";
  EXPECT_EQ(lines.size(), 4u);
  EXPECT_EQ(reader.position(), 24u);
  EXPECT_TRUE(reader.read(100, lines));
  ASSERT_EQ(lines.size(), 10u);
  EXPECT_EQ(lines[9].text, "line9");
}

TEST(LineReader, SeekForgetsWhatWasReadAhead) {
  TempFile file;
  file.append("aa\nbb\ncc\n");
  LineReader reader = file.reader();
  std::vector<RawLine> lines;
  reader.read(1, lines);
  reader.seek(3);
  lines.clear();
  reader.read(10, lines);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].text, "bb");
  EXPECT_EQ(lines[0].offset, 3u);
}

TEST(LineReader, TurnsAMegabyteLineIntoOneOversizedLineWithItsHeadOnly) {
  TempFile file;
  const std::string big(1024 * 1024, 'x');
  file.append("before\n" + big + "\nafter\n");
  LineReader reader = file.reader();
  std::vector<RawLine> lines = read_all(reader);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].text, "before");
  EXPECT_TRUE(lines[1].oversized);
  EXPECT_EQ(lines[1].offset, 7u);
  EXPECT_EQ(lines[1].length, big.size() + 1);
  EXPECT_EQ(lines[1].text, big.substr(0, kMaxDeadLetterBytes));
  EXPECT_FALSE(lines[2].oversized);
  EXPECT_EQ(lines[2].text, "after");
  EXPECT_EQ(lines[2].offset, 7u + big.size() + 1);
}

TEST(LineReader, WaitsForTheNewlineOfAnOversizedLineBeingWritten) {
  TempFile file;
  file.append(std::string(300 * 1024, 'y'));
  LineReader reader = file.reader();
  EXPECT_TRUE(read_all(reader).empty());
  EXPECT_EQ(reader.position(), 0u);
  EXPECT_EQ(reader.unterminated_bytes(), 300u * 1024);
  file.append("yy\nok\n");
  std::vector<RawLine> lines = read_all(reader);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_TRUE(lines[0].oversized);
  EXPECT_EQ(lines[0].length, 300u * 1024 + 3);
  EXPECT_EQ(lines[1].text, "ok");
}

TEST(LineReader, KeepsALineOfExactlyTheMaximumLength) {
  TempFile file;
  file.append(std::string(core::kMaxVisitLineBytes, 'z') + "\n");
  LineReader reader = file.reader();
  std::vector<RawLine> lines = read_all(reader);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_FALSE(lines[0].oversized);
  EXPECT_EQ(lines[0].text.size(), core::kMaxVisitLineBytes);
}

TEST(InterpretVisitLine, BuildsARowWithAnonymizedIpBotFlagAndReferrerHost) {
  LineVerdict v =
      interpret_visit_line(valid_line("abc", "Googlebot/2.1", "https://Mail.Example.org/inbox"),
                           core::IpMode::kAnonymized);
  ASSERT_TRUE(v.row.has_value()) << v.reason;
  EXPECT_EQ(v.row->time_ms, 1795812400123);
  EXPECT_EQ(v.row->code, "abc");
  EXPECT_EQ(v.row->ip, "203.0.113.0");
  EXPECT_TRUE(v.row->bot);
  EXPECT_EQ(v.row->referrer_host, "mail.example.org");
  EXPECT_EQ(v.row->status, 307);
  EXPECT_EQ(v.row->source, "edge");
  EXPECT_FALSE(v.repaired);
}

TEST(InterpretVisitLine, FollowsTheIpMode) {
  const std::string line = valid_line();
  EXPECT_EQ(interpret_visit_line(line, core::IpMode::kFull).row->ip, "203.0.113.77");
  EXPECT_EQ(interpret_visit_line(line, core::IpMode::kNone).row->ip, "");
}

TEST(InterpretVisitLine, StoresNoIpThatIsNotAnAddressEvenInFullMode) {
  std::string line = valid_line();
  line.replace(line.find("203.0.113.77"), 12, "unix:");
  LineVerdict v = interpret_visit_line(line, core::IpMode::kFull);
  ASSERT_TRUE(v.row.has_value()) << v.reason;
  EXPECT_EQ(v.row->ip, "");
}

TEST(InterpretVisitLine, RepairsInvalidUtf8InTextFieldsAndKeepsTheClick) {
  std::string line = valid_line("abc", "Mozilla QQQ");
  line.replace(line.find("QQQ"), 3, "\xff\xfe");
  LineVerdict v = interpret_visit_line(line, core::IpMode::kAnonymized);
  ASSERT_TRUE(v.row.has_value()) << v.reason;
  EXPECT_TRUE(v.repaired);
  EXPECT_EQ(v.row->user_agent, "Mozilla \xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(InterpretVisitLine, RefusesInvalidUtf8ThatBreaksTheCode) {
  std::string line = valid_line("abq");
  line.replace(line.find("abq"), 3, "ab\xff");
  LineVerdict v = interpret_visit_line(line, core::IpMode::kAnonymized);
  EXPECT_FALSE(v.row.has_value());
  EXPECT_EQ(v.reason.rfind("invalid UTF-8", 0), 0u) << v.reason;
}

TEST(InterpretVisitLine, GivesTheParserReasonForBadLines) {
  struct Case {
    std::string line;
    std::string reason_start;
  };
  const Case cases[] = {
      {"not json", "not JSON"},
      {R"({"time":"2026-11-27T20:46:40.123Z","code":"abc","status":307})", "field \"src\""},
      {R"({"time":"2026-11-27T20:46:40.123Z","code":"a b","status":307,"src":"edge"})",
       "field \"code\""},
      {"", "not JSON"},
  };
  for (const Case& c : cases) {
    LineVerdict v = interpret_visit_line(c.line, core::IpMode::kAnonymized);
    EXPECT_FALSE(v.row.has_value()) << c.line;
    EXPECT_EQ(v.reason.rfind(c.reason_start, 0), 0u) << c.line << " -> " << v.reason;
  }
}

TEST(ReferrerHost, ExtractsTheLowercaseHost) {
  const std::pair<std::string, std::string> cases[] = {
      {"https://News.Example.com:8443/a?b#c", "news.example.com"},
      {"http://user:pw@host.example/", "host.example"},
      {"https://example.com.", "example.com"},
      {"https://example.com?q=1", "example.com"},
      {"android-app://com.google.android.gm/", "com.google.android.gm"},
      {"http://[2001:DB8::1]:80/x", "[2001:db8::1]"},
      {"", ""},
      {"not a url", ""},
      {"//example.com/path", ""},
      {"1http://example.com/", ""},
      {"https:///path", ""},
  };
  for (const auto& [referrer, host] : cases) {
    EXPECT_EQ(referrer_host(referrer), host) << referrer;
  }
}

TEST(ReferrerHost, CapsLongHosts) {
  EXPECT_EQ(referrer_host("https://" + std::string(400, 'a') + "/").size(), 255u);
}

TEST(ParseSourceArgument, TellsDirectoriesFromLogFiles) {
  auto dir = parse_source_argument("journal=/tmp");
  ASSERT_TRUE(std::holds_alternative<IngestSource>(dir));
  EXPECT_EQ(std::get<IngestSource>(dir).name, "journal");
  EXPECT_EQ(std::get<IngestSource>(dir).path, "/tmp");
  EXPECT_EQ(std::get<IngestSource>(dir).kind, SourceKind::kJournalDirectory);

  auto log = parse_source_argument("edge-1=/var/log/nginx/does-not-exist-yet.log");
  ASSERT_TRUE(std::holds_alternative<IngestSource>(log));
  EXPECT_EQ(std::get<IngestSource>(log).kind, SourceKind::kLogFile);

  auto with_eq = parse_source_argument("a=/tmp/x=y");
  ASSERT_TRUE(std::holds_alternative<IngestSource>(with_eq));
  EXPECT_EQ(std::get<IngestSource>(with_eq).path, "/tmp/x=y");
}

TEST(ParseSourceArgument, RefusesMalformedArguments) {
  for (const char* bad : {"", "noequals", "=/path", "name=", "bad name=/x", "t\tab=/x"}) {
    EXPECT_TRUE(std::holds_alternative<std::string>(parse_source_argument(bad))) << bad;
  }
  EXPECT_TRUE(
      std::holds_alternative<std::string>(parse_source_argument(std::string(201, 'n') + "=/x")));
}

TEST(JournalSourceName, IsTheSameForEveryWayOfNamingTheDirectory) {
  EXPECT_EQ(journal_source_name("/tmp"), journal_source_name("/tmp/"));
  EXPECT_EQ(journal_source_name("/tmp"), journal_source_name("/tmp/../tmp"));
  EXPECT_EQ(journal_source_name("/tmp").rfind("journal:", 0), 0u);
}

}  // namespace
}  // namespace origin
