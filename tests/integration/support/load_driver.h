// Load for integration tests: keep-alive clients in threads of their own,
// each request sent and its answer judged by the test's function.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "integration/support/http_client.h"

namespace integration {

class LoadDriver {
 public:
  // Sends request number `n` of a thread on `client` and returns "" when the
  // answer is right, else what was wrong with it. A TransportError it lets
  // through counts as a failed request. Called from several threads at once.
  using Exchange = std::function<std::string(HttpClient& client, long n)>;

  // Starts `threads` threads, each with its own keep-alive HttpClient to
  // 127.0.0.1:port (timeout `timeout`), calling `exchange` until stop();
  // thread t numbers its requests t, t + threads, t + 2 * threads, ...
  LoadDriver(uint16_t port, int threads, Exchange exchange,
             std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
  ~LoadDriver();
  LoadDriver(const LoadDriver&) = delete;
  LoadDriver& operator=(const LoadDriver&) = delete;

  // Stops and joins the threads; the counts are final afterwards.
  void stop();

  long requests() const { return requests_; }  // answered, right or wrong
  long wrong() const { return wrong_; }
  long failed() const { return failed_; }
  // Requests sent again because a kept-alive connection was closed before any
  // response byte (HttpClient::resent_after_close), counted when stopped.
  long resent() const { return resent_; }
  // The first wrong answer or failure, "" if none.
  std::string first_problem() const;

 private:
  void run(int thread);
  void problem(std::atomic<long>& counter, const std::string& what);

  uint16_t port_;
  int thread_count_;
  Exchange exchange_;
  std::chrono::milliseconds timeout_;
  std::atomic<bool> stop_{false};
  std::atomic<long> requests_{0};
  std::atomic<long> wrong_{0};
  std::atomic<long> failed_{0};
  std::atomic<long> resent_{0};
  mutable std::mutex mutex_;
  std::string first_problem_;  // guarded by mutex_
  std::vector<std::thread> threads_;
};

}  // namespace integration
