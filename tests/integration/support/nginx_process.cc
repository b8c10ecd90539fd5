#include "integration/support/nginx_process.h"

#include <signal.h>
#include <sys/stat.h>

#include <cstdlib>
#include <stdexcept>
#include <thread>
#include <vector>

namespace integration {

using namespace std::chrono_literals;

std::string make_nginx_readable_dir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/" + prefix + "-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  ::chmod(pattern.c_str(), 0755);
  return pattern;
}

NginxProcess::NginxProcess(const std::string& dir, const std::string& conf, uint16_t port,
                           const std::string& version)
    : dir_(dir), port_(port) {
  process_.emplace(std::vector<std::string>{kNginx, "-p", dir_ + "/", "-e", dir_ + "/startup.log",
                                            "-c", conf, "-g", "daemon off;"},
                   inherited_environment(), dir_ + "/nginx.out", dir_ + "/nginx.out");
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (served_version() != version + "\n") {
    if (!process_->running() || std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("nginx did not start serving " + version + ": " + log_tail());
    }
    std::this_thread::sleep_for(20ms);
  }
}

NginxProcess::~NginxProcess() { process_->terminate(10s); }

HttpClient NginxProcess::client(std::chrono::milliseconds timeout) const {
  return HttpClient("127.0.0.1", port_, timeout);
}

std::string NginxProcess::served_version() const {
  try {
    const Response r = client(2000ms).get("/_edge/version");
    return r.status == 200 ? r.body : r.summary();
  } catch (const TransportError& e) {
    return std::string("transport error: ") + e.what();
  }
}

std::string NginxProcess::worker_pids() const {
  const std::string pid = std::to_string(process_->pid());
  return read_text("/proc/" + pid + "/task/" + pid + "/children");
}

void NginxProcess::reopen_logs() {
  if (::kill(process_->pid(), SIGUSR1) != 0) throw std::runtime_error("cannot signal nginx");
}

std::string NginxProcess::log_tail() const {
  return tail_of_file(dir_ + "/nginx.out") + tail_of_file(dir_ + "/startup.log") +
         tail_of_file(dir_ + "/error.log");
}

}  // namespace integration
