#include "origin/journal.h"

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace origin {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/journal_test.XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A steady clock that moves only when told to.
class FakeClock {
 public:
  JournalOptions options(std::uint64_t max_bytes = 64ull << 20,
                         milliseconds max_age = seconds(60)) const {
    JournalOptions options;
    options.max_bytes = max_bytes;
    options.max_age = max_age;
    options.clock = [now = now_] { return *now; };
    return options;
  }
  void advance(milliseconds step) { *now_ += step; }

 private:
  std::shared_ptr<std::chrono::steady_clock::time_point> now_ =
      std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::hours(1));
};

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

std::string name(std::uint64_t sequence, bool open, const std::string& prefix = "p") {
  return journal_file_name(prefix, sequence, open);
}

std::string join(const std::vector<std::string>& parts) {
  std::string all;
  for (const auto& part : parts) all += part;
  return all;
}

// "line-<i>-xxx...\n", `length` bytes in all.
std::string numbered_line(int i, std::size_t length) {
  std::string line = "line-" + std::to_string(i) + "-";
  line.resize(length - 1, 'x');
  line.push_back('\n');
  return line;
}

TEST(JournalFileName, RoundTrips) {
  struct Case {
    std::string prefix;
    std::uint64_t sequence;
    bool open;
    std::string name;
  };
  const Case cases[] = {
      {"p", 1, false, "p-00000000000000000001.jsonl"},
      {"origin-a-t3", 42, true, "origin-a-t3-00000000000000000042.jsonl.open"},
      {"x.y_z", 18446744073709551615ull, false, "x.y_z-18446744073709551615.jsonl"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(journal_file_name(c.prefix, c.sequence, c.open), c.name) << c.name;
    auto parsed = parse_journal_file_name(c.name);
    ASSERT_TRUE(parsed.has_value()) << c.name;
    EXPECT_EQ(parsed->prefix, c.prefix) << c.name;
    EXPECT_EQ(parsed->sequence, c.sequence) << c.name;
    EXPECT_EQ(parsed->open, c.open) << c.name;
  }
}

TEST(JournalFileName, RefusesOtherNames) {
  for (const char* text :
       {"", "p.seq", "p-1.jsonl", "p-00000000000000000001.json", "-00000000000000000001.jsonl",
        "p00000000000000000001.jsonl", "p-0000000000000000000a.jsonl",
        "p-99999999999999999999.jsonl", "p-00000000000000000001.jsonl.open.tmp",
        "p-00000000000000000001.jsonl.done"}) {
    EXPECT_FALSE(parse_journal_file_name(text).has_value()) << "'" << text << "'";
  }
}

TEST(JournalWriter, RefusesBadPrefixes) {
  TempDir dir;
  for (const std::string& prefix : {std::string(), std::string("a/b"), std::string(".hidden"),
                                    std::string("sp ace"), std::string(101, 'a')}) {
    EXPECT_THROW(JournalWriter(dir.path(), prefix), std::invalid_argument) << "'" << prefix << "'";
  }
}

TEST(JournalWriter, AppendsWholeLinesAndCompletesTheFileOnClose) {
  TempDir dir;
  {
    JournalWriter writer(dir.path(), "p");
    EXPECT_TRUE(writer.healthy());
    for (const char* line : {"a\n", "bb\n", "{\"x\":\"\\n\"}\n"}) {
      EXPECT_TRUE(writer.append(line)) << line;
    }
    EXPECT_EQ(list_dir(dir.path()), (std::vector<std::string>{name(1, true), "p.seq"}));
    EXPECT_EQ(read_file(dir / name(1, true)), "a\nbb\n{\"x\":\"\\n\"}\n");
    EXPECT_TRUE(writer.healthy());
    EXPECT_EQ(writer.last_error(), "");
  }
  EXPECT_EQ(list_dir(dir.path()), (std::vector<std::string>{name(1, false), "p.seq"}));
  EXPECT_EQ(read_file(dir / name(1, false)), "a\nbb\n{\"x\":\"\\n\"}\n");
  EXPECT_EQ(read_file(dir / "p.seq"), "00000000000000000001\n");
}

TEST(JournalWriter, RefusesAnythingButOneLine) {
  TempDir dir;
  JournalWriter writer(dir.path(), "p");
  for (const char* text : {"", "no newline", "two\nlines\n", "\n\n"}) {
    EXPECT_THROW(writer.append(text), std::invalid_argument) << "'" << text << "'";
  }
  EXPECT_TRUE(writer.append("\n"));
}

TEST(JournalWriter, AppendsABlockOfLinesAsOneUnit) {
  TempDir dir;
  FakeClock clock;
  {
    JournalWriter writer(dir.path(), "p", clock.options(12));
    for (const char* text : {"", "no newline", "a\nb"}) {
      EXPECT_THROW(writer.append_lines(text), std::invalid_argument) << "'" << text << "'";
    }
    ASSERT_TRUE(writer.append_lines("a\nbb\n"));
    ASSERT_TRUE(writer.append_lines("ccc\n"));                 // 10 bytes: fits in 12
    ASSERT_TRUE(writer.append_lines("dd\nee\n"));              // would make 16: next file
    ASSERT_TRUE(writer.append_lines("0123456789\nabcdef\n"));  // larger than a file
    ASSERT_TRUE(writer.append("f\n"));
  }
  EXPECT_EQ(read_file(dir / name(1, false)), "a\nbb\nccc\n");
  EXPECT_EQ(read_file(dir / name(2, false)), "dd\nee\n");
  EXPECT_EQ(read_file(dir / name(3, false)), "0123456789\nabcdef\n") << "never split";
  EXPECT_EQ(read_file(dir / name(4, false)), "f\n");
}

TEST(JournalWriter, RotatesBySizeWithoutSplittingLines) {
  TempDir dir;
  constexpr std::uint64_t kMaxBytes = 100;
  std::vector<std::string> lines;
  for (int i = 0; i < 200; ++i) lines.push_back(numbered_line(i, 12 + (i * 7) % 60));
  lines.insert(lines.begin() + 50, numbered_line(-1, 150));  // larger than a file
  {
    FakeClock clock;
    JournalWriter writer(dir.path(), "p", clock.options(kMaxBytes));
    for (const auto& line : lines) ASSERT_TRUE(writer.append(line)) << line;
  }
  std::vector<std::string> contents;
  for (const auto& file : list_dir(dir.path())) {
    if (file == "p.seq") continue;
    auto parsed = parse_journal_file_name(file);
    ASSERT_TRUE(parsed.has_value()) << file;
    EXPECT_FALSE(parsed->open) << file;
    EXPECT_EQ(parsed->sequence, contents.size() + 1) << file;
    contents.push_back(read_file(dir / file));
  }
  ASSERT_GT(contents.size(), 10u);
  for (std::size_t i = 0; i < contents.size(); ++i) {
    const std::string& content = contents[i];
    ASSERT_FALSE(content.empty()) << "file " << i + 1;
    EXPECT_EQ(content.back(), '\n') << "file " << i + 1;
    const bool single_line = content.find('\n') == content.size() - 1;
    EXPECT_TRUE(content.size() <= kMaxBytes || single_line) << "file " << i + 1;
    if (i + 1 < contents.size()) {
      // Rotated only because the next line did not fit.
      const std::size_t next_line = contents[i + 1].find('\n') + 1;
      EXPECT_GT(content.size() + next_line, kMaxBytes) << "file " << i + 1;
    }
  }
  EXPECT_EQ(join(contents), join(lines));
}

TEST(JournalWriter, FillsAFileToExactlyMaxBytes) {
  TempDir dir;
  FakeClock clock;
  {
    JournalWriter writer(dir.path(), "p", clock.options(10));
    for (const char* line : {"1234\n", "5678\n", "9\n"}) {
      ASSERT_TRUE(writer.append(line)) << line;
    }
  }
  EXPECT_EQ(read_file(dir / name(1, false)), "1234\n5678\n") << "10 bytes fit in 10";
  EXPECT_EQ(read_file(dir / name(2, false)), "9\n");
}

TEST(JournalWriter, RotatesByAgeBeforeAWrite) {
  TempDir dir;
  FakeClock clock;
  JournalWriter writer(dir.path(), "p", clock.options(64ull << 20, seconds(60)));
  ASSERT_TRUE(writer.append("a\n"));
  clock.advance(seconds(59));
  ASSERT_TRUE(writer.append("b\n"));
  EXPECT_EQ(list_dir(dir.path()), (std::vector<std::string>{name(1, true), "p.seq"}));
  clock.advance(seconds(1));
  ASSERT_TRUE(writer.append("c\n"));
  EXPECT_EQ(list_dir(dir.path()),
            (std::vector<std::string>{name(1, false), name(2, true), "p.seq"}));
  EXPECT_EQ(read_file(dir / name(1, false)), "a\nb\n");
  EXPECT_EQ(read_file(dir / name(2, true)), "c\n");
}

TEST(JournalWriter, RotateIfIdleCompletesOldFilesWithoutOpeningNewOnes) {
  TempDir dir;
  FakeClock clock;
  JournalWriter writer(dir.path(), "p", clock.options(64ull << 20, seconds(60)));
  writer.rotate_if_idle();
  EXPECT_EQ(list_dir(dir.path()), (std::vector<std::string>{"p.seq"})) << "idle, no file yet";
  ASSERT_TRUE(writer.append("a\n"));
  clock.advance(seconds(59));
  writer.rotate_if_idle();
  EXPECT_EQ(list_dir(dir.path()), (std::vector<std::string>{name(1, true), "p.seq"})) << "59 s old";
  clock.advance(seconds(1));
  writer.rotate_if_idle();
  EXPECT_EQ(list_dir(dir.path()), (std::vector<std::string>{name(1, false), "p.seq"}))
      << "60 s old";
  clock.advance(seconds(120));
  writer.rotate_if_idle();
  EXPECT_EQ(list_dir(dir.path()), (std::vector<std::string>{name(1, false), "p.seq"}))
      << "idle after rotation";
  ASSERT_TRUE(writer.append("b\n"));
  EXPECT_EQ(read_file(dir / name(2, true)), "b\n");
  EXPECT_EQ(read_file(dir / name(1, false)), "a\n");
}

TEST(JournalWriter, ContinuesTheSequenceAfterARestart) {
  TempDir dir;
  {
    JournalWriter writer(dir.path(), "p");
    ASSERT_TRUE(writer.append("a\n"));
  }
  {
    JournalWriter writer(dir.path(), "p");
    ASSERT_TRUE(writer.append("b\n"));
  }
  EXPECT_EQ(list_dir(dir.path()),
            (std::vector<std::string>{name(1, false), name(2, false), "p.seq"}));
  EXPECT_EQ(read_file(dir / name(1, false)), "a\n") << "old file never reopened";
  EXPECT_EQ(read_file(dir / name(2, false)), "b\n");

  // The ingester deleted every finished file: the .seq file still prevents
  // a name from being used twice.
  fs::remove(dir / name(1, false));
  fs::remove(dir / name(2, false));
  {
    JournalWriter writer(dir.path(), "p");
    ASSERT_TRUE(writer.append("c\n"));
  }
  EXPECT_EQ(list_dir(dir.path()), (std::vector<std::string>{name(3, false), "p.seq"}));

  // Without the .seq file, the highest existing file sets the sequence.
  fs::remove(dir / "p.seq");
  write_file(dir / name(7, false), "old\n");
  {
    JournalWriter writer(dir.path(), "p");
    ASSERT_TRUE(writer.append("d\n"));
  }
  EXPECT_EQ(list_dir(dir.path()),
            (std::vector<std::string>{name(3, false), name(7, false), name(8, false), "p.seq"}));
  EXPECT_EQ(read_file(dir / name(8, false)), "d\n");
}

TEST(JournalWriter, CompletesLeftoverFilesAndCutsTornLines) {
  TempDir dir;
  write_file(dir / name(3, true), "a\nb\npartial");
  write_file(dir / name(4, true), "no newline at all");
  write_file(dir / name(5, true), "whole\n");
  write_file(dir / name(9, true, "q"), "other\nprefix");
  JournalWriter writer(dir.path(), "p");
  EXPECT_TRUE(writer.healthy());
  EXPECT_EQ(list_dir(dir.path()),
            (std::vector<std::string>{name(3, false), name(4, false), name(5, false), "p.seq",
                                      name(9, true, "q")}));
  EXPECT_EQ(read_file(dir / name(3, false)), "a\nb\n");
  EXPECT_EQ(read_file(dir / name(4, false)), "");
  EXPECT_EQ(read_file(dir / name(5, false)), "whole\n");
  EXPECT_EQ(read_file(dir / name(9, true, "q")), "other\nprefix") << "other prefix untouched";
  ASSERT_TRUE(writer.append("x\n"));
  EXPECT_EQ(read_file(dir / name(6, true)), "x\n");
}

TEST(JournalWriter, RefusesASecondWriterOnTheSamePrefix) {
  TempDir dir;
  FakeClock clock;
  auto first = std::make_unique<JournalWriter>(dir.path(), "p", clock.options());
  ASSERT_TRUE(first->append("a\n"));
  JournalWriter second(dir.path(), "p", clock.options());
  EXPECT_FALSE(second.healthy());
  EXPECT_NE(second.last_error().find("held by another journal writer"), std::string::npos)
      << second.last_error();
  EXPECT_FALSE(second.append("b\n"));
  EXPECT_EQ(read_file(dir / name(1, true)), "a\n") << "first writer's file untouched";

  JournalWriter other(dir.path(), "p2", clock.options());
  EXPECT_TRUE(other.append("c\n")) << "another prefix in the same directory";

  first.reset();
  EXPECT_FALSE(second.append("b\n")) << "no retry within a second";
  clock.advance(seconds(1));
  EXPECT_TRUE(second.append("b\n")) << second.last_error();
  EXPECT_TRUE(second.healthy());
  EXPECT_EQ(read_file(dir / name(2, true)), "b\n");
}

TEST(JournalWriter, ReportsAnUnusableDirectoryAndRecoversOnAppend) {
  // Tests run as root, which chmod cannot stop: use a path whose parent is a
  // regular file instead.
  TempDir dir;
  const std::string blocker = dir / "blocker";
  const std::string journal_dir = blocker + "/journal";
  write_file(blocker, "");
  FakeClock clock;
  JournalWriter writer(journal_dir, "p", clock.options());
  EXPECT_FALSE(writer.healthy()) << "at construction";
  EXPECT_NE(writer.last_error().find("Not a directory"), std::string::npos) << writer.last_error();
  clock.advance(seconds(1));
  EXPECT_FALSE(writer.append("a\n"));
  EXPECT_FALSE(writer.healthy());
  EXPECT_NE(writer.last_error().find("Not a directory"), std::string::npos) << writer.last_error();

  fs::remove(blocker);
  fs::create_directories(journal_dir);
  EXPECT_FALSE(writer.append("b\n")) << "right after the failure";
  clock.advance(milliseconds(999));
  EXPECT_FALSE(writer.append("b\n")) << "999 ms after the failure";
  EXPECT_TRUE(list_dir(journal_dir).empty()) << "no attempt inside the retry interval";
  clock.advance(milliseconds(1));
  EXPECT_TRUE(writer.append("c\n")) << writer.last_error();
  EXPECT_TRUE(writer.healthy());
  EXPECT_NE(writer.last_error().find("Not a directory"), std::string::npos)
      << "the last error is kept for the logs";
  EXPECT_EQ(read_file(journal_dir + "/" + name(1, true)), "c\n");
}

TEST(JournalWriter, RecoversWithoutTrafficThroughRotateIfIdle) {
  TempDir dir;
  const std::string journal_dir = dir / "missing";
  FakeClock clock;
  JournalWriter writer(journal_dir, "p", clock.options());
  EXPECT_FALSE(writer.healthy());
  EXPECT_NE(writer.last_error().find("No such file or directory"), std::string::npos)
      << writer.last_error();
  fs::create_directories(journal_dir);
  writer.rotate_if_idle();
  EXPECT_FALSE(writer.healthy()) << "within the retry interval";
  clock.advance(seconds(1));
  writer.rotate_if_idle();
  EXPECT_TRUE(writer.healthy()) << writer.last_error();
  EXPECT_TRUE(writer.append("a\n"));
  EXPECT_EQ(read_file(journal_dir + "/" + name(1, true)), "a\n");
}

TEST(JournalWriter, CutsOffALineWhoseWriteFailedHalfway) {
  // RLIMIT_FSIZE makes the kernel write the part of a line below the limit
  // and fail the rest with EFBIG: the same short-write-then-error sequence as
  // a disk filling up mid-line. Run in a child, since the limit is per process.
  TempDir dir;
  const std::string line = std::string(40, 'x') + "\n";  // 41 bytes; 24 fit in 1000
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0) << std::strerror(errno);
  if (pid == 0) {
    std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit{};
    ::getrlimit(RLIMIT_FSIZE, &limit);
    limit.rlim_cur = 1000;
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(201);
    int code = 0;
    {
      JournalWriter writer(dir.path(), "p");
      int appended = 0;
      while (appended < 100 && writer.append(line)) ++appended;
      code = appended;
      if (writer.healthy()) code = 202;
      if (writer.last_error().find("File too large") == std::string::npos) code = 203;
    }
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 24) << "appends acknowledged (201-203: child failed)";
  std::string expected;
  for (int i = 0; i < 24; ++i) expected += line;
  EXPECT_EQ(read_file(dir / name(1, false)), expected) << "no torn line left";
}

