#include "origin/journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace origin {
namespace {

constexpr std::string_view kDoneSuffix = ".jsonl";
constexpr std::string_view kOpenSuffix = ".jsonl.open";
constexpr std::string_view kLockSuffix = ".seq";
constexpr std::size_t kSequenceDigits = 20;
constexpr std::size_t kMaxPrefixLength = 100;
constexpr std::chrono::seconds kRetryInterval{1};
constexpr mode_t kFileMode = 0640;  // lines hold client addresses
// Space reserved by the health probe: enough to tell a full disk.
constexpr off_t kProbeBytes = 4096;

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

bool valid_prefix(std::string_view prefix) {
  if (prefix.empty() || prefix.size() > kMaxPrefixLength || prefix.front() == '.') return false;
  for (char c : prefix) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string error_text(std::string_view operation, const std::string& path, int error) {
  std::string text(operation);
  text.append(" ");
  text.append(path);
  text.append(": ");
  text.append(std::generic_category().message(error));
  return text;
}

int truncate_to(int fd, std::uint64_t size) {
  int rc = 0;
  do {
    rc = ::ftruncate(fd, static_cast<off_t>(size));
  } while (rc != 0 && errno == EINTR);
  return rc;
}

// Offset just past the last '\n' of the file, or -1 with errno set.
off_t end_of_last_line(int fd, off_t size) {
  char buffer[64 * 1024];
  off_t pos = size;
  while (pos > 0) {
    const off_t chunk = std::min<off_t>(pos, static_cast<off_t>(sizeof buffer));
    pos -= chunk;
    const ssize_t got = ::pread(fd, buffer, static_cast<std::size_t>(chunk), pos);
    if (got != chunk) {
      if (got >= 0) errno = EIO;
      return -1;
    }
    for (off_t i = chunk; i > 0; --i) {
      if (buffer[i - 1] == '\n') return pos + i;
    }
  }
  return 0;
}

}  // namespace

std::string journal_file_name(std::string_view prefix, std::uint64_t sequence, bool open) {
  char digits[kSequenceDigits + 1];
  std::snprintf(digits, sizeof digits, "%020llu", static_cast<unsigned long long>(sequence));
  std::string name(prefix);
  name.push_back('-');
  name.append(digits);
  name.append(open ? kOpenSuffix : kDoneSuffix);
  return name;
}

std::optional<JournalFileName> parse_journal_file_name(std::string_view name) {
  JournalFileName parsed;
  if (ends_with(name, kOpenSuffix)) {
    parsed.open = true;
    name.remove_suffix(kOpenSuffix.size());
  } else if (ends_with(name, kDoneSuffix)) {
    name.remove_suffix(kDoneSuffix.size());
  } else {
    return std::nullopt;
  }
  if (name.size() < kSequenceDigits + 2 || name[name.size() - kSequenceDigits - 1] != '-') {
    return std::nullopt;
  }
  std::uint64_t sequence = 0;
  for (char c : name.substr(name.size() - kSequenceDigits)) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (sequence > (UINT64_MAX - digit) / 10) return std::nullopt;
    sequence = sequence * 10 + digit;
  }
  parsed.prefix = std::string(name.substr(0, name.size() - kSequenceDigits - 1));
  parsed.sequence = sequence;
  return parsed;
}

JournalWriter::JournalWriter(std::string dir, std::string file_prefix, JournalOptions options)
    : dir_(std::move(dir)), prefix_(std::move(file_prefix)), options_(std::move(options)) {
  if (dir_.empty()) throw std::invalid_argument("journal directory is empty");
  if (!valid_prefix(prefix_)) {
    throw std::invalid_argument("journal prefix must match [A-Za-z0-9._-]{1,100}: " + prefix_);
  }
  const SteadyTime t = now();
  if (acquire_lock(t)) {
    auto highest = recover_and_find_last_sequence(t);
    if (highest) {
      last_sequence_ = std::max(last_sequence_, *highest);
    } else {
      release_lock();
    }
  }
}

JournalWriter::~JournalWriter() {
  close_current();
  release_lock();
}

bool JournalWriter::append(std::string_view line) {
  if (line.empty() || line.find('\n') != line.size() - 1) {
    throw std::invalid_argument("a journal line must end with its only newline");
  }
  return write_block(line);
}

bool JournalWriter::append_lines(std::string_view lines) {
  if (lines.empty() || lines.back() != '\n') {
    throw std::invalid_argument("journal lines must end with a newline");
  }
  return write_block(lines);
}

