#include "origin/db_health.h"

#include <iostream>
#include <memory>
#include <pqxx/pqxx>

#include "origin/log.h"

namespace origin {
namespace {

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

DbHealth::DbHealth(std::string url, core::PgPool& pool, std::chrono::milliseconds interval,
                   std::chrono::milliseconds stale_after)
    : url_(std::move(url)), pool_(pool), interval_(interval), stale_after_(stale_after) {
  // The first answer is known before the server accepts anything, so no
  // request is refused merely because the watcher had not run yet.
  check_once();
  thread_ = std::thread([this] { loop(); });
}

DbHealth::~DbHealth() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

bool DbHealth::ready() const {
  return last_check_ok_.load(std::memory_order_relaxed) &&
         steady_ms() - last_ok_steady_ms_.load(std::memory_order_relaxed) < stale_after_.count();
}

void DbHealth::check_once() {
  bool ok = false;
  std::string problem;
  try {
    if (!conn_ || !conn_->is_open()) {
      conn_ = std::make_unique<pqxx::connection>(url_);
      pqxx::nontransaction(*conn_).exec("SET statement_timeout = 1000");
    }
    pqxx::nontransaction(*conn_).exec("SELECT 1");
    ok = true;
  } catch (const std::exception& e) {
    problem = e.what();
    conn_.reset();
  }
  if (ok) {
    last_ok_steady_ms_.store(steady_ms(), std::memory_order_relaxed);
    last_check_ok_.store(true, std::memory_order_relaxed);
    if (!was_ok_) log_event("info", "database reachable again");
  } else {
    last_check_ok_.store(false, std::memory_order_relaxed);
    if (was_ok_) {
      log_event("error", "database unreachable", {{"error", first_line(problem)}});
      pool_.invalidate_all();
    }
  }
  was_ok_ = ok;
}

void DbHealth::loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (wake_.wait_for(lock, interval_, [this] { return stopping_; })) return;
    }
    check_once();
    pool_.reap_idle();
  }
}

}  // namespace origin
