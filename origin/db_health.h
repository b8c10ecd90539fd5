// Watches whether PostgreSQL answers, for /readyz and for failing fast.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/pg_pool.h"

namespace origin {

// Runs `SELECT 1` on its own connection every `interval` on a background
// thread. ready() turns false as soon as a check fails or when no check has
// succeeded for `stale_after` (a hung server), and true on the next success.
// On the transition to down it invalidates the pool, so connections from
// before an outage are not handed out after it. Also reaps idle overflow
// connections of the pool. Thread-safe.
class DbHealth {
 public:
  DbHealth(std::string url, core::PgPool& pool,
           std::chrono::milliseconds interval = std::chrono::milliseconds(250),
           std::chrono::milliseconds stale_after = std::chrono::milliseconds(1500));
  ~DbHealth();  // stops and joins the thread
  DbHealth(const DbHealth&) = delete;
  DbHealth& operator=(const DbHealth&) = delete;

  bool ready() const;

 private:
  void loop();
  void check_once();  // only from the constructor, then the watcher thread

  const std::string url_;
  core::PgPool& pool_;
  const std::chrono::milliseconds interval_;
  const std::chrono::milliseconds stale_after_;
  std::atomic<bool> last_check_ok_{false};
  std::atomic<std::int64_t> last_ok_steady_ms_{0};
  // Used by check_once only (constructor, then the watcher thread).
  std::unique_ptr<pqxx::connection> conn_;
  bool was_ok_ = true;  // so the first failure is logged

  std::mutex mu_;  // guards stopping_
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace origin
