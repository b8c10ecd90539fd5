// A real nginx in the foreground for edge tests, on a configuration the test
// wrote (usually nginx/edge.conf.template filled by the exporter).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "integration/support/http_client.h"
#include "integration/support/process.h"

namespace integration {

// A fresh folder $TMPDIR/<prefix>-XXXXXX (/tmp without TMPDIR), mode 0755 so
// that nginx's workers (nobody, when the tests run as root) can enter it.
// Throws std::runtime_error when it cannot be made.
std::string make_nginx_readable_dir(const std::string& prefix);

class NginxProcess {
 public:
  // Runs `kNginx -p <dir>/ -e <dir>/startup.log -c <conf> -g "daemon off;"`
  // (output appended to <dir>/nginx.out) and waits up to 60 s until
  // GET /_edge/version on 127.0.0.1:<port> answers "<version>\n". Throws
  // std::runtime_error with nginx's output and error log if nginx exits first
  // or the version does not show in time.
  NginxProcess(const std::string& dir, const std::string& conf, uint16_t port,
               const std::string& version);
  // SIGTERM, so the master stops its workers (a SIGKILL would orphan them),
  // then SIGKILL after 10 s.
  ~NginxProcess();
  NginxProcess(const NginxProcess&) = delete;
  NginxProcess& operator=(const NginxProcess&) = delete;

  uint16_t port() const { return port_; }
  pid_t pid() const { return process_->pid(); }
  Process& process() { return *process_; }
  // A new keep-alive client to this nginx.
  HttpClient client(std::chrono::milliseconds timeout = HttpClient::kDefaultTimeout) const;
  // The body of /_edge/version, or a description of what was answered instead.
  std::string served_version() const;
  // The master's children, i.e. its current workers, as /proc lists them.
  std::string worker_pids() const;
  // Sends SIGUSR1 (what `nginx -s reopen` sends): nginx reopens its logs.
  void reopen_logs();
  // The last lines of nginx's error log and output, for failure messages.
  std::string log_tail() const;

 private:
  std::string dir_;
  uint16_t port_;
  std::optional<Process> process_;
};

}  // namespace integration
