#include "exporter/publish.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>

#include "exporter/bundle.h"
#include "exporter/bundle_writer.h"

extern char** environ;

namespace exporter {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// A failed step: its name and the cause, for the one-line summary.
struct StepError {
  std::string step;
  std::string cause;
};

std::string errno_text() { return std::strerror(errno); }

std::string seconds_text(Clock::duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  std::ostringstream out;
  out << ms / 1000 << '.' << (ms % 1000) / 100 << (ms % 100) / 10 << ms % 10 << " s";
  return out.str();
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

struct Manifest {
  std::string version;
  std::string digest;
};

std::optional<Manifest> read_manifest(const std::string& folder) {
  const std::optional<std::string> text = read_file(folder + "/" + kManifestFile);
  if (!text) return std::nullopt;
  rapidjson::Document doc;
  doc.Parse(text->data(), text->size());
  if (doc.HasParseError() || !doc.IsObject()) return std::nullopt;
  const auto version = doc.FindMember("version");
  const auto digest = doc.FindMember("digest");
  if (version == doc.MemberEnd() || !version->value.IsString() || digest == doc.MemberEnd() ||
      !digest->value.IsString()) {
    return std::nullopt;
  }
  return Manifest{version->value.GetString(), digest->value.GetString()};
}

std::optional<std::string> read_link(const std::string& path) {
  std::error_code ec;
  const fs::path target = fs::read_symlink(path, ec);
  if (ec) return std::nullopt;
  return target.string();
}

// The folder a symlink target names, relative targets taken from the link's
// own folder.
std::string resolve_target(const std::string& link, const std::string& target) {
  const fs::path t(target);
  if (t.is_absolute()) return t.string();
  return (fs::path(link).parent_path() / t).lexically_normal().string();
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + dir + ": " + errno_text());
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  if (rc != 0) {
    errno = saved;
    throw std::runtime_error("cannot fsync " + dir + ": " + errno_text());
  }
}

// Points `link` at `target`: a new symlink beside it renamed over it, then
// the folder fsynced, so the link is the old one or the new one, never absent.
void swap_link(const std::string& link, const std::string& target) {
  const std::string temp = link + ".tmp";
  if (::unlink(temp.c_str()) != 0 && errno != ENOENT) {
    throw std::runtime_error("cannot remove " + temp + ": " + errno_text());
  }
  if (::symlink(target.c_str(), temp.c_str()) != 0) {
    throw std::runtime_error("cannot create symlink " + temp + ": " + errno_text());
  }
  if (::rename(temp.c_str(), link.c_str()) != 0) {
    const std::string cause = errno_text();
    ::unlink(temp.c_str());
    throw std::runtime_error("cannot rename " + temp + " over " + link + ": " + cause);
  }
  fsync_dir(fs::path(link).parent_path().string());
}

struct CommandOutput {
  bool finished = false;  // false: killed at the timeout
  int status = 0;         // waitpid status when finished
  std::string output;     // stdout and stderr interleaved
};

// Runs argv (PATH searched) with stdout and stderr captured, killing it after
// `timeout`.
CommandOutput run_captured(const std::vector<std::string>& argv,
                           std::chrono::milliseconds timeout) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe: " + errno_text());
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 2);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  if (rc != 0) {
    ::close(pipe_fds[0]);
    throw std::runtime_error("cannot run " + argv[0] + ": " + std::strerror(rc));
  }
  CommandOutput result;
  const auto deadline = Clock::now() + timeout;
  char buffer[4096];
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    pollfd p{pipe_fds[0], POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;
    const ssize_t got = ::read(pipe_fds[0], buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      result.finished = true;
      break;
    }
    result.output.append(buffer, static_cast<std::size_t>(got));
  }
  ::close(pipe_fds[0]);
  if (!result.finished) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.status = status;
  return result;
}

// The last non-empty line of `text`.
std::string last_line(const std::string& text) {
  std::string line;
  std::istringstream lines(text);
  for (std::string l; std::getline(lines, l);) {
    if (!l.empty()) line = l;
  }
  return line;
}

// The first line holding `needle`.
std::string line_with(const std::string& text, const std::string& needle) {
  std::istringstream lines(text);
  for (std::string l; std::getline(lines, l);) {
    if (l.find(needle) != std::string::npos) return l;
  }
  return "";
}

std::vector<std::string> nginx_base_args(const PublishOptions& options) {
  std::vector<std::string> args{options.nginx_bin};
  if (!options.nginx_prefix.empty()) {
    args.push_back("-p");
    args.push_back(options.nginx_prefix);
  }
  return args;
}

// Replaces every `<path>/` of `conf` with `<replacement>/`; returns how many.
std::size_t replace_path(std::string& conf, const std::string& path,
                         const std::string& replacement) {
  std::size_t count = 0;
  const std::string needle = path + "/";
  for (std::size_t at = conf.find(needle); at != std::string::npos;
       at = conf.find(needle, at + replacement.size() + 1)) {
    conf.replace(at, needle.size(), replacement + "/");
    ++count;
  }
  return count;
}

