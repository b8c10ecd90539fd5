#include "integration/support/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace integration {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollInterval = std::chrono::milliseconds(10);

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

// A fresh directory under $TMPDIR (or /tmp), mode 0700.
std::string make_temp_dir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/" + prefix + "-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error(errno_text("mkdtemp"));
  return pattern;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

bool is_origin_setting(const std::string& name) {
  static const char* const kExact[] = {"DATABASE_URL", "DATABASE_READ_URL", "PUBLIC_BASE_URL",
                                       "CODE_LENGTH",  "REDIRECT_MAX_AGE",  "MAX_BODY_BYTES"};
  for (const char* exact : kExact) {
    if (name == exact) return true;
  }
  return name.rfind("ORIGIN_", 0) == 0 || name.rfind("DB_", 0) == 0 ||
         name.rfind("RATE_LIMIT_", 0) == 0 || name.rfind("API_KEY_", 0) == 0 ||
         name == "OPEN_SHORTEN" || name == "TRUSTED_PROXIES" || name.rfind("JOURNAL_", 0) == 0 ||
         name.rfind("VISIT", 0) == 0 || name.rfind("INGEST", 0) == 0;
}

}  // namespace

std::string ExitStatus::describe() const {
  if (code.has_value()) return "exit code " + std::to_string(*code);
  if (signal.has_value()) {
    const char* name = sigabbrev_np(*signal);
    return "killed by signal " + std::to_string(*signal) + " (SIG" + (name ? name : "?") + ")";
  }
  return "unknown exit status";
}

Environment inherited_environment() {
  Environment env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string pair(*entry);
    const std::size_t eq = pair.find('=');
    if (eq == std::string::npos) continue;
    std::string name = pair.substr(0, eq);
    if (!is_origin_setting(name)) env.emplace(std::move(name), pair.substr(eq + 1));
  }
  return env;
}

Process::Process(const std::vector<std::string>& argv, const Environment& env,
                 const std::string& stdout_path, const std::string& stderr_path) {
  if (argv.empty()) throw std::invalid_argument("Process: empty argv");
  // Everything the child needs is prepared before fork: between fork and execve
  // only async-signal-safe calls are allowed in a multithreaded parent.
  std::vector<std::string> env_strings;
  for (const auto& [name, value] : env) env_strings.push_back(name + "=" + value);
  std::vector<char*> argv_ptrs;
  for (const auto& arg : argv) argv_ptrs.push_back(const_cast<char*>(arg.c_str()));
  argv_ptrs.push_back(nullptr);
  std::vector<char*> env_ptrs;
  for (auto& entry : env_strings) env_ptrs.push_back(entry.data());
  env_ptrs.push_back(nullptr);

  const int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC;
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const int out_fd = open(stdout_path.c_str(), flags, 0644);
  const int err_fd = open(stderr_path.c_str(), flags, 0644);
  if (null_fd < 0 || out_fd < 0 || err_fd < 0) {
    const std::string message = errno_text("open " + stdout_path + " / " + stderr_path);
    for (int fd : {null_fd, out_fd, err_fd}) {
      if (fd >= 0) ::close(fd);
    }
    throw std::runtime_error(message);
  }
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(null_fd, STDIN_FILENO);
    dup2(out_fd, STDOUT_FILENO);
    dup2(err_fd, STDERR_FILENO);
    execve(argv_ptrs[0], argv_ptrs.data(), env_ptrs.data());
    // strerror is not async-signal-safe: report errno as digits.
    constexpr int kDigits = 12;
    char digits[kDigits];
    int n = kDigits;
    for (int e = errno; n > 0 && (e > 0 || n == kDigits); e /= 10) {
      digits[--n] = static_cast<char>('0' + e % 10);
    }
    const char prefix[] = "execve failed with errno ";
    (void)!write(STDERR_FILENO, prefix, sizeof prefix - 1);
    (void)!write(STDERR_FILENO, digits + n, kDigits - n);
    (void)!write(STDERR_FILENO, ": ", 2);
    (void)!write(STDERR_FILENO, argv_ptrs[0], strlen(argv_ptrs[0]));
    (void)!write(STDERR_FILENO, "\n", 1);
    _exit(127);
  }
  const int fork_errno = errno;
  ::close(null_fd);
  ::close(out_fd);
  ::close(err_fd);
  if (pid_ < 0) {
    errno = fork_errno;
    throw std::runtime_error(errno_text("fork"));
  }
}

Process::~Process() {
  if (!status_.has_value() && pid_ > 0) kill9();
}

bool Process::reap(bool block) {
  if (status_.has_value()) return true;
  int raw = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &raw, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return false;
  ExitStatus status;
  if (r < 0) {
    status.code = -1;  // Not our child any more: nothing left to wait for.
  } else if (WIFEXITED(raw)) {
    status.code = WEXITSTATUS(raw);
  } else if (WIFSIGNALED(raw)) {
    status.signal = WTERMSIG(raw);
  }
  status_ = status;
  return true;
}

bool Process::running() { return !reap(false); }

std::optional<ExitStatus> Process::wait_exit(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!reap(false)) {
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(kPollInterval);
  }
  return status_;
}

std::optional<ExitStatus> Process::terminate(std::chrono::milliseconds timeout) {
  if (reap(false)) return status_;
  ::kill(pid_, SIGTERM);
  if (auto status = wait_exit(timeout)) return status;
  kill9();
  return std::nullopt;
}

ExitStatus Process::kill9() {
  if (!reap(false)) {
    ::kill(pid_, SIGKILL);
    reap(true);
  }
  return *status_;
}

