#include "exporter/tombstones.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace exporter {
namespace {

std::string lowercase(std::string text) {
  for (char& c : text) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return text;
}

std::runtime_error io_error(const std::string& what, const std::string& path) {
  return std::runtime_error("tombstones: " + what + " " + path + ": " + std::strerror(errno));
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

bool is_tombstone_code(const std::string& code) {
  if (code.empty() || code.size() > 64) return false;
  for (const char c : code) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Tombstones::Tombstones(std::string dir) : dir_(std::move(dir)) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) throw std::runtime_error("tombstones: cannot create " + dir_ + ": " + ec.message());
  ::chmod(dir_.c_str(), 0755);
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) throw io_error("cannot open", dir_);
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (is_tombstone_code(name)) codes_[lowercase(name)] = 0;
  }
  ::closedir(d);
}

void Tombstones::touch(const std::string& name) {
  const std::string path = dir_ + "/" + name;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) throw io_error("cannot create", path);
  ::close(fd);
}

void Tombstones::unlink_name(const std::string& name) {
  const std::string path = dir_ + "/" + name;
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw io_error("cannot remove", path);
}

std::uint64_t Tombstones::add(const std::string& code) {
  if (!is_tombstone_code(code)) throw std::invalid_argument("tombstones: bad code " + code);
  const std::string name = lowercase(code);
  std::lock_guard<std::mutex> lock(mutex_);
  touch(kTombstoneAny);
  touch(name);
  const std::uint64_t generation = ++generation_;
  codes_[name] = generation;
  return generation;
}

std::uint64_t Tombstones::generation() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return generation_;
}

std::size_t Tombstones::remove_older_than(std::uint64_t generation) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::size_t removed = 0;
  for (auto it = codes_.begin(); it != codes_.end();) {
    if (it->second > generation) {
      ++it;
      continue;
    }
    unlink_name(it->first);
    it = codes_.erase(it);
    ++removed;
  }
  if (codes_.empty()) unlink_name(kTombstoneAny);
  if (removed > 0) fsync_dir(dir_);
  return removed;
}

std::vector<std::string> Tombstones::codes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> out;
  for (const auto& entry : codes_) out.push_back(entry.first);
  return out;
}

}  // namespace exporter