// `nginx -t` on a copy of the real configuration, beside it (so relative
// includes resolve alike), with the live link replaced by `folder`.
void validate(const PublishOptions& options, const std::string& folder) {
  const std::optional<std::string> conf = read_file(options.nginx_conf);
  if (!conf) throw StepError{"validate", "cannot read " + options.nginx_conf};
  std::string copy = *conf;
  const std::string absolute_folder = fs::absolute(folder).lexically_normal().string();
  std::size_t count = replace_path(copy, options.live_link, absolute_folder);
  const std::string absolute_link = fs::absolute(options.live_link).lexically_normal().string();
  if (absolute_link != options.live_link)
    count += replace_path(copy, absolute_link, absolute_folder);
  if (count == 0) {
    throw StepError{"validate", options.nginx_conf + " never names " + options.live_link +
                                    "/, so the new version cannot be checked"};
  }
  const fs::path conf_path(options.nginx_conf);
  const std::string check_conf =
      (conf_path.parent_path() /
       ("." + conf_path.filename().string() + ".publish-check-" + std::to_string(::getpid())))
          .string();
  {
    std::ofstream out(check_conf, std::ios::binary | std::ios::trunc);
    out << copy;
    if (!out.flush()) throw StepError{"validate", "cannot write " + check_conf};
  }
  std::vector<std::string> args = nginx_base_args(options);
  for (const char* arg : {"-e", "stderr", "-t", "-c"}) args.push_back(arg);
  args.push_back(check_conf);
  CommandOutput result;
  try {
    result = run_captured(args, options.validate_timeout);
  } catch (const std::exception& e) {
    ::unlink(check_conf.c_str());
    throw StepError{"validate", e.what()};
  }
  ::unlink(check_conf.c_str());
  if (!result.finished) {
    throw StepError{"validate", "nginx -t still running after " +
                                    seconds_text(options.validate_timeout) + ", killed"};
  }
  // A warning fails too: "could not build optimal map_hash" means slow reloads.
  for (const char* level : {"[emerg]", "[alert]", "[crit]", "[error]", "[warn]"}) {
    const std::string line = line_with(result.output, level);
    if (!line.empty()) throw StepError{"validate", "nginx -t: " + line};
  }
  if (!WIFEXITED(result.status) || WEXITSTATUS(result.status) != 0) {
    throw StepError{"validate", "nginx -t failed: " + last_line(result.output)};
  }
}

// The arguments of every `name` directive of the main context of an nginx
// configuration (outside any block; included files are not read), quotes
// removed.
std::vector<std::vector<std::string>> main_directives(const std::string& conf,
                                                      const std::string& name) {
  std::vector<std::vector<std::string>> found;
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  int depth = 0;
  auto end_word = [&] {
    if (in_word) words.push_back(word);
    word.clear();
    in_word = false;
  };
  for (std::size_t i = 0; i < conf.size(); ++i) {
    const char c = conf[i];
    if ((c == '"' || c == '\'') && !in_word) {
      in_word = true;
      for (++i; i < conf.size() && conf[i] != c; ++i) {
        if (conf[i] == '\\' && i + 1 < conf.size()) ++i;
        word.push_back(conf[i]);
      }
    } else if (c == '#' && !in_word) {
      while (i < conf.size() && conf[i] != '\n') ++i;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      end_word();
    } else if (c == ';' || c == '{' || c == '}') {
      end_word();
      if (c == ';' && depth == 0 && !words.empty() && words[0] == name) {
        found.emplace_back(words.begin() + 1, words.end());
      }
      if (c == '{') ++depth;
      if (c == '}' && depth > 0) --depth;
      words.clear();
    } else {
      in_word = true;
      word.push_back(c);
    }
  }
  return found;
}

// The pid file: --nginx-pid, else the `pid` directive of the configuration
// (relative to the prefix, as nginx reads it).
std::string pid_file(const PublishOptions& options) {
  if (!options.nginx_pid.empty()) return options.nginx_pid;
  const std::optional<std::string> conf = read_file(options.nginx_conf);
  if (conf) {
    for (const std::vector<std::string>& args : main_directives(*conf, "pid")) {
      if (args.size() != 1 || args[0].empty()) continue;
      if (args[0][0] == '/') return args[0];
      return (fs::path(options.nginx_prefix) / args[0]).string();
    }
  }
  throw StepError{"reload", "no pid directive in " + options.nginx_conf + "; pass --nginx-pid"};
}

// The file nginx's master logs a failed or warned reload into: the first
// `error_log FILE [LEVEL]` of the main context whose level lets [warn] lines
// through. nullopt, with the reason in `why_not`, when there is none.
std::optional<std::string> master_error_log(const PublishOptions& options, std::string& why_not) {
  const std::optional<std::string> conf = read_file(options.nginx_conf);
  if (!conf) {
    why_not = "cannot read " + options.nginx_conf;
    return std::nullopt;
  }
  why_not =
      "no error_log FILE at level warn (or lower) in the main context of " + options.nginx_conf;
  for (const std::vector<std::string>& args : main_directives(*conf, "error_log")) {
    if (args.empty() || args.size() > 2) continue;
    const std::string& path = args[0];
    const std::string level = args.size() == 2 ? args[1] : "error";  // nginx's default
    if (level != "warn" && level != "notice" && level != "info" && level != "debug") continue;
    if (path == "stderr" || path.rfind("syslog:", 0) == 0 || path.rfind("memory:", 0) == 0) {
      continue;
    }
    if (path[0] == '/') return path;
    if (options.nginx_prefix.empty()) {
      why_not = "error_log " + path + " is relative, and there is no --nginx-prefix";
      continue;
    }
    return (fs::path(options.nginx_prefix) / path).string();
  }
  return std::nullopt;
}

