#include "origin/rate_limit_janitor.h"

#include <pqxx/pqxx>

#include "origin/log.h"
#include "origin/pg_call.h"

namespace origin {

RateLimitJanitor::RateLimitJanitor(core::PgPool& pool, std::chrono::milliseconds interval)
    : pool_(pool), interval_(interval) {
  thread_ = std::thread([this] { loop(); });
}

RateLimitJanitor::~RateLimitJanitor() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void RateLimitJanitor::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!wake_.wait_for(lock, interval_, [this] { return stopping_; })) {
    lock.unlock();
    try {
      with_connection(pool_, Retry::kOnceIfBroken, [](pqxx::connection& conn) {
        pqxx::nontransaction txn(conn);
        txn.exec(
            "DELETE FROM rate_limit_counters"
            " WHERE window_start < date_trunc('minute', now()) - interval '1 minute'");
        return 0;
      });
    } catch (const std::exception& e) {
      log_event("warn", "could not delete old rate-limit windows",
                {{"error", first_line(e.what())}});
    }
    lock.lock();
  }
}

}  // namespace origin
