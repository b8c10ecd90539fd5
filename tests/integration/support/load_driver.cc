#include "integration/support/load_driver.h"

#include <thread>
#include <utility>

namespace integration {

LoadDriver::LoadDriver(uint16_t port, int threads, Exchange exchange,
                       std::chrono::milliseconds timeout)
    : port_(port), thread_count_(threads), exchange_(std::move(exchange)), timeout_(timeout) {
  for (int t = 0; t < thread_count_; ++t) threads_.emplace_back([this, t] { run(t); });
}

LoadDriver::~LoadDriver() { stop(); }

void LoadDriver::stop() {
  stop_ = true;
  for (std::thread& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
}

std::string LoadDriver::first_problem() const {
  std::lock_guard<std::mutex> guard(mutex_);
  return first_problem_;
}

void LoadDriver::problem(std::atomic<long>& counter, const std::string& what) {
  ++counter;
  std::lock_guard<std::mutex> guard(mutex_);
  if (first_problem_.empty()) first_problem_ = what;
}

void LoadDriver::run(int thread) {
  HttpClient client("127.0.0.1", port_, timeout_);
  for (long n = thread; !stop_; n += thread_count_) {
    try {
      const std::string wrong = exchange_(client, n);
      ++requests_;
      if (!wrong.empty()) problem(wrong_, wrong);
    } catch (const TransportError& e) {
      problem(failed_, e.what());
    }
  }
  resent_ += static_cast<long>(client.resent_after_close());
}

}  // namespace integration