bool JournalWriter::write_block(std::string_view lines) {
  const SteadyTime t = now();
  if (!healthy() && t < retry_after_) return false;
  if (fd_ >= 0 && rotation_due(t, lines.size())) close_current();
  if (fd_ < 0 && !open_next(t)) return false;
  if (!write_line(lines, t)) return false;
  healthy_.store(true, std::memory_order_release);
  return true;
}

void JournalWriter::rotate_if_idle() {
  const SteadyTime t = now();
  if (fd_ >= 0 && size_ > 0 && t - opened_at_ >= options_.max_age) close_current();
  if (!healthy() && t >= retry_after_) probe(t);
}

std::string JournalWriter::last_error() const {
  std::lock_guard<std::mutex> lock(error_mutex_);
  return last_error_;
}

JournalWriter::SteadyTime JournalWriter::now() const {
  return options_.clock ? options_.clock() : std::chrono::steady_clock::now();
}

bool JournalWriter::rotation_due(SteadyTime now, std::size_t next_line_bytes) const {
  if (size_ == 0) return false;
  return size_ + next_line_bytes > options_.max_bytes || now - opened_at_ >= options_.max_age;
}

bool JournalWriter::acquire_lock(SteadyTime now) {
  if (lock_fd_ >= 0) return true;
  const std::string path = path_of(prefix_ + std::string(kLockSuffix));
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, kFileMode);
  if (fd < 0) {
    fail("open", path, errno, now);
    return false;
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    ::close(fd);
    if (error == EWOULDBLOCK) {
      fail_with("lock " + path + ": held by another journal writer with this prefix", now);
    } else {
      fail("lock", path, error, now);
    }
    return false;
  }
  // An unreadable or garbled value is not fatal: the directory scan still
  // finds the highest sequence of every file that exists.
  char text[32];
  const ssize_t got = ::pread(fd, text, sizeof text, 0);
  std::uint64_t stored = 0;
  for (ssize_t i = 0; i < got && text[i] >= '0' && text[i] <= '9'; ++i) {
    const auto digit = static_cast<std::uint64_t>(text[i] - '0');
    if (stored > (UINT64_MAX - digit) / 10) break;
    stored = stored * 10 + digit;
  }
  last_sequence_ = std::max(last_sequence_, stored);
  lock_fd_ = fd;
  return true;
}

void JournalWriter::release_lock() {
  if (lock_fd_ < 0) return;
  ::close(lock_fd_);
  lock_fd_ = -1;
}

std::optional<std::uint64_t> JournalWriter::recover_and_find_last_sequence(SteadyTime now) {
  DIR* dir = ::opendir(dir_.c_str());
  if (dir == nullptr) {
    fail("open directory", dir_, errno, now);
    return std::nullopt;
  }
  std::uint64_t highest = 0;
  std::vector<std::uint64_t> leftovers;
  while (const dirent* entry = ::readdir(dir)) {
    auto parsed = parse_journal_file_name(entry->d_name);
    if (!parsed || parsed->prefix != prefix_) continue;
    highest = std::max(highest, parsed->sequence);
    const bool current = fd_ >= 0 && parsed->sequence == sequence_;
    if (parsed->open && !current) leftovers.push_back(parsed->sequence);
  }
  ::closedir(dir);
  std::sort(leftovers.begin(), leftovers.end());

  // Failing to complete a leftover does not stop journaling: its complete
  // lines can still be read, and the next rotation tries again.
  for (std::uint64_t sequence : leftovers) {
    const std::string from = path_of(journal_file_name(prefix_, sequence, true));
    const std::string to = path_of(journal_file_name(prefix_, sequence, false));
    // O_NONBLOCK: a FIFO under a journal name must not hang the writer.
    const int fd = ::open(from.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
      note_error(error_text("open leftover", from, errno));
      continue;
    }
    struct stat st {};
    off_t keep = -1;
    if (::fstat(fd, &st) != 0) {
      note_error(error_text("stat leftover", from, errno));
    } else if (!S_ISREG(st.st_mode)) {
      note_error("leftover " + from + " is not a regular file");
    } else if ((keep = end_of_last_line(fd, st.st_size)) < 0) {
      note_error(error_text("read leftover", from, errno));
    } else if (keep != st.st_size && truncate_to(fd, static_cast<std::uint64_t>(keep)) != 0) {
      note_error(error_text("truncate torn line of", from, errno));
      keep = -1;
    }
    ::close(fd);
    if (keep < 0) continue;
    if (::rename(from.c_str(), to.c_str()) != 0) note_error(error_text("rename", from, errno));
  }
  return highest;
}

