#include "origin/ingester.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <future>
#include <map>
#include <set>
#include <system_error>

#include "core/code.h"
#include "origin/journal.h"
#include "origin/link_store.h"
#include "origin/log.h"

namespace origin {
namespace {

using SteadyClock = std::chrono::steady_clock;
using SteadyTime = SteadyClock::time_point;

constexpr std::size_t kReadChunk = 256 * 1024;
constexpr std::uint32_t kFingerprintBytes = 1024;
constexpr std::size_t kMaxSourceNameBytes = 200;
constexpr std::size_t kMaxHostBytes = 255;
constexpr const char* kDirectoryLockName = ".ingest.lock";
constexpr std::chrono::seconds kOutageLogInterval{10};

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// stat(2) of `path`; nullopt when it does not exist.
std::optional<struct stat> stat_path(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return st;
  if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
  throw_errno("stat " + path);
}

std::uint64_t fd_size(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_errno("fstat");
  return static_cast<std::uint64_t>(st.st_size);
}

// FNV-1a of the first `bytes` bytes of the file; nullopt if it is shorter.
std::optional<std::uint64_t> fingerprint_of(int fd, std::uint32_t bytes) {
  std::string data(bytes, '\0');
  std::size_t done = 0;
  while (done < bytes) {
    const ssize_t got = ::pread(fd, data.data() + done, bytes - done, static_cast<off_t>(done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw_errno("read");
    if (got == 0) return std::nullopt;
    done += static_cast<std::size_t>(got);
  }
  return file_fingerprint(data);
}

// A regular file opened for reading, with its inode; nullopt when `path`
// does not exist (any more).
struct OpenedFile {
  int fd = -1;
  std::uint64_t inode = 0;
};

std::optional<OpenedFile> open_regular(const std::string& path) {
  // O_NONBLOCK: a FIFO under a followed name must not hang the ingester.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw_errno("open " + path);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw std::runtime_error(path + " is not a regular file");
  }
  return OpenedFile{fd, static_cast<std::uint64_t>(st.st_ino)};
}

enum class Identity { kSame, kTruncated, kReplaced };

// Whether the open file still holds what `checkpoint` describes. Journal
// files are named for ever, so their inode need not match (a restored copy
// is the same file); log files are found by inode.
Identity check_identity(int fd, std::uint64_t inode, const Checkpoint& checkpoint,
                        bool require_inode) {
  if (require_inode && inode != checkpoint.inode) return Identity::kReplaced;
  if (fd_size(fd) < checkpoint.offset) return Identity::kTruncated;
  if (checkpoint.fingerprint_bytes > 0) {
    auto fp = fingerprint_of(fd, checkpoint.fingerprint_bytes);
    if (!fp || *fp != checkpoint.fingerprint) return Identity::kReplaced;
  }
  return Identity::kSame;
}

std::string directory_of(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string base_name_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string join_path(const std::string& dir, const std::string& name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

// The IP as it is stored: what `mode` keeps, and only if it is an address.
std::string stored_ip(std::string_view ip, core::IpMode mode) {
  std::string kept = core::anonymize_ip(ip, mode);
  if (kept.empty() || kept.size() >= INET6_ADDRSTRLEN) return {};
  // Anonymizing parses and writes the address back: it is one.
  if (mode == core::IpMode::kAnonymized) return kept;
  unsigned char address[sizeof(in6_addr)];
  if (inet_pton(AF_INET, kept.c_str(), address) == 1 ||
      inet_pton(AF_INET6, kept.c_str(), address) == 1) {
    return kept;
  }
  return {};
}

// core::is_bot_user_agent, remembered for recent user agents of this
// thread: a few hundred agents make most traffic, and classifying one scans
// it for every marker, where this costs a hash and a comparison.
bool is_bot_remembered(const std::string& user_agent) {
  struct Entry {
    bool valid = false;
    bool bot = false;
    std::string user_agent;
  };
  thread_local std::array<Entry, 1024> remembered;
  Entry& e = remembered[std::hash<std::string>()(user_agent) % remembered.size()];
  if (!e.valid || e.user_agent != user_agent) {
    e.user_agent = user_agent;
    e.bot = core::is_bot_user_agent(user_agent);
    e.valid = true;
  }
  return e.bot;
}

// A file followed by a source, with where it stands.
struct TrackedFile {
  TrackedFile(std::string key_in, std::string path_in, const OpenedFile& opened)
      : key(std::move(key_in)), path(std::move(path_in)), inode(opened.inode), reader(opened.fd) {}

  // The checkpoint that stands for reader.position(), computing the
  // fingerprint of the file's first bytes when their count changed.
  Checkpoint checkpoint(const std::string& checkpoint_key) {
    const std::uint64_t position = reader.position();
    auto bytes = static_cast<std::uint32_t>(std::min<std::uint64_t>(position, kFingerprintBytes));
    if (bytes != fingerprint_bytes || bytes == 0) {
      std::optional<std::uint64_t> fp =
          bytes == 0 ? file_fingerprint("") : fingerprint_of(reader.fd(), bytes);
      if (!fp) {
        // Shrunk under us: the next truncation check reports it.
        bytes = 0;
        fp = file_fingerprint("");
      }
      fingerprint_bytes = bytes;
      fingerprint = *fp;
    }
    return Checkpoint{checkpoint_key, inode, position, fingerprint, fingerprint_bytes};
  }

  // Continues at `offset`, with the fingerprint of `verified` (a checkpoint
  // this file was checked against) as the cache when given.
  void restart_at(std::uint64_t offset, const Checkpoint* verified) {
    reader.seek(offset);
    committed = offset;
    fingerprint_bytes = verified != nullptr ? verified->fingerprint_bytes : 0;
    fingerprint = verified != nullptr ? verified->fingerprint : 0;
  }

  std::string key;
  std::string path;
  std::uint64_t inode = 0;
  LineReader reader;
  std::uint64_t committed = 0;        // offset whose checkpoint is stored (for this content)
  std::optional<Checkpoint> stored;   // the store's row for `key` (journal files)
  std::optional<Checkpoint> pending;  // move collected, not yet committed
  std::uint32_t fingerprint_bytes = 0;
  std::uint64_t fingerprint = 0;
  // Journal files only.
  bool finished = false;  // renamed to .jsonl: complete, never changes again
  std::string prefix;
  std::uint64_t sequence = 0;
  std::uint64_t last_size = 0;
  SteadyTime last_change{};
};

}  // namespace

// ---------------------------------------------------------------------------
// Free functions.

std::variant<IngestSource, std::string> parse_source_argument(std::string_view argument) {
  const std::size_t eq = argument.find('=');
  if (eq == std::string_view::npos || eq == 0) return std::string("expected NAME=PATH");
  IngestSource source;
  source.name = std::string(argument.substr(0, eq));
  source.path = std::string(argument.substr(eq + 1));
  if (source.name.size() > kMaxSourceNameBytes) {
    return "source name longer than " + std::to_string(kMaxSourceNameBytes) + " bytes";
  }
  for (char c : source.name) {
    if (c <= ' ' || c > '~')
      return std::string("source name must be printable ASCII without spaces");
  }
  if (source.path.empty()) return std::string("PATH is empty");
  struct stat st {};
  source.kind = ::stat(source.path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)
                    ? SourceKind::kJournalDirectory
                    : SourceKind::kLogFile;
  return source;
}

std::string journal_source_name(const std::string& dir) {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::strcpy(host, "localhost");
  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::weakly_canonical(dir, ec);
  if (ec) absolute = std::filesystem::absolute(dir, ec).lexically_normal();
  return "journal:" + std::string(host) + ":" + absolute.string();
}

IngesterOptions load_ingester_options(const core::Env& env) {
  IngesterOptions options;
  options.max_batch_lines =
      static_cast<std::size_t>(env.integer("INGEST_BATCH_LINES", 1'000'000, 1, 10'000'000));
  // Well under the store's 60 s statement timeout, which the transaction's
  // COPY must not reach.
  options.max_batch_time =
      std::chrono::milliseconds(env.integer("INGEST_BATCH_MS", 10'000, 1, 30'000));
  options.chunk_lines =
      static_cast<std::size_t>(env.integer("INGEST_CHUNK_LINES", 8192, 1, 100'000));
  options.poll_interval = std::chrono::milliseconds(env.integer("INGEST_POLL_MS", 200, 1, 60'000));
  options.rotation_grace =
      std::chrono::milliseconds(env.integer("INGEST_ROTATION_GRACE_MS", 2000, 0, 600'000));
  const std::string mode = env.text("VISIT_IP_MODE", "anonymized");
  auto ip_mode = core::parse_ip_mode(mode);
  if (!ip_mode) {
    throw core::ConfigError("VISIT_IP_MODE must be anonymized, full or none, got '" + mode + "'");
  }
  options.ip_mode = *ip_mode;
  return options;
}

PgVisitStoreOptions load_visit_store_options(const core::Env& env) {
  PgVisitStoreOptions options;
  options.url = core::load_database_config(env).url;
  options.retention_days = static_cast<int>(env.integer("VISITS_RETENTION_DAYS", 90, 1, 36'500));
  options.pause_before_commit =
      std::chrono::milliseconds(env.integer("INGEST_TEST_PAUSE_BEFORE_COMMIT_MS", 0, 0, 60'000));
  return options;
}

LineVerdict interpret_visit_line(std::string_view line, core::IpMode ip_mode) {
  LineVerdict verdict;
  auto parsed = core::parse_visit_line(line);
  if (auto* reason = std::get_if<std::string>(&parsed);
      reason && reason->rfind("invalid UTF-8", 0) == 0) {
    auto repaired = core::parse_visit_line(core::to_valid_utf8(line));
    if (std::holds_alternative<core::VisitRecord>(repaired)) {
      parsed = std::move(repaired);
      verdict.repaired = true;
    }
  }
  if (auto* reason = std::get_if<std::string>(&parsed)) {
    verdict.reason = std::move(*reason);
    return verdict;
  }
  auto& record = std::get<core::VisitRecord>(parsed);
  VisitRow row;
  row.time_ms = core::to_unix_ms(record.time);
  row.code = std::move(record.code);
  row.ip = stored_ip(record.ip, ip_mode);
  row.bot = is_bot_remembered(record.user_agent);
  row.user_agent = std::move(record.user_agent);
  row.referrer_host = referrer_host(record.referrer);
  row.referrer = std::move(record.referrer);
  row.status = record.status;
  row.source = std::move(record.source);
  verdict.row = std::move(row);
  return verdict;
}

std::string referrer_host(std::string_view referrer) {
  const std::size_t scheme_end = referrer.find("://");
  if (scheme_end == std::string_view::npos || scheme_end == 0) return {};
  for (std::size_t i = 0; i < scheme_end; ++i) {
    const char c = referrer[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool other = (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
    if (!alpha && !(i > 0 && other)) return {};
  }
  std::string_view authority = referrer.substr(scheme_end + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  std::string_view host;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return {};
    host = authority.substr(0, close + 1);
  } else {
    host = authority.substr(0, authority.find(':'));
  }
  while (!host.empty() && host.back() == '.') host.remove_suffix(1);
  std::string lower = core::lowercase_ascii(host);
  lower.resize(core::cap_utf8(lower, kMaxHostBytes).size());
  return lower;
}

// ---------------------------------------------------------------------------
// LineReader.

LineReader::LineReader(int fd) : fd_(fd) {}

LineReader::~LineReader() {
  if (fd_ >= 0) ::close(fd_);
}

LineReader::LineReader(LineReader&& other) noexcept
    : fd_(other.fd_),
      position_(other.position_),
      buffer_(std::move(other.buffer_)),
      end_(other.end_),
      start_(other.start_),
      scanned_(other.scanned_),
      skipped_(other.skipped_),
      skipped_head_(std::move(other.skipped_head_)) {
  other.fd_ = -1;
  other.end_ = other.start_ = other.scanned_ = 0;
}

LineReader& LineReader::operator=(LineReader&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    position_ = other.position_;
    buffer_ = std::move(other.buffer_);
    end_ = other.end_;
    start_ = other.start_;
    scanned_ = other.scanned_;
    skipped_ = other.skipped_;
    skipped_head_ = std::move(other.skipped_head_);
    other.fd_ = -1;
    other.end_ = other.start_ = other.scanned_ = 0;
  }
  return *this;
}

void LineReader::seek(std::uint64_t offset) {
  position_ = offset;
  end_ = 0;
  start_ = 0;
  scanned_ = 0;
  skipped_ = 0;
  skipped_head_.clear();
}

bool LineReader::read(std::size_t max_lines, std::vector<RawLine>& out) {
  std::size_t produced = 0;
  for (;;) {
    while (produced < max_lines) {
      const std::size_t from = std::max(start_, scanned_);
      const void* newline =
          from < end_ ? std::memchr(buffer_.data() + from, '\n', end_ - from) : nullptr;
      if (newline == nullptr) {
        scanned_ = end_;
        break;
      }
      const auto end = static_cast<std::size_t>(static_cast<const char*>(newline) - buffer_.data());
      const std::size_t here = end - start_;
      RawLine line;
      line.offset = position_;
      line.length = skipped_ + here + 1;
      if (skipped_ > 0 || here > core::kMaxVisitLineBytes) {
        line.oversized = true;
        line.text = skipped_ > 0 ? std::move(skipped_head_)
                                 : buffer_.substr(start_, std::min(here, kMaxDeadLetterBytes));
        skipped_ = 0;
        skipped_head_.clear();
      } else {
        line.text.assign(buffer_.data() + start_, here);
      }
      position_ += line.length;
      start_ = end + 1;
      scanned_ = start_;
      out.push_back(std::move(line));
      ++produced;
    }
    if (produced >= max_lines) return false;

    // No '\n' in buffer_[start_..end_). A run longer than any valid line is
    // an oversized line still being read: keep its head only.
    const std::size_t pending = end_ - start_;
    if (skipped_ + pending > core::kMaxVisitLineBytes) {
      if (skipped_ == 0) {
        skipped_head_ = buffer_.substr(start_, std::min(pending, kMaxDeadLetterBytes));
      }
      skipped_ += pending;
      end_ = 0;
      start_ = 0;
      scanned_ = 0;
    } else if (start_ > 0) {
      if (pending > 0) std::memmove(buffer_.data(), buffer_.data() + start_, pending);
      end_ = pending;
      scanned_ -= std::min(scanned_, start_);
      start_ = 0;
    }

    // Grows (and zero-fills) only when the spare room is short of one chunk,
    // which happens once per reader and while an unfinished line grows.
    if (buffer_.size() < end_ + kReadChunk) buffer_.resize(end_ + kReadChunk);
    const std::uint64_t offset = position_ + skipped_ + end_;
    ssize_t got = 0;
    do {
      got = ::pread(fd_, buffer_.data() + end_, kReadChunk, static_cast<off_t>(offset));
    } while (got < 0 && errno == EINTR);
    if (got < 0) throw_errno("read");
    end_ += static_cast<std::size_t>(got);
    if (got == 0) return true;
  }
}

std::uint64_t LineReader::unterminated_bytes() const { return skipped_ + (end_ - start_); }

std::string LineReader::unterminated_head() const {
  if (skipped_ > 0) return skipped_head_;
  return buffer_.substr(start_, std::min(end_ - start_, kMaxDeadLetterBytes));
}

// ---------------------------------------------------------------------------
// Followers: the file side of a source.

class Ingester::Follower {
 public:
  struct Counters {
    std::uint64_t truncations = 0;
    std::uint64_t replacements = 0;
    std::uint64_t files_deleted = 0;
  };

  struct Collected {
    std::vector<std::pair<std::string, RawLine>> lines;  // (file key for dead letters, line)
    std::vector<DeadLetter> dead_letters;
    std::vector<CheckpointMove> moves;
    bool full = false;  // stopped at max_lines: more is waiting
    bool empty() const { return lines.empty() && dead_letters.empty() && moves.empty(); }
  };

  explicit Follower(std::string source_name) : source_name_(std::move(source_name)) {}
  virtual ~Follower() = default;

  // (Re)loads every position from the store's checkpoints.
  virtual void reset(VisitStore& store) = 0;
  // Reads up to `max_lines` lines and the checkpoint moves covering them.
  virtual void collect(std::size_t max_lines, Collected& out) = 0;
  // The last collected batch was committed.
  virtual void committed() = 0;
  // Work after a commit (deleting finished journal files).
  virtual void housekeeping(VisitStore& store) = 0;
  // True when the last collect found nothing and nothing is left to finish.
  virtual bool caught_up() const = 0;
  virtual std::uint64_t lag_bytes() const = 0;

  const Counters& counters() const { return counters_; }

 protected:
  void report(Identity identity, const std::string& path, const Checkpoint& checkpoint,
              std::string_view detail = {}) {
    if (identity == Identity::kTruncated) {
      ++counters_.truncations;
      log_event("warn", "file truncated below its checkpoint; reading it again from its start",
                {{"source", source_name_},
                 {"file", path},
                 {"checkpoint_offset", std::to_string(checkpoint.offset)}});
    } else {
      ++counters_.replacements;
      log_event(
          "warn", "file replaced since its checkpoint; reading the new file from its start",
          {{"source", source_name_},
           {"file", path},
           {"checkpoint_offset", std::to_string(checkpoint.offset)},
           {"detail", detail.empty() ? std::string_view("inode or first bytes differ") : detail}});
    }
  }

  const std::string source_name_;
  Counters counters_;
};

namespace {

// A journal directory (journal.h protocol).
class JournalFollower final : public Ingester::Follower {
 public:
  JournalFollower(std::string source_name, std::string dir, const IngesterOptions& options)
      : Follower(std::move(source_name)), dir_(std::move(dir)), options_(options) {}

  ~JournalFollower() override {
    if (lock_fd_ >= 0) ::close(lock_fd_);
  }

  void reset(VisitStore& store) override {
    acquire_directory_lock();
    std::map<std::string, Checkpoint> stored;
    for (Checkpoint& cp : store.load_checkpoints(source_name_)) stored.emplace(cp.file_key, cp);

    std::map<std::string, TrackedFile> held = std::move(files_);
    files_.clear();
    const std::map<std::string, Entry> entries = scan();
    for (const auto& [key, entry] : entries) {
      auto it = held.find(key);
      if (it != held.end()) {
        it->second.path = join_path(dir_, entry.name);
        it->second.finished = !entry.open;
        files_.emplace(key, std::move(it->second));
        held.erase(it);
      } else {
        track(key, entry);
      }
    }
    // A file deleted by someone else while we held it open can still be read.
    for (auto& [key, file] : held) {
      file.finished = true;
      files_.emplace(key, std::move(file));
    }

    for (auto& [key, file] : files_) {
      file.pending.reset();
      auto it = stored.find(key);
      if (it == stored.end()) {
        file.stored.reset();
        file.restart_at(0, nullptr);
        continue;
      }
      file.stored = it->second;
      const Identity identity = check_identity(file.reader.fd(), file.inode, it->second, false);
      if (identity == Identity::kSame) {
        file.restart_at(it->second.offset, &it->second);
      } else {
        report(identity, file.path, it->second);
        file.restart_at(0, nullptr);
      }
      stored.erase(it);
    }
    // Rows of files that are gone: deleted after ingestion by an ingester
    // that died before removing the row. Journal names are never reused. A
    // file that is there but could not be opened keeps its row.
    for (const auto& [key, cp] : stored) {
      if (entries.count(key) == 0) store.delete_checkpoint(source_name_, key);
    }
  }

  void collect(std::size_t max_lines, Collected& out) override {
    refresh();
    std::vector<TrackedFile*> order;
    for (auto& [key, file] : files_) order.push_back(&file);
    std::size_t budget = max_lines;
    std::vector<RawLine> lines;
    const std::size_t first = order.empty() ? 0 : next_start_++ % order.size();
    for (std::size_t i = 0; i < order.size() && budget > 0; ++i) {
      TrackedFile& file = *order[(first + i) % order.size()];
      if (fd_size(file.reader.fd()) < file.reader.position()) {
        report(Identity::kTruncated, file.path, file.stored.value_or(Checkpoint{}));
        file.restart_at(0, nullptr);
      }
      lines.clear();
      const bool at_end = file.reader.read(budget, lines);
      budget -= lines.size();
      for (RawLine& line : lines) out.lines.emplace_back(file.key, std::move(line));
      if (!at_end) out.full = true;
      if (at_end && file.finished && file.reader.unterminated_bytes() > 0) {
        // A completed file always ends with '\n'; should one not, its tail
        // is dead-lettered so that the file can be finished and deleted.
        const std::uint64_t tail = file.reader.unterminated_bytes();
        out.dead_letters.push_back({file.key, file.reader.position(),
                                    "unterminated last line of a finished journal file",
                                    file.reader.unterminated_head(), tail});
        file.reader.seek(file.reader.position() + tail);
      }
      Checkpoint next = file.checkpoint(file.key);
      const bool untouched = !file.stored && next.offset == 0;
      if (!untouched && (!file.stored || !(next == *file.stored))) {
        out.moves.push_back({file.stored, next});
        file.pending = std::move(next);
      }
    }
    last_empty_ = out.empty() && !out.full;
  }

  void committed() override {
    for (auto& [key, file] : files_) {
      if (!file.pending) continue;
      file.stored = std::move(file.pending);
      file.pending.reset();
      file.committed = file.stored->offset;
    }
  }

  void housekeeping(VisitStore& store) override {
    const SteadyTime now = SteadyClock::now();
    for (auto it = files_.begin(); it != files_.end();) {
      TrackedFile& file = it->second;
      const std::uint64_t size = fd_size(file.reader.fd());
      const bool all_committed =
          file.committed == file.reader.position() && size == file.reader.position();
      if (file.finished && all_committed) {
        if (::unlink(file.path.c_str()) != 0 && errno != ENOENT) {
          log_event("warn", "cannot delete ingested journal file",
                    {{"file", file.path}, {"error", std::strerror(errno)}});
          ++it;
          continue;
        }
        if (file.stored) store.delete_checkpoint(source_name_, file.key);
        ++counters_.files_deleted;
        it = files_.erase(it);
        continue;
      }
      if (!file.finished && file.committed == file.reader.position()) {
        if (size != file.last_size || file.last_change == SteadyTime{}) {
          file.last_size = size;
          file.last_change = now;
        } else if (now - file.last_change >= options_.abandoned_after &&
                   remove_if_abandoned(file, store)) {
          it = files_.erase(it);
          continue;
        }
      }
      ++it;
    }
  }

  bool caught_up() const override {
    if (!last_empty_) return false;
    for (const auto& [key, file] : files_) {
      if (file.finished) return false;
    }
    return true;
  }

  std::uint64_t lag_bytes() const override {
    std::uint64_t lag = 0;
    for (const auto& [key, file] : files_) {
      const std::uint64_t size = fd_size(file.reader.fd());
      if (size > file.committed) lag += size - file.committed;
    }
    return lag;
  }

 private:
  struct Entry {
    std::string name;
    bool open = false;
    std::string prefix;
    std::uint64_t sequence = 0;
  };

  void acquire_directory_lock() {
    if (lock_fd_ >= 0) return;
    const std::string path = join_path(dir_, kDirectoryLockName);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (fd < 0) throw_errno("open " + path);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      ::close(fd);
      if (error == EWOULDBLOCK) {
        throw std::runtime_error("another ingester holds " + path + "; waiting for it");
      }
      errno = error;
      throw_errno("lock " + path);
    }
    lock_fd_ = fd;
  }

  // Journal files of the directory by key ("<prefix>-<seq>").
  std::map<std::string, Entry> scan() const {
    DIR* dir = ::opendir(dir_.c_str());
    if (dir == nullptr) throw_errno("open directory " + dir_);
    std::map<std::string, Entry> entries;
    while (const dirent* entry = ::readdir(dir)) {
      const std::string name = entry->d_name;
      auto parsed = parse_journal_file_name(name);
      if (!parsed) continue;
      std::string key = name.substr(0, name.size() - (parsed->open ? 11 : 6));
      Entry& e = entries[key];
      // Between the writer's rename and our scan both names cannot exist;
      // prefer the finished name if they ever did.
      if (e.name.empty() || !parsed->open) {
        e = Entry{name, parsed->open, parsed->prefix, parsed->sequence};
      }
    }
    ::closedir(dir);
    return entries;
  }

  void track(const std::string& key, const Entry& entry) {
    const std::string path = join_path(dir_, entry.name);
    std::optional<OpenedFile> opened;
    try {
      opened = open_regular(path);
    } catch (const std::exception& e) {
      // Retried at every scan; said once.
      if (unreadable_.insert(key).second) {
        log_event("warn", "cannot read journal file; retrying",
                  {{"file", path}, {"error", e.what()}});
      }
      return;
    }
    unreadable_.erase(key);
    if (!opened) return;  // renamed or deleted since the scan: the next scan sees it
    TrackedFile file(key, path, *opened);
    file.finished = !entry.open;
    file.prefix = entry.prefix;
    file.sequence = entry.sequence;
    files_.emplace(key, std::move(file));
  }

  // Picks up new files and .open files renamed to .jsonl. A file whose name
  // is gone (deleted by someone else) is read to its end, then forgotten.
  void refresh() {
    const std::map<std::string, Entry> entries = scan();
    for (const auto& [key, entry] : entries) {
      auto it = files_.find(key);
      if (it == files_.end()) {
        track(key, entry);
      } else if (!entry.open && !it->second.finished) {
        it->second.finished = true;
        it->second.path = join_path(dir_, entry.name);
      }
    }
    for (auto& [key, file] : files_) {
      if (entries.count(key) == 0) file.finished = true;
    }
  }

  // Deletes a .open file whose writer is gone (see journal.h: its prefix
  // lock is free) once every complete line of it is committed. Its bytes
  // after the last '\n' were never acknowledged to a client. True if done.
  bool remove_if_abandoned(TrackedFile& file, VisitStore& store) {
    const std::string lock_path = join_path(dir_, file.prefix + ".seq");
    const int fd = ::open(lock_path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return false;  // no lock file: not a layout we understand
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      return false;  // a live writer
    }
    // While we hold the lock no writer can start and complete this file.
    bool removed = false;
    auto st = stat_path(file.path);
    std::vector<RawLine> probe;
    const std::uint64_t position = file.reader.position();
    const bool nothing_new = file.reader.read(1, probe) && probe.empty();
    if (!nothing_new) file.reader.seek(position);
    if (st && static_cast<std::uint64_t>(st->st_ino) == file.inode && nothing_new) {
      const std::uint64_t torn = file.reader.unterminated_bytes();
      if (::unlink(file.path.c_str()) == 0) {
        if (file.stored) store.delete_checkpoint(source_name_, file.key);
        ++counters_.files_deleted;
        removed = true;
        log_event("info", "removed journal file left by a stopped writer",
                  {{"file", file.path}, {"unacknowledged_bytes", std::to_string(torn)}});
      }
    }
    ::close(fd);
    return removed;
  }

  const std::string dir_;
  const IngesterOptions& options_;
  int lock_fd_ = -1;
  std::map<std::string, TrackedFile> files_;
  std::set<std::string> unreadable_;  // keys whose open failed, to log once
  std::size_t next_start_ = 0;
  bool last_empty_ = false;
};

// One log file written by nginx, followed across rotation by rename.
class LogFollower final : public Ingester::Follower {
 public:
  LogFollower(std::string source_name, std::string path, const IngesterOptions& options)
      : Follower(std::move(source_name)), path_(std::move(path)), options_(options) {}

  void reset(VisitStore& store) override {
    stored_.reset();
    for (Checkpoint& cp : store.load_checkpoints(source_name_)) {
      if (cp.file_key == path_) stored_ = cp;
    }
    std::vector<TrackedFile> held;  // oldest first
    for (TrackedFile& f : retired_) held.push_back(std::move(f));
    for (TrackedFile& f : files_) held.push_back(std::move(f));
    files_.clear();
    retired_.clear();
    pending_.reset();
    rotated_at_.reset();

    std::optional<TrackedFile> current = open_tracked(path_);
    if (!stored_) {
      // Nothing of this source was ever committed, so every line of the files
      // it was following (renamed away since, when this is a reset after a
      // failure) is still to be ingested; on a first start, the lines nginx
      // wrote before a rotation that came first are in PATH.1.
      if (held.empty()) {
        if (std::optional<TrackedFile> previous = open_tracked(path_ + ".1")) {
          held.push_back(std::move(*previous));
        }
      }
      for (TrackedFile& f : held) {
        if (current && f.inode == current->inode) continue;
        push(std::move(f), 0, nullptr);
        // Renamed away already: drain it, then move on.
        rotated_at_ = SteadyClock::now() - options_.rotation_grace;
      }
      if (current) push(std::move(*current), 0, nullptr);
      return;
    }
    const Checkpoint cp = *stored_;
    if (current && current->inode == cp.inode) {
      const Identity identity = check_identity(current->reader.fd(), current->inode, cp, true);
      if (identity == Identity::kSame) {
        push(std::move(*current), cp.offset, &cp);
      } else {
        report(identity, path_, cp);
        push(std::move(*current), 0, nullptr);
      }
      return;
    }
    // The checkpointed file was rotated away: find it by inode among the
    // files still open, then beside PATH (PATH.1, PATH-20260101, ...).
    std::optional<TrackedFile> rotated;
    for (TrackedFile& f : held) {
      if (f.inode == cp.inode) {
        rotated = std::move(f);
        break;
      }
    }
    if (!rotated) rotated = find_sibling(cp.inode);
    if (rotated &&
        check_identity(rotated->reader.fd(), rotated->inode, cp, true) == Identity::kSame) {
      push(std::move(*rotated), cp.offset, &cp);
      if (current) {
        push_rotated_between(cp.inode, current->inode);
        push(std::move(*current), 0, nullptr);
        // We cannot tell when it was rotated: drain it, then move on.
        rotated_at_ = SteadyClock::now() - options_.rotation_grace;
      }
      return;
    }
    if (rotated) {
      report(check_identity(rotated->reader.fd(), rotated->inode, cp, true), rotated->path, cp,
             "the file with the checkpointed inode has other first bytes");
    } else {
      report(Identity::kReplaced, path_, cp,
             "no file with the checkpointed inode at the path or beside it");
    }
    if (current) push(std::move(*current), 0, nullptr);
  }

  void collect(std::size_t max_lines, Collected& out) override {
    const SteadyTime now = SteadyClock::now();
    notice_rotation(now);
    std::size_t budget = max_lines;
    std::vector<RawLine> lines;
    while (!files_.empty()) {
      TrackedFile& front = files_.front();
      check_content(front);
      lines.clear();
      const bool at_end = front.reader.read(budget, lines);
      budget -= lines.size();
      for (RawLine& line : lines) out.lines.emplace_back(front.path, std::move(line));
      if (!at_end) {
        out.full = true;
        break;
      }
      if (files_.size() < 2 || now - *rotated_at_ < options_.rotation_grace) break;
      // The rotated file has been quiet for the grace period: finish it.
      if (const std::uint64_t tail = front.reader.unterminated_bytes(); tail > 0) {
        out.dead_letters.push_back({front.path, front.reader.position(),
                                    "unterminated last line of a rotated log file",
                                    front.reader.unterminated_head(), tail});
      }
      retired_.push_back(std::move(front));
      files_.pop_front();
      rotated_at_ = files_.size() >= 2 ? std::optional<SteadyTime>(now) : std::nullopt;
    }
    if (!files_.empty()) {
      Checkpoint next = files_.front().checkpoint(path_);
      const bool untouched = !stored_ && next.offset == 0;
      if (!untouched && (!stored_ || !(next == *stored_))) {
        out.moves.push_back({stored_, next});
        pending_ = std::move(next);
      }
    }
    last_empty_ = out.empty() && !out.full;
  }

  void committed() override {
    retired_.clear();
    if (!pending_) return;
    stored_ = std::move(pending_);
    pending_.reset();
    if (!files_.empty()) files_.front().committed = stored_->offset;
  }

  void housekeeping(VisitStore&) override {}

  bool caught_up() const override { return last_empty_ && files_.size() < 2; }

  std::uint64_t lag_bytes() const override {
    std::uint64_t lag = 0;
    for (std::size_t i = 0; i < files_.size(); ++i) {
      const std::uint64_t size = fd_size(files_[i].reader.fd());
      const std::uint64_t done = i == 0 ? files_[i].committed : 0;
      if (size > done) lag += size - done;
    }
    return lag;
  }

 private:
  std::optional<TrackedFile> open_tracked(const std::string& path) const {
    std::optional<OpenedFile> opened = open_regular(path);
    if (!opened) return std::nullopt;
    return TrackedFile(path_, path, *opened);
  }

  void push(TrackedFile file, std::uint64_t offset, const Checkpoint* stored) {
    file.restart_at(offset, stored);
    files_.push_back(std::move(file));
  }

  std::optional<TrackedFile> find_sibling(std::uint64_t inode) const {
    const std::string dir = directory_of(path_);
    const std::string base = base_name_of(path_);
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return std::nullopt;
    std::optional<std::string> match;
    while (const dirent* entry = ::readdir(d)) {
      const std::string name = entry->d_name;
      if (name.size() <= base.size() || name.compare(0, base.size(), base) != 0) continue;
      if (static_cast<std::uint64_t>(entry->d_ino) == inode) {
        match = join_path(dir, name);
        break;
      }
    }
    ::closedir(d);
    if (!match) return std::nullopt;
    std::optional<TrackedFile> file = open_tracked(*match);
    if (file && file->inode != inode) return std::nullopt;
    return file;
  }

  // A new file at PATH means the one(s) we read were renamed away.
  void notice_rotation(SteadyTime now) {
    auto st = stat_path(path_);
    if (!st) return;  // renamed, not yet reopened
    const auto inode = static_cast<std::uint64_t>(st->st_ino);
    if (!files_.empty() && files_.back().inode == inode) return;
    std::optional<TrackedFile> file = open_tracked(path_);
    if (!file) return;
    if (files_.empty()) {
      push(std::move(*file), 0, nullptr);
      return;
    }
    log_event("info", "log file rotated; draining the renamed file",
              {{"source", source_name_}, {"file", path_}});
    push_rotated_between(files_.back().inode, file->inode);
    push(std::move(*file), 0, nullptr);
    if (!rotated_at_) rotated_at_ = now;
  }

  // When PATH was rotated more than once since we last looked (a slow
  // transaction, a stopped ingester), nginx also wrote to the files that
  // were at PATH in between. logrotate's numbered names shift by one per
  // rotation, so those are the PATH.k in front of the one holding `older`
  // (the file we were reading): pushed oldest first. Nothing is pushed when
  // `older` is not under a numbered name (dated names, compressed): then
  // nothing tells which files came between.
  void push_rotated_between(std::uint64_t older, std::uint64_t newer) {
    std::vector<TrackedFile> between;  // newest first
    for (int k = 1; k <= kMaxNumberedRotations; ++k) {
      std::optional<TrackedFile> file = open_tracked(path_ + "." + std::to_string(k));
      if (!file) return;
      if (file->inode == older) {
        for (auto it = between.rbegin(); it != between.rend(); ++it) {
          log_event(
              "warn",
              "log file rotated more than once since the last read; reading the file in between",
              {{"source", source_name_}, {"file", it->path}});
          push(std::move(*it), 0, nullptr);
        }
        return;
      }
      if (file->inode != newer) between.push_back(std::move(*file));
    }
  }

  // Truncated (shorter than our position) or replaced (other first bytes,
  // e.g. copytruncate then new lines): read it again from its start.
  void check_content(TrackedFile& file) {
    const std::uint64_t size = fd_size(file.reader.fd());
    if (size < file.reader.position()) {
      report(Identity::kTruncated, file.path, stored_.value_or(Checkpoint{}));
      file.restart_at(0, nullptr);
      return;
    }
    if (file.fingerprint_bytes == 0) return;
    auto fp = fingerprint_of(file.reader.fd(), file.fingerprint_bytes);
    if (!fp || *fp != file.fingerprint) {
      report(Identity::kReplaced, file.path, stored_.value_or(Checkpoint{}),
             "first bytes changed under the same inode");
      file.restart_at(0, nullptr);
    }
  }

  static constexpr int kMaxNumberedRotations = 20;

  const std::string path_;
  const IngesterOptions& options_;
  std::deque<TrackedFile> files_;         // front: the checkpointed file; back: the one at PATH
  std::vector<TrackedFile> retired_;      // drained, until the move past them is committed
  std::optional<Checkpoint> stored_;      // the store's row for path_
  std::optional<Checkpoint> pending_;     // move collected, not yet committed
  std::optional<SteadyTime> rotated_at_;  // when the front was seen renamed away
  bool last_empty_ = false;
};

}  // namespace

// ---------------------------------------------------------------------------
// Ingester.

Ingester::Ingester(IngestSource source, VisitStore& store, IngesterOptions options)
    : source_(std::move(source)), store_(store), options_(options) {
  if (source_.kind == SourceKind::kJournalDirectory) {
    follower_ = std::make_unique<JournalFollower>(source_.name, source_.path, options_);
  } else {
    follower_ = std::make_unique<LogFollower>(source_.name, source_.path, options_);
  }
}

Ingester::~Ingester() { stop(); }

void Ingester::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run_loop(false); });
}

void Ingester::stop() {
  {
    std::lock_guard<std::mutex> lock(wake_mutex_);
    stopping_.store(true);
  }
  wake_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

bool Ingester::run_until_caught_up() { return run_loop(true); }

IngesterStats Ingester::stats() const {
  std::lock_guard<std::mutex> lock(stats_mutex_);
  return stats_;
}

bool Ingester::wait_for(std::chrono::milliseconds duration) {
  std::unique_lock<std::mutex> lock(wake_mutex_);
  return !wake_.wait_for(lock, duration, [this] { return stopping_.load(); });
}

namespace {

struct ParsedChunk {
  VisitBatch batch;  // rows and dead letters, in line order
  std::uint64_t repaired = 0;
};

// Pure (interpret_visit_line), so it runs on a helper thread.
ParsedChunk parse_chunk(std::vector<std::pair<std::string, RawLine>> lines, core::IpMode ip_mode) {
  ParsedChunk out;
  out.batch.rows.reserve(lines.size());
  for (auto& [key, line] : lines) {
    const std::uint64_t length = line.length - 1;  // without '\n'
    if (line.oversized) {
      out.batch.dead_letters.push_back(
          {key, line.offset,
           "line longer than " + std::to_string(core::kMaxVisitLineBytes) + " bytes",
           std::move(line.text), length});
      continue;
    }
    LineVerdict verdict = interpret_visit_line(line.text, ip_mode);
    if (verdict.row) {
      if (verdict.repaired) ++out.repaired;
      out.batch.rows.push_back(std::move(*verdict.row));
      continue;
    }
    line.text.resize(std::min(line.text.size(), kMaxDeadLetterBytes));
    out.batch.dead_letters.push_back(
        {key, line.offset, std::move(verdict.reason), std::move(line.text), length});
  }
  return out;
}

}  // namespace

// The lines of one transaction: chunks read from the follower, each parsed on
// a helper thread while the store sends the one before. Ends at the
// transaction's bounds (lines, time, dead-letter bytes), at stop(), or when a
// read finds no more complete lines.
class Ingester::Stream final : public VisitStream {
 public:
  // `first`: what the first collect gave (not empty).
  Stream(Ingester& ingester, Follower::Collected first, std::size_t asked)
      : ingester_(ingester), started_(SteadyClock::now()) {
    start_parse(std::move(first), asked);
  }

  ~Stream() override {
    if (pending_.valid()) pending_.wait();
  }

  bool next(VisitBatch& chunk) override {
    chunk.rows.clear();
    chunk.dead_letters.clear();
    if (!pending_.valid()) return false;
    ParsedChunk parsed = pending_.get();
    std::vector<DeadLetter> read_letters = std::move(pending_letters_);
    pending_letters_.clear();
    chunk.rows = std::move(parsed.batch.rows);
    chunk.dead_letters = std::move(parsed.batch.dead_letters);
    for (DeadLetter& d : read_letters) chunk.dead_letters.push_back(std::move(d));
    rows_ += chunk.rows.size();
    dead_letters_ += chunk.dead_letters.size();
    repaired_ += parsed.repaired;
    for (const DeadLetter& d : chunk.dead_letters) dead_letter_bytes_ += d.raw.size() + 64;
    read_ahead();
    return true;
  }

  std::vector<CheckpointMove> checkpoints() override { return std::move(moves_); }

  void wind_down() override { winding_down_ = true; }

  std::uint64_t rows() const { return rows_; }
  std::uint64_t dead_letters() const { return dead_letters_; }
  std::uint64_t repaired() const { return repaired_; }
  // The transaction ended at one of its bounds, with lines still waiting.
  bool more_waiting() const { return more_; }

 private:
  // Dead letters keep up to 4 KiB of their line: a transaction of garbage
  // ends early rather than hold all of it.
  static constexpr std::uint64_t kMaxDeadLetterBytesPerBatch = 16 * 1024 * 1024;

  void start_parse(Follower::Collected collected, std::size_t asked) {
    lines_ += collected.lines.size();
    more_ = collected.full || collected.lines.size() >= asked;
    for (CheckpointMove& move : collected.moves) {
      auto [it, fresh] = move_index_.emplace(move.next.file_key, moves_.size());
      if (fresh) {
        moves_.push_back(std::move(move));
      } else {
        // Every collect compares with the stored checkpoint, unchanged
        // until the commit: the latest move supersedes the earlier ones.
        moves_[it->second].next = std::move(move.next);
      }
    }
    if (collected.lines.empty() && collected.dead_letters.empty()) {
      more_ = false;  // only moves (nothing new was read): nothing to parse
      return;
    }
    pending_letters_ = std::move(collected.dead_letters);
    pending_ = std::async(std::launch::async, parse_chunk, std::move(collected.lines),
                          ingester_.options_.ip_mode);
  }

  void read_ahead() {
    const IngesterOptions& options = ingester_.options_;
    if (!more_ || winding_down_ || lines_ >= options.max_batch_lines ||
        SteadyClock::now() - started_ >= options.max_batch_time ||
        dead_letter_bytes_ >= kMaxDeadLetterBytesPerBatch || ingester_.stopping_.load()) {
      return;
    }
    const std::size_t asked = std::min(options.chunk_lines, options.max_batch_lines - lines_);
    Follower::Collected collected;
    ingester_.follower_->collect(asked, collected);
    if (collected.empty()) {
      more_ = false;
      return;
    }
    start_parse(std::move(collected), asked);
  }

  Ingester& ingester_;
  const SteadyTime started_;
  bool winding_down_ = false;                // the store asked to end the transaction
  std::future<ParsedChunk> pending_;         // the next chunk, being parsed
  std::vector<DeadLetter> pending_letters_;  // read with it (unterminated tails)
  std::vector<CheckpointMove> moves_;
  std::map<std::string, std::size_t> move_index_;  // file key -> index in moves_
  std::uint64_t lines_ = 0;                        // read so far
  std::uint64_t rows_ = 0;
  std::uint64_t dead_letters_ = 0;
  std::uint64_t repaired_ = 0;
  std::uint64_t dead_letter_bytes_ = 0;
  bool more_ = false;
};

bool Ingester::run_loop(bool until_caught_up) {
  bool need_reset = true;
  std::chrono::milliseconds backoff = options_.retry_initial;
  SteadyTime next_maintenance{};
  SteadyTime last_caught_up = SteadyClock::now();
  SteadyTime last_failure_log{};
  bool failing = false;

  while (!stopping_.load()) {
    try {
      if (need_reset) {
        follower_->reset(store_);
        need_reset = false;
      }
      const SteadyTime now = SteadyClock::now();
      if (now >= next_maintenance) {
        try {
          store_.maintain(core::now_ms());
        } catch (const StoreUnavailable&) {
          throw;
        } catch (const std::exception& e) {
          log_event("warn", "visits maintenance failed; retrying later",
                    {{"source", source_.name}, {"error", first_line(e.what())}});
        }
        next_maintenance = now + options_.maintenance_interval;
      }

      Follower::Collected collected;
      const std::size_t asked = std::min(options_.chunk_lines, options_.max_batch_lines);
      follower_->collect(asked, collected);
      const bool found = !collected.empty();
      bool more_waiting = false;
      if (found) {
        Stream stream(*this, std::move(collected), asked);
        if (store_.commit(source_.name, stream) == CommitOutcome::kCheckpointConflict) {
          log_event("warn",
                    "checkpoint changed by someone else (another ingester on this source?); "
                    "reloading",
                    {{"source", source_.name}});
          {
            std::lock_guard<std::mutex> lock(stats_mutex_);
            ++stats_.checkpoint_conflicts;
          }
          need_reset = true;
          if (!wait_for(backoff)) break;
          continue;
        }
        follower_->committed();
        more_waiting = stream.more_waiting();
        std::lock_guard<std::mutex> lock(stats_mutex_);
        stats_.lines_ingested += stream.rows();
        stats_.lines_dead_lettered += stream.dead_letters();
        stats_.lines_repaired += stream.repaired();
        ++stats_.batches;
      }
      follower_->housekeeping(store_);

      if (failing) {
        log_event("info", "ingestion resumed", {{"source", source_.name}});
        failing = false;
      }
      backoff = options_.retry_initial;
      const std::uint64_t lag = follower_->lag_bytes();
      const SteadyTime after = SteadyClock::now();
      if (lag == 0) last_caught_up = after;
      {
        std::lock_guard<std::mutex> lock(stats_mutex_);
        const Follower::Counters& c = follower_->counters();
        stats_.truncations = c.truncations;
        stats_.replacements = c.replacements;
        stats_.files_deleted = c.files_deleted;
        stats_.lag_bytes = lag;
        stats_.oldest_unread_age =
            lag == 0
                ? std::chrono::milliseconds(0)
                : std::chrono::duration_cast<std::chrono::milliseconds>(after - last_caught_up);
        stats_.database_ok = true;
      }
      if (more_waiting) continue;
      // Catching up: after a batch, look again at once rather than after a
      // poll interval (only an empty collect proves there is nothing left).
      if (until_caught_up && found) continue;
      if (until_caught_up && follower_->caught_up()) return true;
      if (!wait_for(options_.poll_interval)) break;
    } catch (const std::exception& e) {
      const bool unavailable = dynamic_cast<const StoreUnavailable*>(&e) != nullptr;
      const SteadyTime now = SteadyClock::now();
      if (!failing || now - last_failure_log >= kOutageLogInterval) {
        log_event(unavailable ? "warn" : "error",
                  unavailable ? "database unavailable; ingestion paused, retrying"
                              : "ingestion failed; retrying",
                  {{"source", source_.name},
                   {"error", first_line(e.what())},
                   {"retry_ms", std::to_string(backoff.count())}});
        last_failure_log = now;
      }
      failing = true;
      {
        std::lock_guard<std::mutex> lock(stats_mutex_);
        ++stats_.store_failures;
        if (unavailable) stats_.database_ok = false;
      }
      need_reset = true;
      if (!wait_for(backoff)) break;
      backoff = std::min(backoff * 2, options_.retry_max);
    }
  }
  return false;
}

}  // namespace origin
