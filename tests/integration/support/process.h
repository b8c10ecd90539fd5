// Child processes for integration tests: a generic Process, one-shot commands,
// and OriginProcess, a running `origin serve` that answers /healthz.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "integration/support/http_client.h"

namespace integration {

using Environment = std::map<std::string, std::string>;

// How a child ended: exactly one of `code` (normal exit) or `signal` is set.
struct ExitStatus {
  std::optional<int> code;
  std::optional<int> signal;

  bool success() const { return code == 0; }
  // "exit code N" or "killed by signal N (NAME)".
  std::string describe() const;
};

// The current process's environment, minus every variable the origin reads
// (DATABASE_URL, ORIGIN_*, PUBLIC_BASE_URL, DB_*, CODE_LENGTH, REDIRECT_MAX_AGE,
// MAX_BODY_BYTES, RATE_LIMIT_*, API_KEY_*, OPEN_SHORTEN, TRUSTED_PROXIES, ...), so that a
// child sees only the settings a test chose.
Environment inherited_environment();

// A running child started with fork/execve. Owned by one thread. The
// destructor SIGKILLs and reaps the child if it is still running (by PID).
// The child also gets SIGKILL if the thread that started it exits, so a
// crashed test leaves no server behind.
class Process {
 public:
  // Starts argv[0] (a path; no PATH search) with exactly `env`, stdin from
  // /dev/null, stdout and stderr appended to the given files (which may be the
  // same). Throws std::runtime_error if the files cannot be opened or fork
  // fails; an execve failure shows as exit code 127 with a line in stderr_path.
  Process(const std::vector<std::string>& argv, const Environment& env,
          const std::string& stdout_path, const std::string& stderr_path);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // Non-blocking: false once the child has exited (it is then reaped).
  bool running();
  // Waits up to `timeout` for the child to exit; nullopt if it is still running.
  std::optional<ExitStatus> wait_exit(std::chrono::milliseconds timeout);
  // Sends SIGTERM and waits up to `timeout`. If the child is still running then,
  // SIGKILLs it and returns nullopt. Returns the known status if it had exited.
  std::optional<ExitStatus> terminate(std::chrono::milliseconds timeout);
  // Sends SIGKILL and reaps the child.
  ExitStatus kill9();

 private:
  bool reap(bool block);

  pid_t pid_ = -1;
  std::optional<ExitStatus> status_;
};

// A bound-and-released TCP port on 127.0.0.1 that was free a moment ago.
uint16_t free_port();

// The last `lines` lines of a text file ("" if unreadable).
std::string tail_of_file(const std::string& path, std::size_t lines = 40);

// The whole file; throws std::runtime_error naming it when it cannot be read.
std::string read_text(const std::string& path);

// Replaces the file's content; throws std::runtime_error when it cannot.
void write_text(const std::string& path, const std::string& text);

// The nginx binary the edge tests run (Debian's nginx-light).
inline constexpr const char* kNginx = "/usr/sbin/nginx";

struct CommandResult {
  std::optional<ExitStatus> exit;  // nullopt: still running at the timeout, then killed
  std::string out;
  std::string err;
  std::chrono::milliseconds elapsed{0};
  // Exit status, elapsed time, stdout and stderr, for failure messages.
  std::string describe() const;
};

// Runs argv to completion with `env`, capturing stdout and stderr separately.
CommandResult run_command(const std::vector<std::string>& argv, const Environment& env,
                          std::chrono::milliseconds timeout);

// Runs ORIGIN_BIN with `args` and inherited_environment() overlaid with `env`.
// The origin binary the harness starts: $TEST_ORIGIN_BIN when set (scripts/test
// points it at the sanitized build for the hostile tests), else this build's.
std::string origin_binary();

CommandResult run_origin(const std::vector<std::string>& args, const Environment& env,
                         std::chrono::milliseconds timeout = std::chrono::seconds(60));

// `origin serve` on 127.0.0.1:<free port>, ready when constructed.
class OriginProcess {
 public:
  static constexpr const char* kPublicBaseUrl = "https://sho.example.test";

  // Creates an admin API key (`origin keys create --admin`; skipped when the
  // database has no schema yet, admin_key() then ""). Starts the origin with
  // DATABASE_URL=database_url, ORIGIN_LISTEN on a free port,
  // PUBLIC_BASE_URL=kPublicBaseUrl, JOURNAL_DIR in a private folder, creation
  // rate limits of 10,000,000 per minute (so the counters are exercised but
  // tests creating thousands of links from 127.0.0.1 are not limited), then
  // `overrides` on top (ORIGIN_LISTEN there sets port()), and waits up
  // to 10 s for GET /healthz to answer 200. Throws std::runtime_error carrying
  // the log tail if the origin exits or does not become healthy in time.
  explicit OriginProcess(const std::string& database_url, const Environment& overrides = {});
  // Kills the origin if it still runs; removes its log unless the test failed.
  ~OriginProcess();
  OriginProcess(const OriginProcess&) = delete;
  OriginProcess& operator=(const OriginProcess&) = delete;

  uint16_t port() const { return port_; }
  pid_t pid() const { return process_->pid(); }
  const std::string& public_base_url() const { return public_base_url_; }
  // A new keep-alive client to this origin that sends admin_key() as
  // `Authorization: Bearer` with every request.
  HttpClient client(std::chrono::milliseconds timeout = HttpClient::kDefaultTimeout) const;
  // A new keep-alive client that sends no key.
  HttpClient anonymous_client(
      std::chrono::milliseconds timeout = HttpClient::kDefaultTimeout) const;
  const std::string& admin_key() const { return admin_key_; }
  // Polls GET /readyz until it answers 200 (true) or `timeout` passes (false):
  // on a loaded machine the first health check can time out, and the origin
  // then answers 503 for a moment.
  bool wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;
  Process& process() { return *process_; }
  const std::string& log_path() const { return log_path_; }
  // Where this origin journals visits (JOURNAL_DIR).
  const std::string& journal_dir() const { return journal_dir_; }
  std::string log_tail(std::size_t lines = 40) const { return tail_of_file(log_path_, lines); }

 private:
  uint16_t port_;
  std::string public_base_url_;
  std::string log_dir_;
  std::string log_path_;
  std::string journal_dir_;
  std::string admin_key_;
  std::optional<Process> process_;
};

}  // namespace integration