// nginx's master pid, or nullopt when the pid file is missing or its process
// is gone.
std::optional<pid_t> running_master(const std::string& path) {
  const std::optional<std::string> text = read_file(path);
  if (!text) return std::nullopt;
  long value = 0;
  try {
    value = std::stol(*text);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (value <= 0) return std::nullopt;
  const auto pid = static_cast<pid_t>(value);
  if (::kill(pid, 0) != 0 && errno == ESRCH) return std::nullopt;
  return pid;
}

void reload(pid_t master) {
  if (::kill(master, SIGHUP) != 0) {
    throw StepError{"reload",
                    "cannot signal nginx (pid " + std::to_string(master) + "): " + errno_text()};
  }
}

struct Url {
  std::string host;
  std::string port;
  std::string path;
};

Url parse_url(const std::string& url) {
  const std::string scheme = "http://";
  if (url.compare(0, scheme.size(), scheme) != 0) {
    throw std::invalid_argument("probe URL must start with http://: " + url);
  }
  const std::string rest = url.substr(scheme.size());
  const std::size_t slash = rest.find('/');
  const std::string authority = rest.substr(0, slash);
  Url parsed;
  parsed.path = slash == std::string::npos ? "/" : rest.substr(slash);
  const std::size_t colon = authority.rfind(':');
  if (colon == std::string::npos || authority.back() == ']') {
    parsed.host = authority;
    parsed.port = "80";
  } else {
    parsed.host = authority.substr(0, colon);
    parsed.port = authority.substr(colon + 1);
  }
  if (parsed.host.size() > 1 && parsed.host.front() == '[') {
    parsed.host = parsed.host.substr(1, parsed.host.size() - 2);
  }
  if (parsed.host.empty()) throw std::invalid_argument("probe URL has no host: " + url);
  return parsed;
}

// One GET; returns the body of a 200, or throws std::runtime_error saying
// what came instead.
std::string http_get(const Url& url, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(url.host.c_str(), url.port.c_str(), &hints, &found);
  if (rc != 0) throw std::runtime_error("cannot resolve " + url.host + ": " + gai_strerror(rc));
  const int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ::freeaddrinfo(found);
    throw std::runtime_error("socket: " + errno_text());
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  const int connected = ::connect(fd, found->ai_addr, found->ai_addrlen);
  ::freeaddrinfo(found);
  if (connected != 0 && errno != EINPROGRESS) throw std::runtime_error(errno_text());
  auto wait_for = [&](short events) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    pollfd p{fd, events, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) {
      throw std::runtime_error("timed out");
    }
  };
  wait_for(POLLOUT);
  int error = 0;
  socklen_t length = sizeof error;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
  if (error != 0) throw std::runtime_error(std::strerror(error));
  const std::string request =
      "GET " + url.path + " HTTP/1.0\r\nHost: " + url.host + "\r\nConnection: close\r\n\r\n";
  std::size_t sent = 0;
  while (sent < request.size()) {
    wait_for(POLLOUT);
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) throw std::runtime_error(errno_text());
    if (n > 0) sent += static_cast<std::size_t>(n);
  }
  std::string response;
  char buffer[4096];
  while (response.size() < 65536) {
    wait_for(POLLIN);
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n < 0) throw std::runtime_error(errno_text());
    if (n == 0) break;
    response.append(buffer, static_cast<std::size_t>(n));
  }
  const std::size_t header_end = response.find("\r\n\r\n");
  const std::string status_line = response.substr(0, response.find("\r\n"));
  if (header_end == std::string::npos || status_line.size() < 12 ||
      status_line.compare(9, 3, "200") != 0) {
    throw std::runtime_error("answered \"" + status_line + "\"");
  }
  return response.substr(header_end + 4);
}