bool JournalWriter::open_next(SteadyTime now) {
  if (!acquire_lock(now)) return false;
  auto highest = recover_and_find_last_sequence(now);
  if (!highest) {
    release_lock();
    return false;
  }
  last_sequence_ = std::max(last_sequence_, *highest);
  const std::string lock_path = path_of(prefix_ + std::string(kLockSuffix));
  // EEXIST means someone else made a file under our name; skip past it
  // rather than append to a file we did not create.
  for (int attempt = 0; attempt < 16; ++attempt) {
    const std::uint64_t sequence = last_sequence_ + 1;
    char text[kSequenceDigits + 2];
    std::snprintf(text, sizeof text, "%020llu\n", static_cast<unsigned long long>(sequence));
    const ssize_t wrote = ::pwrite(lock_fd_, text, kSequenceDigits + 1, 0);
    if (wrote != static_cast<ssize_t>(kSequenceDigits + 1)) {
      fail("write", lock_path, wrote < 0 ? errno : ENOSPC, now);
      release_lock();
      return false;
    }
    last_sequence_ = sequence;
    const std::string path = path_of(journal_file_name(prefix_, sequence, true));
    const int fd =
        ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, kFileMode);
    if (fd < 0) {
      if (errno == EEXIST) continue;
      fail("open", path, errno, now);
      release_lock();
      return false;
    }
    fd_ = fd;
    sequence_ = sequence;
    size_ = 0;
    opened_at_ = now;
    return true;
  }
  fail("open", path_of(journal_file_name(prefix_, last_sequence_, true)), EEXIST, now);
  release_lock();
  return false;
}

void JournalWriter::close_current() {
  if (fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
  // If the rename fails the file stays .open and the next open_next
  // completes it.
  const std::string from = path_of(journal_file_name(prefix_, sequence_, true));
  const std::string to = path_of(journal_file_name(prefix_, sequence_, false));
  if (::rename(from.c_str(), to.c_str()) != 0) note_error(error_text("rename", from, errno));
}

bool JournalWriter::write_line(std::string_view line, SteadyTime now) {
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t wrote = ::write(fd_, line.data() + done, line.size() - done);
    if (wrote > 0) {
      done += static_cast<std::size_t>(wrote);
      continue;
    }
    if (wrote < 0 && errno == EINTR) continue;
    const int error = wrote < 0 ? errno : EIO;
    const std::string path = path_of(journal_file_name(prefix_, sequence_, true));
    if (done > 0 && truncate_to(fd_, size_) != 0) {
      // The torn line stays until recovery cuts it, which happens only to a
      // closed file: close this one, leaving it .open.
      const int truncate_error = errno;
      fail_with(
          error_text("write", path, error) + "; " + error_text("ftruncate", path, truncate_error),
          now);
      ::close(fd_);
      fd_ = -1;
      return false;
    }
    fail("write", path, error, now);
    return false;
  }
  size_ += done;
  return true;
}

void JournalWriter::probe(SteadyTime now) {
  if (fd_ < 0 && !open_next(now)) return;
  int rc = 0;
  do {
    rc = ::fallocate(fd_, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(size_), kProbeBytes);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0 && errno != EOPNOTSUPP && errno != ENOSYS) {
    fail("reserve space in", path_of(journal_file_name(prefix_, sequence_, true)), errno, now);
    return;
  }
  healthy_.store(true, std::memory_order_release);
}

std::string JournalWriter::path_of(std::string_view name) const {
  std::string path = dir_;
  if (path.back() != '/') path.push_back('/');
  path.append(name);
  return path;
}

void JournalWriter::fail(std::string_view operation, const std::string& path, int error,
                         SteadyTime now) {
  fail_with(error_text(operation, path, error), now);
}

void JournalWriter::fail_with(std::string text, SteadyTime now) {
  note_error(std::move(text));
  healthy_.store(false, std::memory_order_release);
  retry_after_ = now + kRetryInterval;
}

void JournalWriter::note_error(std::string text) {
  std::lock_guard<std::mutex> lock(error_mutex_);
  last_error_ = std::move(text);
}

}  // namespace origin
