// Deletes rate-limit windows nobody reads any more, so rate_limit_counters
// holds about two minutes of subjects, whatever the traffic.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "core/pg_pool.h"

namespace origin {

// Every `interval`, on a thread of its own, deletes the counter rows of
// windows before the previous minute (by the database clock). Several
// instances doing it at once is harmless. Failures are logged and retried at
// the next interval.
class RateLimitJanitor {
 public:
  // `pool` must outlive this. Starts the thread.
  RateLimitJanitor(core::PgPool& pool, std::chrono::milliseconds interval);
  ~RateLimitJanitor();  // stops and joins the thread (within one statement)
  RateLimitJanitor(const RateLimitJanitor&) = delete;
  RateLimitJanitor& operator=(const RateLimitJanitor&) = delete;

 private:
  void loop();

  core::PgPool& pool_;
  const std::chrono::milliseconds interval_;
  std::mutex mu_;  // guards stopping_
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace origin