std::string trimmed(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

// Polls the probe until it has answered `version` for `settle` without a
// break, nginx's master dies, or `timeout` passes; throws StepError with the
// last observation. One answer is not enough: after a reload nginx's master
// waits 100 ms before telling the old workers to stop accepting, and until
// then a connection may still reach a worker with the old maps.
void await_version(const PublishOptions& options, const std::string& version, pid_t master,
                   const std::string& step, std::chrono::milliseconds settle,
                   std::chrono::milliseconds timeout) {
  const Url url = parse_url(options.probe_url);
  const auto deadline = Clock::now() + timeout;
  std::string last = "no answer";
  bool serving = false;  // every answer since serving_since was `version`
  Clock::time_point serving_since;
  auto pause = 20ms;
  while (true) {
    try {
      const std::string body = trimmed(http_get(url, 2000ms));
      if (body == version) {
        if (!serving) serving_since = Clock::now();
        serving = true;
        if (Clock::now() - serving_since >= settle) return;
        pause = 20ms;
      } else {
        serving = false;
        last = "still serves \"" + body + "\"";
      }
    } catch (const std::runtime_error& e) {
      serving = false;
      last = e.what();
    }
    if (::kill(master, 0) != 0 && errno == ESRCH) {
      throw StepError{step, "nginx (pid " + std::to_string(master) + ") exited"};
    }
    if (Clock::now() + pause > deadline) {
      throw StepError{step, options.probe_url + " did not serve " + version + " within " +
                                seconds_text(timeout) + " (" + last + ")"};
    }
    std::this_thread::sleep_for(pause);
    if (!serving) pause = std::min<std::chrono::milliseconds>(pause * 2, 50ms);
  }
}

// An answer of the new version held this long ends the probe.
constexpr std::chrono::milliseconds kSettle = 500ms;

// How long a reload may take to serve: the master loads the configuration as
// `nginx -t` did (which took `validate_time`) before it starts new workers,
// on a machine that may be as busy as then.
std::chrono::milliseconds probe_timeout(const PublishOptions& options,
                                        std::chrono::milliseconds validate_time) {
  return std::max(options.probe_timeout, 3 * validate_time);
}

// Removes version folders beyond the newest `keep`, never `protect`ed ones.
std::size_t prune(const PublishOptions& options, const std::vector<std::string>& protect,
                  std::ostream& progress) {
  std::vector<std::string> versions = list_versions(options.exports_dir);
  std::size_t removed = 0;
  std::size_t kept = 0;
  for (auto it = versions.rbegin(); it != versions.rend(); ++it) {
    const bool is_protected = std::find(protect.begin(), protect.end(), *it) != protect.end();
    if (is_protected || kept < options.keep) {
      ++kept;
      continue;
    }
    std::error_code ec;
    fs::remove_all(fs::path(options.exports_dir) / *it, ec);
    if (ec) {
      progress << "exporter: publish: cannot remove old version " << *it << ": " << ec.message()
               << std::endl;
    } else {
      ++removed;
    }
  }
  return removed;
}

// The version folder name of a link target inside exports_dir, or "".
std::string version_in_exports(const PublishOptions& options, const std::string& folder) {
  std::error_code ec;
  const fs::path canonical_folder = fs::weakly_canonical(folder, ec);
  const fs::path canonical_exports = fs::weakly_canonical(options.exports_dir, ec);
  if (canonical_folder.parent_path() != canonical_exports) return "";
  return canonical_folder.filename().string();
}

// The checks of our own before anything changes: the manifest's digest is an
// xxh3_64 one, and the files on disk still have it (all there, complete,
// unchanged since compile). Returns the bytes of the files nginx loads.
std::uintmax_t check_bundle(const std::string& folder, const Manifest& manifest) {
  const std::string algorithm = "xxh3_64:";
  if (manifest.digest.compare(0, algorithm.size(), algorithm) != 0) {
    throw StepError{"validate", folder + "/" + kManifestFile +
                                    " has a digest of unknown kind: " + manifest.digest};
  }
  std::string actual;
  try {
    actual = algorithm + folder_digest(folder);
  } catch (const std::exception& e) {
    throw StepError{"validate", e.what()};
  }
  if (actual != manifest.digest) {
    throw StepError{"validate", "the files of " + folder + " have digest " + actual +
                                    ", its manifest says " + manifest.digest +
                                    ": changed or damaged since compile"};
  }
  std::uintmax_t bytes = 0;
  for (const char* name : {kNginxMapFile, kVersionFile}) {
    std::error_code ec;
    bytes += fs::file_size(fs::path(folder) / name, ec);
    if (ec) throw StepError{"validate", folder + "/" + name + ": " + ec.message()};
  }
  return bytes;
}

// How long nginx's master may take to load `bytes` of map and version files
// on a busy machine. Measured here: 27-40 MB per second of its CPU time (1M
// entries, 83 MB: 2.1 s; 5M, 419 MB: 12.5-15.5 s), 10-16 MB per second of
// wall time with the 2 cores saturated by other work; 4 MB/s leaves room
// beyond that. No nginx -t time to scale from, and unlike the previous
// publish's time this holds for the first publish and for a map that grew.
std::chrono::milliseconds load_allowance(std::uintmax_t bytes) {
  constexpr std::uintmax_t kBytesPerMs = 4000;
  return std::chrono::milliseconds(bytes / kBytesPerMs);
}

// A child process of nginx's master, and whether it is a worker that still
// accepts connections: nginx retitles a worker "worker process is shutting
// down" as it closes its listening sockets.
struct Child {
  pid_t pid;
  bool accepting;
};

// The master's children as /proc lists them, or nullopt when it does not.
std::optional<std::vector<Child>> children_of(pid_t master) {
  const std::string task = "/proc/" + std::to_string(master) + "/task/" + std::to_string(master);
  const std::optional<std::string> list = read_file(task + "/children");
  if (!list) return std::nullopt;
  std::vector<Child> children;
  std::istringstream pids(*list);
  for (long pid = 0; pids >> pid;) {
    const std::optional<std::string> title = read_file("/proc/" + std::to_string(pid) + "/cmdline");
    if (!title) continue;  // gone since
    children.push_back(
        {static_cast<pid_t>(pid), title->find("worker process") != std::string::npos &&
                                      title->find("shutting down") == std::string::npos});
  }
  return children;
}

// Watches one reload of nginx's master by what it leaves behind: new worker
// processes once it has loaded the configuration, the old workers closing
// their listening sockets, and [emerg]/[alert]/[crit]/[error]/[warn] lines of
// its own (its pid) in its error log. Move-only: owns the error log's fd.
class ReloadWatch {
 public:
  // Call before the SIGHUP: remembers the master's children and the end of
  // `error_log`. nullopt, with the reason in `why_not`, when either cannot be
  // read.
  static std::optional<ReloadWatch> start(pid_t master, const std::string& error_log,
                                          std::string& why_not) {
    const std::optional<std::vector<Child>> children = children_of(master);
    if (!children) {
      why_not = "/proc does not list the children of nginx (pid " + std::to_string(master) + ")";
      return std::nullopt;
    }
    const int fd = ::open(error_log.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::lseek(fd, 0, SEEK_END) < 0) {
      why_not = "cannot read nginx's error log " + error_log + ": " + errno_text();
      if (fd >= 0) ::close(fd);
      return std::nullopt;
    }
    ReloadWatch watch(master, error_log, fd);
    for (const Child& child : *children) {
      watch.before_.push_back(child.pid);
      if (child.accepting) watch.accepting_before_.push_back(child.pid);
    }
    return watch;
  }

  ~ReloadWatch() {
    if (fd_ >= 0) ::close(fd_);
  }
  ReloadWatch(ReloadWatch&& other) noexcept
      : master_(other.master_),
        error_log_(std::move(other.error_log_)),
        fd_(std::exchange(other.fd_, -1)),
        pending_(std::move(other.pending_)),
        before_(std::move(other.before_)),
        accepting_before_(std::move(other.accepting_before_)),
        complaint_(std::move(other.complaint_)),
        refused_(other.refused_) {}
  ReloadWatch& operator=(ReloadWatch&&) = delete;
  ReloadWatch(const ReloadWatch&) = delete;
  ReloadWatch& operator=(const ReloadWatch&) = delete;

  pid_t master() const { return master_; }
  const std::string& error_log() const { return error_log_; }

  // True once the master has a child it did not have at start(): it has
  // loaded a configuration and started workers for it.
  bool loaded() const {
    const std::optional<std::vector<Child>> children = children_of(master_);
    if (!children) return false;
    return std::any_of(children->begin(), children->end(), [this](const Child& child) {
      return std::find(before_.begin(), before_.end(), child.pid) == before_.end();
    });
  }

  // True when no worker that accepted connections at start() still does.
  bool old_workers_quiet() const {
    const std::optional<std::vector<Child>> children = children_of(master_);
    if (!children) return false;
    return std::none_of(children->begin(), children->end(), [this](const Child& child) {
      return child.accepting && std::find(accepting_before_.begin(), accepting_before_.end(),
                                          child.pid) != accepting_before_.end();
    });
  }

  // The master's first line at [warn] or above since start() (its [emerg]
  // once there is one), from the level on: "[emerg] unexpected ...".
  std::optional<std::string> complaint() {
    char buffer[8192];
    while (true) {
      const ssize_t got = ::read(fd_, buffer, sizeof buffer);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) break;
      pending_.append(buffer, static_cast<std::size_t>(got));
    }
    const std::string own = "] " + std::to_string(master_) + "#";
    for (std::size_t end; (end = pending_.find('\n')) != std::string::npos;
         pending_.erase(0, end + 1)) {
      const std::string line = pending_.substr(0, end);
      const std::size_t level = line.find(" [");
      const std::size_t close = line.find(own);
      if (level == std::string::npos || close == std::string::npos || close < level) continue;
      const std::string name = line.substr(level + 2, close - level - 2);
      const bool emerg = name == "emerg";
      if (!emerg && name != "alert" && name != "crit" && name != "error" && name != "warn") {
        continue;
      }
      // "[level] " + the message after "pid#tid: "
      const std::size_t message = line.find(": ", close);
      std::string text =
          "[" + name + "] " +
          (message == std::string::npos ? line.substr(close + 2) : line.substr(message + 2));
      if (!complaint_ || (emerg && !refused_)) complaint_ = std::move(text);
      refused_ = refused_ || emerg;
    }
    return complaint_;
  }

  // True when complaint() has seen an [emerg]: the master gave up the new
  // configuration and kept the old one and its workers.
  bool refused() const { return refused_; }

 private:
  ReloadWatch(pid_t master, std::string error_log, int fd)
      : master_(master), error_log_(std::move(error_log)), fd_(fd) {}

  pid_t master_;
  std::string error_log_;
  int fd_;
  std::string pending_;  // error log bytes after the last complete line
  std::vector<pid_t> before_;
  std::vector<pid_t> accepting_before_;
  std::optional<std::string> complaint_;
  bool refused_ = false;
};

