#include "exporter/bundle_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace exporter {
namespace {

[[noreturn]] void fail(const std::string& what, const std::string& path) {
  throw std::runtime_error(what + " " + path + ": " + std::strerror(errno));
}

void fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) fail("cannot open", path);
  if (::fsync(fd) != 0) {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    fail("cannot fsync", path);
  }
  ::close(fd);
}

void write_file(const std::string& path, const std::string& content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create", path);
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t wrote = ::write(fd, content.data() + done, content.size() - done);
    if (wrote < 0) {
      if (errno == EINTR) continue;
      const int saved = errno;
      ::close(fd);
      errno = saved;
      fail("cannot write", path);
    }
    done += static_cast<std::size_t>(wrote);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) fail("cannot fsync", path);
}

}  // namespace

std::string write_bundle(const Bundle& bundle, const std::string& exports_dir) {
  const std::string& version = bundle.version;
  std::error_code ec;
  std::filesystem::create_directories(exports_dir, ec);
  if (ec) throw std::runtime_error("cannot create " + exports_dir + ": " + ec.message());
  const std::string final_dir = exports_dir + "/" + version;
  if (std::filesystem::exists(final_dir)) {
    throw std::runtime_error("export folder already exists: " + final_dir);
  }
  const std::string temp_dir = exports_dir + "/." + version + ".tmp-" + std::to_string(::getpid());
  std::filesystem::remove_all(temp_dir, ec);
  if (::mkdir(temp_dir.c_str(), 0755) != 0) fail("cannot create", temp_dir);
  try {
    for (const BundleFile& file : bundle.files)
      write_file(temp_dir + "/" + file.name, file.content);
    fsync_path(temp_dir, O_RDONLY | O_DIRECTORY);
    if (::rename(temp_dir.c_str(), final_dir.c_str()) != 0) fail("cannot rename to", final_dir);
    fsync_path(exports_dir, O_RDONLY | O_DIRECTORY);
  } catch (...) {
    std::filesystem::remove_all(temp_dir, ec);
    throw;
  }
  return final_dir;
}

std::string folder_digest(const std::string& folder) {
  ContentHasher hasher;
  std::vector<char> buffer(1 << 20);
  for (const char* name : kContentFiles) {
    const std::string path = folder + "/" + name;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot open", path);
    struct FdCloser {
      int fd;
      ~FdCloser() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) fail("cannot stat", path);
    if (!S_ISREG(st.st_mode)) throw std::runtime_error(path + " is not a regular file");
    const auto size = static_cast<std::size_t>(st.st_size);
    hasher.start_file(name, size);
    std::size_t done = 0;
    while (done < size) {
      const ssize_t got = ::read(fd, buffer.data(), std::min(buffer.size(), size - done));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) fail("cannot read", path);
      if (got == 0) throw std::runtime_error(path + " shrank while being read");
      hasher.update(buffer.data(), static_cast<std::size_t>(got));
      done += static_cast<std::size_t>(got);
    }
  }
  return hasher.hex();
}

}  // namespace exporter
