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
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>

#include "exporter/bundle.h"

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

// The pid file: --nginx-pid, else the `pid` directive of the configuration
// (relative to the prefix, as nginx reads it).
std::string pid_file(const PublishOptions& options) {
  if (!options.nginx_pid.empty()) return options.nginx_pid;
  const std::optional<std::string> conf = read_file(options.nginx_conf);
  if (conf) {
    std::istringstream lines(*conf);
    for (std::string line; std::getline(lines, line);) {
      std::istringstream words(line);
      std::string directive, value;
      if (!(words >> directive >> value) || directive != "pid") continue;
      if (!value.empty() && value.back() == ';') value.pop_back();
      if (value.empty() || value[0] == '/') return value;
      return (fs::path(options.nginx_prefix) / value).string();
    }
  }
  throw StepError{"reload", "no pid directive in " + options.nginx_conf + "; pass --nginx-pid"};
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
    if (!serving) pause = std::min<std::chrono::milliseconds>(pause * 2, 250ms);
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

// What publish() reports besides its outcome, filled in as the steps run.
struct StepTimes {
  std::string failed_step;
  bool rollback_failed = false;
  std::chrono::milliseconds validate{0};
  std::chrono::milliseconds activate{0};
};

std::chrono::milliseconds ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from);
}

StepsResult publish_steps(const PublishOptions& options, std::ostream& progress, StepTimes& times) {
  if (options.keep == 0) throw std::invalid_argument("keep must be at least 1");
  parse_url(options.probe_url);
  const auto started = Clock::now();
  auto say = [&progress](const std::string& line) {
    progress << "exporter: publish: " << line << std::endl;
  };

  // What to publish, and what is live.
  const std::vector<std::string> versions = list_versions(options.exports_dir);
  std::string version = options.version;
  if (version.empty()) {
    if (versions.empty()) {
      return {PublishOutcome::kFailed,
              "publish failed at select: no version folder in " + options.exports_dir};
    }
    version = versions.back();
  }
  const std::string folder = (fs::path(options.exports_dir) / version).string();
  const std::optional<Manifest> manifest = read_manifest(folder);
  if (!manifest) {
    return {PublishOutcome::kFailed, "publish failed at select: no readable manifest in " + folder};
  }
  if (manifest->version != version) {
    return {PublishOutcome::kFailed,
            "publish failed at select: " + folder + " holds version " + manifest->version};
  }

  const std::optional<std::string> previous_target = read_link(options.live_link);
  if (!previous_target && fs::exists(fs::symlink_status(options.live_link))) {
    return {PublishOutcome::kFailed,
            "publish failed at select: " + options.live_link + " exists and is not a symlink"};
  }
  std::string previous_version;
  std::optional<Manifest> previous_manifest;
  if (previous_target) {
    const std::string previous_folder = resolve_target(options.live_link, *previous_target);
    previous_manifest = read_manifest(previous_folder);
    previous_version = previous_manifest ? previous_manifest->version : *previous_target;
  }
  const std::string live_name =
      previous_target
          ? version_in_exports(options, resolve_target(options.live_link, *previous_target))
          : "";

  if (previous_manifest && previous_manifest->digest == manifest->digest) {
    // A scheduled compile writes a folder per run; duplicates of the live one
    // would otherwise push the versions worth rolling back to out of `keep`.
    std::string duplicate;
    if (version != live_name) {
      std::error_code ec;
      fs::remove_all(folder, ec);
      duplicate = ec ? "; cannot remove the duplicate " + folder + ": " + ec.message()
                     : "; removed the duplicate " + version;
    }
    const std::size_t removed = prune(options, {live_name}, progress);
    return {PublishOutcome::kUnchanged, "unchanged: " + version + " has the digest of live " +
                                            previous_version + " (" + manifest->digest +
                                            "), no reload" + duplicate + "; removed " +
                                            std::to_string(removed) + " old version(s)"};
  }
  say("publishing " + version + " (" + manifest->digest + ") over " +
      (previous_target ? previous_version : std::string("nothing")));

  // The link target: relative when the link sits in the exports folder.
  std::error_code ec;
  const bool link_beside = fs::weakly_canonical(fs::path(options.live_link).parent_path(), ec) ==
                           fs::weakly_canonical(options.exports_dir, ec);
  const std::string new_target =
      link_beside ? version : fs::absolute(folder).lexically_normal().string();

  bool swapped = false;
  std::optional<pid_t> master;
  Clock::time_point validated_at;
  std::chrono::milliseconds validate_time{0};
  try {
    say("validating with nginx -t");
    const auto validate_started = Clock::now();
    validate(options, folder);
    validated_at = Clock::now();
    times.validate = ms_between(started, validated_at);
    validate_time =
        std::chrono::duration_cast<std::chrono::milliseconds>(validated_at - validate_started);
    say("valid (" + seconds_text(validated_at - started) + "); swapping " + options.live_link +
        " -> " + new_target);
    try {
      swap_link(options.live_link, new_target);
    } catch (const std::runtime_error& e) {
      throw StepError{"swap", e.what()};
    }
    swapped = true;
    const std::string pid_path = pid_file(options);
    master = running_master(pid_path);
    if (!master) {
      const std::size_t removed = prune(options, {version}, progress);
      return {PublishOutcome::kPublished, "published " + version + " (" + manifest->digest +
                                              ") without reload: nginx is not "
                                              "running (no live pid in " +
                                              pid_path + "); removed " + std::to_string(removed) +
                                              " old version(s)"};
    }
    say("reloading nginx (pid " + std::to_string(*master) + ") and polling " + options.probe_url);
    reload(*master);
    await_version(options, version, *master, "probe", kSettle,
                  probe_timeout(options, validate_time));
  } catch (const StepError& failure) {
    times.failed_step = failure.step;
    if (validated_at == Clock::time_point{}) {
      times.validate = ms_between(started, Clock::now());
    } else {
      times.activate = ms_between(validated_at, Clock::now());
    }
    std::string summary =
        "publish of " + version + " failed at " + failure.step + ": " + failure.cause;
    if (!swapped) return {PublishOutcome::kFailed, summary + "; nothing changed"};
    try {
      if (previous_target) {
        say("rolling back " + options.live_link + " -> " + *previous_target);
        swap_link(options.live_link, *previous_target);
      } else if (::unlink(options.live_link.c_str()) != 0) {
        throw std::runtime_error("cannot remove " + options.live_link + ": " + errno_text());
      }
      if (master && previous_target) {
        reload(*master);
        // The master may still be loading the new version when this second
        // SIGHUP arrives: it then starts workers with the new version, and
        // only after loading again the old one's. The old version counts as
        // back once it has served without a break for twice as long as
        // nginx -t took: the rest of the first load ends within that.
        await_version(options, previous_version, *master, "rollback probe",
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
                (previous_target ? previous_version + " serves" : std::string("link removed"))};
  }
  const auto live_at = Clock::now();
  times.activate = ms_between(validated_at, live_at);
  const std::size_t removed = prune(options, {version}, progress);
  return {PublishOutcome::kPublished,
          "published " + version + " (" + manifest->digest + ") over " +
              (previous_target ? previous_version : std::string("nothing")) + " in " +
              seconds_text(live_at - started) + " (validate " +
              seconds_text(validated_at - started) + ", swap+reload+probe " +
              seconds_text(live_at - validated_at) + "); removed " + std::to_string(removed) +
              " old version(s)"};
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