TEST(JournalWriter, ReportsAFullDiskAndRecoversWhenSpaceIsFreed) {
  TempDir dir;
  if (::mount("tmpfs", dir.path().c_str(), "tmpfs", 0, "size=64k") != 0) {
    GTEST_SKIP() << "cannot mount a 64 KiB tmpfs (" << std::strerror(errno)
                 << "): the ENOSPC path is not exercised";
  }
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{dir.path()};
  write_file(dir / "filler", std::string(32 * 1024, 'f'));

  FakeClock clock;
  std::vector<std::string> written;
  {
    JournalWriter writer(dir.path(), "p", clock.options());
    int i = 0;
    for (; i < 100; ++i) {
      const std::string line = numbered_line(i, 1000);
      if (!writer.append(line)) break;
      written.push_back(line);
    }
    ASSERT_LT(i, 100) << "the disk never filled";
    EXPECT_FALSE(writer.healthy());
    EXPECT_NE(writer.last_error().find("No space left on device"), std::string::npos)
        << writer.last_error();
    EXPECT_EQ(read_file(dir / name(1, true)), join(written)) << "no torn line left";

    clock.advance(seconds(1));
    writer.rotate_if_idle();
    EXPECT_FALSE(writer.healthy()) << "probe while still full";

    fs::remove(dir / "filler");
    writer.rotate_if_idle();
    EXPECT_FALSE(writer.healthy()) << "probe inside the retry interval";
    clock.advance(seconds(1));
    writer.rotate_if_idle();
    EXPECT_TRUE(writer.healthy()) << "probe after space was freed: " << writer.last_error();

    const std::string line = numbered_line(i, 1000);
    EXPECT_TRUE(writer.append(line));
    written.push_back(line);
  }
  EXPECT_EQ(read_file(dir / name(1, false)), join(written));
}

}  // namespace
}  // namespace origin