// How often a reload is looked at: its error log, the master's children and,
// once new workers run, the probe.
constexpr std::chrono::milliseconds kReloadPoll = 20ms;

enum class ReloadEnd {
  kServed,      // new workers serve `version`, the old ones no longer accept
  kRefused,     // the master logged [emerg]: it kept the old configuration
  kComplained,  // the master logged another problem; it may have loaded
  kTimedOut,    // the deadline passed first
  kMasterGone,  // nginx's master exited
};

struct ReloadReport {
  ReloadEnd end = ReloadEnd::kTimedOut;
  std::string detail;  // nginx's line, or what the probe saw last
  // Since the SIGHUP: until new workers ran, until the old ones stopped
  // accepting.
  std::optional<Clock::duration> loaded_after;
  std::optional<Clock::duration> quiet_after;
};

// Follows a reload signalled at `signalled` until `version` is served by the
// new workers alone: the probe answers it after every worker that accepted
// connections before the reload stopped doing so (nginx's master lets both
// generations accept for 100 ms). The probe only runs once new workers exist.
// Any complaint of the master ends it, or with `fails_on` kRefused only an
// [emerg].
ReloadReport await_reload(const PublishOptions& options, const std::string& version,
                          ReloadWatch& watch, Clock::time_point signalled,
                          Clock::time_point deadline, ReloadEnd fails_on = ReloadEnd::kComplained) {
  const Url url = parse_url(options.probe_url);
  ReloadReport report;
  std::string last = "nginx had not started new workers";
  while (true) {
    const auto now = Clock::now();
    if (!report.loaded_after && watch.loaded()) report.loaded_after = now - signalled;
    bool quiet = false;
    bool answered = false;
    if (report.loaded_after) {
      quiet = watch.old_workers_quiet();
      if (quiet && !report.quiet_after) report.quiet_after = Clock::now() - signalled;
      try {
        const std::string body = trimmed(http_get(url, 2000ms));
        answered = body == version;
        if (!answered) last = "still serves \"" + body + "\"";
      } catch (const std::runtime_error& e) {
        last = e.what();
      }
    }
    // After the probe: a warning is logged before the workers it would
    // concern start, so an answer of theirs never hides it.
    if (const std::optional<std::string> line = watch.complaint();
        line && (watch.refused() || fails_on == ReloadEnd::kComplained)) {
      report.end = watch.refused() ? ReloadEnd::kRefused : ReloadEnd::kComplained;
      report.detail = *line;
      return report;
    }
    if (quiet && answered) {
      report.end = ReloadEnd::kServed;
      return report;
    }
    if (::kill(watch.master(), 0) != 0 && errno == ESRCH) {
      report.end = ReloadEnd::kMasterGone;
      report.detail = "nginx (pid " + std::to_string(watch.master()) + ") exited";
      return report;
    }
    if (Clock::now() + kReloadPoll > deadline) {
      report.detail = options.probe_url + " did not serve " + version + " within " +
                      seconds_text(deadline - signalled) + " of the reload (" + last + ")";
      return report;
    }
    std::this_thread::sleep_for(kReloadPoll);
  }
}

}  // namespace

