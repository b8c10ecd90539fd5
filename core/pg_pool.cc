#include "core/pg_pool.h"

#include <string>

namespace core {

PgPool::Lease::Lease(Lease&& other) noexcept
    : pool_(other.pool_), slot_(std::move(other.slot_)), discarded_(other.discarded_) {}

PgPool::Lease::~Lease() {
  if (slot_) pool_->release(std::move(slot_), discarded_);
}

PgPool::PgPool(DatabaseConfig config, SetupFn setup)
    : config_(std::move(config)), setup_(std::move(setup)) {}

PgPool::~PgPool() = default;

std::unique_ptr<PgPool::Slot> PgPool::open_connection() {
  auto slot = std::make_unique<Slot>();
  slot->conn = std::make_unique<pqxx::connection>(config_.url);
  {
    pqxx::nontransaction session(*slot->conn);
    session.exec("SET statement_timeout = " + std::to_string(config_.statement_timeout.count()));
    session.exec("SET idle_in_transaction_session_timeout = " +
                 std::to_string(config_.statement_timeout.count() * 5));
    session.exec("SET TIME ZONE 'UTC'");
  }
  if (setup_) setup_(*slot->conn);
  return slot;
}

PgPool::Lease PgPool::acquire() {
  const auto deadline = std::chrono::steady_clock::now() + config_.acquire_timeout;
  std::unique_lock<std::mutex> lock(mu_);
  bool counted_wait = false;
  for (;;) {
    while (!idle_.empty()) {
      std::unique_ptr<Slot> slot = std::move(idle_.back());
      idle_.pop_back();
      if (slot->generation == generation_ && slot->conn->is_open()) {
        return Lease(this, std::move(slot));
      }
      --open_;
      lock.unlock();
      slot.reset();  // closing may block briefly; never under the lock
      lock.lock();
    }
    if (open_ < config_.pool_size + config_.max_overflow) {
      ++open_;
      if (open_ > config_.pool_size) ++overflow_opened_;
      const std::uint64_t generation = generation_;
      lock.unlock();
      try {
        std::unique_ptr<Slot> slot = open_connection();
        slot->generation = generation;
        return Lease(this, std::move(slot));
      } catch (...) {
        lock.lock();
        --open_;
        freed_.notify_one();
        throw;
      }
    }
    if (!counted_wait) {
      counted_wait = true;
      ++waits_;
    }
    ++waiting_;
    bool signalled = freed_.wait_until(lock, deadline) == std::cv_status::no_timeout;
    --waiting_;
    if (!signalled && idle_.empty() && open_ >= config_.pool_size + config_.max_overflow) {
      ++timeouts_;
      throw PoolTimeout("no database connection free within " +
                        std::to_string(config_.acquire_timeout.count()) + " ms");
    }
  }
}

void PgPool::release(std::unique_ptr<Slot> slot, bool discarded) {
  std::unique_lock<std::mutex> lock(mu_);
  if (discarded || slot->generation != generation_ || !slot->conn->is_open()) {
    --open_;
    freed_.notify_one();
    lock.unlock();
    slot.reset();
    return;
  }
  slot->last_used = std::chrono::steady_clock::now();
  idle_.push_back(std::move(slot));
  freed_.notify_one();
}

void PgPool::invalidate_all() {
  std::vector<std::unique_ptr<Slot>> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++generation_;
    dropped.swap(idle_);
    open_ -= dropped.size();
    freed_.notify_all();
  }
}

void PgPool::reap_idle() {
  std::vector<std::unique_ptr<Slot>> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto cutoff = std::chrono::steady_clock::now() - config_.overflow_idle;
    // The front of idle_ holds the least recently used connections.
    auto it = idle_.begin();
    while (it != idle_.end() && open_ > config_.pool_size && (*it)->last_used < cutoff) {
      dropped.push_back(std::move(*it));
      ++it;
      --open_;
    }
    idle_.erase(idle_.begin(), it);
  }
}

PgPool::Stats PgPool::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  Stats s;
  s.open = open_;
  s.in_use = open_ - idle_.size();
  s.waiting = waiting_;
  s.waits = waits_;
  s.timeouts = timeouts_;
  s.overflow_opened = overflow_opened_;
  return s;
}

bool is_unavailability(const pqxx::sql_error& e) {
  const std::string state = e.sqlstate();
  if (state.size() < 2) return true;  // no SQLSTATE: the connection failed mid-query
  const std::string klass = state.substr(0, 2);
  return klass == "08" || klass == "57" || klass == "53";
}

}  // namespace core