uint16_t free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(errno_text("socket"));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string message = errno_text("bind 127.0.0.1:0");
    ::close(fd);
    throw std::runtime_error(message);
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string tail_of_file(const std::string& path, std::size_t lines) {
  std::ifstream in(path);
  std::deque<std::string> last;
  std::string line;
  while (std::getline(in, line)) {
    last.push_back(line);
    if (last.size() > lines) last.pop_front();
  }
  std::string out;
  for (const auto& l : last) out += l + "\n";
  return out;
}

std::string CommandResult::describe() const {
  std::string text = exit.has_value() ? exit->describe() : std::string("timed out (killed)");
  text += " after " + std::to_string(elapsed.count()) + " ms\n--- stdout ---\n" + out +
          "--- stderr ---\n" + err;
  return text;
}

CommandResult run_command(const std::vector<std::string>& argv, const Environment& env,
                          std::chrono::milliseconds timeout) {
  const std::string dir = make_temp_dir("it-command");
  const std::string out_path = dir + "/stdout";
  const std::string err_path = dir + "/stderr";
  CommandResult result;
  const auto started = Clock::now();
  {
    Process process(argv, env, out_path, err_path);
    result.exit = process.wait_exit(timeout);
    if (!result.exit.has_value()) process.kill9();
  }
  result.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  result.out = read_file(out_path);
  result.err = read_file(err_path);
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  return result;
}

std::string origin_binary() {
  const char* override_path = std::getenv("TEST_ORIGIN_BIN");
  return override_path != nullptr && *override_path != '\0' ? override_path : ORIGIN_BIN;
}

CommandResult run_origin(const std::vector<std::string>& args, const Environment& env,
                         std::chrono::milliseconds timeout) {
  std::vector<std::string> argv{origin_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  Environment full = inherited_environment();
  for (const auto& [name, value] : env) full[name] = value;
  return run_command(argv, full, timeout);
}

OriginProcess::OriginProcess(const std::string& database_url, const Environment& overrides)
    : port_(free_port()), public_base_url_(kPublicBaseUrl), log_dir_(make_temp_dir("it-origin")) {
  log_path_ = log_dir_ + "/origin.log";
  Environment env = inherited_environment();
  env["DATABASE_URL"] = database_url;
  env["ORIGIN_LISTEN"] = "127.0.0.1:" + std::to_string(port_);
  env["PUBLIC_BASE_URL"] = public_base_url_;
  env["JOURNAL_DIR"] = log_dir_ + "/journal";
  env["RATE_LIMIT_CREATE_PER_IP_PER_MIN"] = "10000000";
  env["RATE_LIMIT_CREATE_PER_KEY_PER_MIN"] = "10000000";
  for (const auto& [name, value] : overrides) env[name] = value;
  journal_dir_ = env["JOURNAL_DIR"];
  // A caller that chose the address (to restart an origin in place) wins.
  if (auto it = overrides.find("ORIGIN_LISTEN"); it != overrides.end()) {
    port_ = static_cast<uint16_t>(std::stoi(it->second.substr(it->second.rfind(':') + 1)));
  }
  public_base_url_ = env["PUBLIC_BASE_URL"];
  {
    static std::atomic<int> keys_created{0};
    const std::string name =
        "harness-" + std::to_string(getpid()) + "-" + std::to_string(++keys_created);
    const CommandResult created =
        run_command({origin_binary(), "keys", "create", "--name", name, "--admin"}, env,
                    std::chrono::seconds(30));
    if (created.exit && created.exit->success()) {
      admin_key_ = created.out.substr(0, created.out.find('\n'));
    }
  }
  process_.emplace(std::vector<std::string>{origin_binary(), "serve"}, env, log_path_, log_path_);

  constexpr auto kStartTimeout = std::chrono::seconds(10);
  const auto deadline = Clock::now() + kStartTimeout;
  HttpClient probe("127.0.0.1", port_, std::chrono::milliseconds(1000));
  std::string last_attempt = "no attempt";
  while (Clock::now() < deadline) {
    if (auto status = process_->wait_exit(std::chrono::milliseconds(0))) {
      throw std::runtime_error("origin serve exited before answering /healthz (" +
                               status->describe() + "); log " + log_path_ + ":\n" + log_tail());
    }
    try {
      const Response r = probe.get("/healthz");
      if (r.status == 200) return;
      last_attempt = r.summary();
    } catch (const TransportError& e) {
      last_attempt = e.what();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  process_->kill9();
  throw std::runtime_error("origin serve did not answer GET /healthz with 200 within 10 s (last: " +
                           last_attempt + "); log " + log_path_ + ":\n" + log_tail());
}

OriginProcess::~OriginProcess() {
  process_.reset();
  if (::testing::Test::HasFailure()) {
    std::cerr << "origin log kept at " << log_path_ << "; last lines:\n" << log_tail();
    return;
  }
  std::error_code ignored;
  std::filesystem::remove_all(log_dir_, ignored);
}

HttpClient OriginProcess::client(std::chrono::milliseconds timeout) const {
  HttpClient client("127.0.0.1", port_, timeout);
  if (!admin_key_.empty()) client.set_default_headers({{"Authorization", "Bearer " + admin_key_}});
  return client;
}

HttpClient OriginProcess::anonymous_client(std::chrono::milliseconds timeout) const {
  return HttpClient("127.0.0.1", port_, timeout);
}

bool OriginProcess::wait_ready(std::chrono::milliseconds timeout) const {
  const auto deadline = Clock::now() + timeout;
  HttpClient probe("127.0.0.1", port_, std::chrono::milliseconds(2000));
  while (Clock::now() < deadline) {
    try {
      if (probe.get("/readyz").status == 200) return true;
    } catch (const TransportError&) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace integration