bool natural_less(const std::string& a, const std::string& b) {
  std::size_t i = 0, j = 0;
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  while (i < a.size() && j < b.size()) {
    if (digit(a[i]) && digit(b[j])) {
      std::size_t ie = i, je = j;
      while (ie < a.size() && digit(a[ie])) ++ie;
      while (je < b.size() && digit(b[je])) ++je;
      std::size_t is = i, js = j;
      while (is + 1 < ie && a[is] == '0') ++is;
      while (js + 1 < je && b[js] == '0') ++js;
      if (ie - is != je - js) return ie - is < je - js;
      const int cmp = a.compare(is, ie - is, b, js, je - js);
      if (cmp != 0) return cmp < 0;
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  if (a.size() - i != b.size() - j) return a.size() - i < b.size() - j;
  return a < b;
}

std::vector<std::string> list_versions(const std::string& exports_dir) {
  std::vector<std::string> versions;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(exports_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.' || entry.is_symlink() || !entry.is_directory()) continue;
    if (!fs::exists(entry.path() / kManifestFile)) continue;
    versions.push_back(name);
  }
  if (ec) throw std::runtime_error("cannot list " + exports_dir + ": " + ec.message());
  std::sort(versions.begin(), versions.end(), natural_less);
  return versions;
}

namespace {

// The outcome and summary of publish_steps().
struct StepsResult {
  PublishOutcome outcome;
  std::string summary;
};

using Seconds = std::chrono::duration<double>;

// What publish() reports besides its outcome, filled in as the steps run.
struct StepTimes {
  std::string failed_step;
  bool rollback_failed = false;
  Seconds validate{0};
  Seconds activate{0};
  Seconds reload{0};
};

std::chrono::milliseconds ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from);
}

using Say = std::function<void(const std::string&)>;

// The version being published and the one it replaces.
struct Candidate {
  std::string version;
  std::string folder;
  std::string digest;
  std::string target;  // what the live link will hold
  std::uintmax_t nginx_bytes = 0;
  std::optional<std::string> previous_target;  // nullopt: no live link yet
  std::string previous_version;                // its manifest's, else the link target
  std::string previous_folder;
};

std::string over(const Candidate& c) {
  return c.previous_target ? c.previous_version : std::string("nothing");
}

// Prunes, and says that `c` went live now, validated at `validated_at` as
// `how` says.
StepsResult went_live(const PublishOptions& options, const Candidate& c, Clock::time_point started,
                      Clock::time_point validated_at, const std::string& how,
                      std::ostream& progress, StepTimes& times) {
  const auto live_at = Clock::now();
  times.activate = live_at - validated_at;
  const std::size_t removed = prune(options, {c.version}, progress);
  return {PublishOutcome::kPublished,
          "published " + c.version + " (" + c.digest + ") over " + over(c) + " in " +
              seconds_text(live_at - started) + " (validate " +
              seconds_text(validated_at - started) + ", swap+reload+probe " +
              seconds_text(live_at - validated_at) + "); " + how + "; removed " +
              std::to_string(removed) + " old version(s)"};
}

// Validation by `nginx -t` on the new files before the swap (--validate
// nginx-t, or when a reload cannot be watched), then swap, SIGHUP and probe;
// a rollback waits out a load of the new version it may have interrupted.
StepsResult publish_after_nginx_test(const PublishOptions& options, const Candidate& c,
                                     Clock::time_point started, const Say& say,
                                     std::ostream& progress, StepTimes& times) {
  bool swapped = false;
  std::optional<pid_t> master;
  Clock::time_point validated_at;
  std::chrono::milliseconds validate_time{0};
  try {
    say("validating with nginx -t");
    const auto validate_started = Clock::now();
    validate(options, c.folder);
    validated_at = Clock::now();
    times.validate = validated_at - started;
    validate_time = ms_between(validate_started, validated_at);
    say("valid (" + seconds_text(validated_at - started) + "); swapping " + options.live_link +
        " -> " + c.target);
    try {
      swap_link(options.live_link, c.target);
    } catch (const std::runtime_error& e) {
      throw StepError{"swap", e.what()};
    }
    swapped = true;
    const std::string pid_path = pid_file(options);
    master = running_master(pid_path);
    if (!master) {
      const std::size_t removed = prune(options, {c.version}, progress);
      return {PublishOutcome::kPublished, "published " + c.version + " (" + c.digest +
                                              ") without reload: nginx is not "
                                              "running (no live pid in " +
                                              pid_path + "); removed " + std::to_string(removed) +
                                              " old version(s)"};
    }
    say("reloading nginx (pid " + std::to_string(*master) + ") and polling " + options.probe_url);
    reload(*master);
    await_version(options, c.version, *master, "probe", kSettle,
                  probe_timeout(options, validate_time));
  } catch (const StepError& failure) {
    times.failed_step = failure.step;
    if (validated_at == Clock::time_point{}) {
      times.validate = Clock::now() - started;
    } else {
      times.activate = Clock::now() - validated_at;
    }
    std::string summary =
        "publish of " + c.version + " failed at " + failure.step + ": " + failure.cause;
    if (!swapped) return {PublishOutcome::kFailed, summary + "; nothing changed"};
    try {
      if (c.previous_target) {
        say("rolling back " + options.live_link + " -> " + *c.previous_target);
        swap_link(options.live_link, *c.previous_target);
      } else if (::unlink(options.live_link.c_str()) != 0) {
        throw std::runtime_error("cannot remove " + options.live_link + ": " + errno_text());
      }
      if (master && c.previous_target) {
        reload(*master);
        // The master may still be loading the new version when this second
        // SIGHUP arrives: it then starts workers with the new version, and
        // only after loading again the old one's. The old version counts as
        // back once it has served without a break for twice as long as
        // nginx -t took: the rest of the first load ends within that.
        await_version(options, c.previous_version, *master, "rollback probe",
                      kSettle + 2 * validate_time,
                      probe_timeout(options, validate_time) + 4 * validate_time);
      }
    } catch (const StepError& e) {
      times.rollback_failed = true;
      return {PublishOutcome::kRollbackFailed,
              summary + "; ROLLBACK FAILED at " + e.step + ": " + e.cause};
    } catch (const std::exception& e) {
      times.rollback_failed = true;
      return {PublishOutcome::kRollbackFailed, summary + "; ROLLBACK FAILED: " + e.what()};
    }
    return {PublishOutcome::kFailed,
            summary + "; rolled back, " +
                (c.previous_target ? c.previous_version + " serves" : std::string("link removed"))};
  }
  return went_live(options, c, started, validated_at, "validated by nginx -t", progress, times);
}

// The previous version back after a reload of the new one failed (the live
// link still names the new one). The link must not change while nginx's
// master reads the configuration, or it would load old and new files mixed;
// so this first waits, until `wait_until`, for the master's verdict on the
// new version. Refused ([emerg]): nginx still runs the old configuration, and
// putting the link back is all. Loaded: a second reload, watched like the
// first. Neither in time: a second SIGHUP all the same, which nginx handles
// once the load ends; the old version then counts as back once it has served
// without a break for as long as a load may take.
StepsResult roll_back(const PublishOptions& options, const Candidate& c, ReloadWatch& watch,
                      Clock::time_point wait_until, const std::string& summary, const Say& say,
                      StepTimes& times) {
  auto rollback_failed = [&](const std::string& why) {
    times.rollback_failed = true;
    return StepsResult{PublishOutcome::kRollbackFailed, summary + "; ROLLBACK FAILED at " + why};
  };
  const pid_t master = watch.master();
  bool loaded = false;
  while (true) {
    watch.complaint();
    if (watch.refused() || (loaded = watch.loaded())) break;
    if ((::kill(master, 0) != 0 && errno == ESRCH) || Clock::now() >= wait_until) break;
    std::this_thread::sleep_for(kReloadPoll);
  }
  say("rolling back " + options.live_link + " -> " + *c.previous_target);
  try {
    swap_link(options.live_link, *c.previous_target);
  } catch (const std::runtime_error& e) {
    return rollback_failed(std::string("swap: ") + e.what());
  }
  std::error_code ec;
  const std::uintmax_t previous_bytes =
      fs::file_size(fs::path(c.previous_folder) / kNginxMapFile, ec);
  const auto allowance = std::max(options.probe_timeout, load_allowance(ec ? 0 : previous_bytes));
  try {
    if (watch.refused()) {
      await_version(options, c.previous_version, master, "rollback probe", 0ms,
                    options.probe_timeout);
      return {PublishOutcome::kFailed,
              summary + "; rolled back, " + c.previous_version + " serves (nginx kept it)"};
    }
    std::string why_not;
    std::optional<ReloadWatch> second =
        loaded ? ReloadWatch::start(master, watch.error_log(), why_not) : std::nullopt;
    reload(master);
    if (!second) {
      const auto settle = kSettle + load_allowance(c.nginx_bytes);
      await_version(options, c.previous_version, master, "rollback probe", settle,
                    settle + 2 * allowance);
    } else {
      // The old version served before, warnings or not: only an [emerg]
      // (or no answer) fails its return.
      const auto signalled = Clock::now();
      const ReloadReport report = await_reload(options, c.previous_version, *second, signalled,
                                               signalled + allowance, ReloadEnd::kRefused);
      if (report.end != ReloadEnd::kServed)
        return rollback_failed("rollback probe: " + report.detail);
    }
  } catch (const StepError& e) {
    return rollback_failed(e.step + ": " + e.cause);
  }
  return {PublishOutcome::kFailed, summary + "; rolled back, " + c.previous_version + " serves"};
}

// Validation by nginx's own reload (the default while nginx runs): the
// files were checked against their digest; then the swap, a SIGHUP, and the
// master's verdict read from its error log and its workers.
StepsResult publish_by_reload(const PublishOptions& options, const Candidate& c, ReloadWatch& watch,
                              Clock::time_point started, Clock::time_point checked_at,
                              const Say& say, std::ostream& progress, StepTimes& times) {
  times.validate = checked_at - started;
  auto failure = [&](const std::string& step, const std::string& cause) {
    times.failed_step = step;
    times.activate = Clock::now() - checked_at;
    return "publish of " + c.version + " failed at " + step + ": " + cause;
  };
  say("checked (" + seconds_text(checked_at - started) + "); swapping " + options.live_link +
      " -> " + c.target);
  try {
    swap_link(options.live_link, c.target);
  } catch (const std::runtime_error& e) {
    return {PublishOutcome::kFailed, failure("swap", e.what()) + "; nothing changed"};
  }
  const pid_t master = watch.master();
  say("reloading nginx (pid " + std::to_string(master) + "), watching its workers, " +
      watch.error_log() + " and " + options.probe_url);
  const auto signalled = Clock::now();
  const auto allowance = std::max(options.probe_timeout, load_allowance(c.nginx_bytes));
  if (::kill(master, SIGHUP) != 0) {
    const std::string summary = failure(
        "reload", "cannot signal nginx (pid " + std::to_string(master) + "): " + errno_text());
    say("rolling back " + options.live_link + " -> " + *c.previous_target);
    try {
      swap_link(options.live_link, *c.previous_target);
    } catch (const std::runtime_error& e) {
      times.rollback_failed = true;
      return {PublishOutcome::kRollbackFailed, summary + "; ROLLBACK FAILED at swap: " + e.what()};
    }
    return {PublishOutcome::kFailed,
            summary + "; rolled back, " + c.previous_version + " serves (nginx kept it)"};
  }
  const ReloadReport report =
      await_reload(options, c.version, watch, signalled, signalled + allowance);
  if (report.loaded_after) times.reload = *report.loaded_after;
  if (report.end == ReloadEnd::kServed) {
    return went_live(options, c, started, checked_at,
                     "validated by its digest and nginx's reload (loaded in " +
                         seconds_text(*report.loaded_after) + ", old workers stopped accepting " +
                         seconds_text(*report.quiet_after - *report.loaded_after) + " later)",
                     progress, times);
  }
  // nginx names the files by the live link, which is about to name the old
  // version again: name the new version's folder instead.
  std::string detail = report.detail;
  const std::string folder = fs::absolute(c.folder).lexically_normal().string();
  replace_path(detail, options.live_link, folder);
  replace_path(detail, fs::absolute(options.live_link).lexically_normal().string(), folder);
  std::string summary;
  if (report.end == ReloadEnd::kRefused) {
    summary = failure("validate", "nginx refused it: " + detail);
  } else if (report.end == ReloadEnd::kComplained) {
    summary = failure("validate", "nginx's reload logged " + detail);
  } else {
    summary = failure("probe", report.detail);
  }
  return roll_back(options, c, watch, signalled + 2 * allowance, summary, say, times);
}

// The watch for a reload-validated publish, or nullopt with the reason why
// this one must be validated by nginx -t: nothing to roll back to, nginx not
// running (a later start must find a configuration that loads), or a reload
// that cannot be watched.
std::optional<ReloadWatch> watch_for_reload(const PublishOptions& options, const Candidate& c,
                                            std::string& why_not) {
  if (!c.previous_target) {
    why_not = "nothing is live yet";
    return std::nullopt;
  }
  std::optional<pid_t> master;
  try {
    const std::string pid_path = pid_file(options);
    master = running_master(pid_path);
    if (!master) {
      why_not = "nginx is not running (no live pid in " + pid_path + ")";
      return std::nullopt;
    }
  } catch (const StepError& e) {
    why_not = e.cause;
    return std::nullopt;
  }
  const std::optional<std::string> error_log = master_error_log(options, why_not);
  if (!error_log) return std::nullopt;
  return ReloadWatch::start(*master, *error_log, why_not);
}

StepsResult publish_steps(const PublishOptions& options, std::ostream& progress, StepTimes& times) {
  if (options.keep == 0) throw std::invalid_argument("keep must be at least 1");
  parse_url(options.probe_url);
  const auto started = Clock::now();
  const Say say = [&progress](const std::string& line) {
    progress << "exporter: publish: " << line << std::endl;
  };

  // What to publish, and what is live.
  const std::vector<std::string> versions = list_versions(options.exports_dir);
  Candidate c;
  c.version = options.version;
  if (c.version.empty()) {
    if (versions.empty()) {
      return {PublishOutcome::kFailed,
              "publish failed at select: no version folder in " + options.exports_dir};
    }
    c.version = versions.back();
  }
  c.folder = (fs::path(options.exports_dir) / c.version).string();
  const std::optional<Manifest> manifest = read_manifest(c.folder);
  if (!manifest) {
    return {PublishOutcome::kFailed,
            "publish failed at select: no readable manifest in " + c.folder};
  }
  if (manifest->version != c.version) {
    return {PublishOutcome::kFailed,
            "publish failed at select: " + c.folder + " holds version " + manifest->version};
  }
  c.digest = manifest->digest;

  c.previous_target = read_link(options.live_link);
  if (!c.previous_target && fs::exists(fs::symlink_status(options.live_link))) {
    return {PublishOutcome::kFailed,
            "publish failed at select: " + options.live_link + " exists and is not a symlink"};
  }
  std::optional<Manifest> previous_manifest;
  if (c.previous_target) {
    c.previous_folder = resolve_target(options.live_link, *c.previous_target);
    previous_manifest = read_manifest(c.previous_folder);
    c.previous_version = previous_manifest ? previous_manifest->version : *c.previous_target;
  }
  const std::string live_name =
      c.previous_target ? version_in_exports(options, c.previous_folder) : "";

  if (previous_manifest && previous_manifest->digest == manifest->digest) {
    // A scheduled compile writes a folder per run; duplicates of the live one
    // would otherwise push the versions worth rolling back to out of `keep`.
    std::string duplicate;
    if (c.version != live_name) {
      std::error_code ec;
      fs::remove_all(c.folder, ec);
      duplicate = ec ? "; cannot remove the duplicate " + c.folder + ": " + ec.message()
                     : "; removed the duplicate " + c.version;
    }
    const std::size_t removed = prune(options, {live_name}, progress);
    return {PublishOutcome::kUnchanged, "unchanged: " + c.version + " has the digest of live " +
                                            c.previous_version + " (" + manifest->digest +
                                            "), no reload" + duplicate + "; removed " +
                                            std::to_string(removed) + " old version(s)"};
  }
  say("publishing " + c.version + " (" + manifest->digest + ") over " + over(c));

  // The link target: relative when the link sits in the exports folder.
  std::error_code ec;
  const bool link_beside = fs::weakly_canonical(fs::path(options.live_link).parent_path(), ec) ==
                           fs::weakly_canonical(options.exports_dir, ec);
  c.target = link_beside ? c.version : fs::absolute(c.folder).lexically_normal().string();

  say("validating " + c.version + ": its files against the manifest's digest");
  try {
    c.nginx_bytes = check_bundle(c.folder, *manifest);
  } catch (const StepError& e) {
    times.failed_step = e.step;
    times.validate = Clock::now() - started;
    return {PublishOutcome::kFailed, "publish of " + c.version + " failed at " + e.step + ": " +
                                         e.cause + "; nothing changed"};
  }
  const auto checked_at = Clock::now();
  if (options.validation == Validation::kReload) {
    std::string why_not;
    std::optional<ReloadWatch> watch = watch_for_reload(options, c, why_not);
    if (watch) {
      return publish_by_reload(options, c, *watch, started, checked_at, say, progress, times);
    }
    say("nginx's reload cannot validate this publish: " + why_not);
  }
  return publish_after_nginx_test(options, c, started, say, progress, times);
}

}  // namespace

PublishResult publish(const PublishOptions& options, std::ostream& progress) {
  StepTimes times;
  StepsResult steps = publish_steps(options, progress, times);
  PublishResult result;
  result.outcome = steps.outcome;
  result.summary = std::move(steps.summary);
  result.failed_step = times.failed_step;
  if (result.failed_step.empty() && result.outcome == PublishOutcome::kFailed) {
    result.failed_step = "select";  // the only failures before a step runs
  }
  result.rollback_failed = times.rollback_failed;
  result.validate = times.validate;
  result.activate = times.activate;
  result.reload = times.reload;
  return result;
}

std::optional<ExportLock> ExportLock::try_acquire(const std::string& exports_dir) {
  std::error_code ec;
  fs::create_directories(exports_dir, ec);
  if (ec) throw std::runtime_error("cannot create " + exports_dir + ": " + ec.message());
  const std::string path = exports_dir + "/.publish.lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + path + ": " + errno_text());
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int saved = errno;
    ::close(fd);
    if (saved == EWOULDBLOCK) return std::nullopt;
    errno = saved;
    throw std::runtime_error("cannot lock " + path + ": " + errno_text());
  }
  return ExportLock(fd);
}

ExportLock::~ExportLock() {
  if (fd_ >= 0) ::close(fd_);
}

ExportLock::ExportLock(ExportLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

ExportLock& ExportLock::operator=(ExportLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

}  // namespace exporter
