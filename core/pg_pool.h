// A pool of PostgreSQL connections (libpqxx 6.4). The only place in core that
// opens connections; stores build on it.
//
// Invariants:
//  1. At most `size + max_overflow` connections are open at once.
//  2. A connection is used by one thread at a time: the holder of its Lease.
//  3. A connection that saw a broken-connection error, or that was opened
//     before the last invalidate_all(), is never handed out again.
//  4. Connections beyond `size` are closed after `overflow_idle` unused.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <pqxx/pqxx>
#include <stdexcept>
#include <vector>

#include "core/config.h"

namespace core {

// No connection became free within the acquire timeout.
class PoolTimeout : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class PgPool {
 public:
  // Called on every new connection (after session settings), e.g. to prepare
  // statements. May throw; the connection is then discarded.
  using SetupFn = std::function<void(pqxx::connection&)>;

  PgPool(DatabaseConfig config, SetupFn setup);
  ~PgPool();
  PgPool(const PgPool&) = delete;
  PgPool& operator=(const PgPool&) = delete;

  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    ~Lease();
    pqxx::connection& operator*() const { return *slot_->conn; }
    pqxx::connection* operator->() const { return slot_->conn.get(); }
    // The connection must not be reused (broken, or state unknown).
    void discard() { discarded_ = true; }

   private:
    friend class PgPool;
    struct Slot {
      std::unique_ptr<pqxx::connection> conn;
      std::uint64_t generation = 0;
      std::chrono::steady_clock::time_point last_used;
    };
    Lease(PgPool* pool, std::unique_ptr<Slot> slot) : pool_(pool), slot_(std::move(slot)) {}
    PgPool* pool_;
    std::unique_ptr<Slot> slot_;
    bool discarded_ = false;
  };

  // Returns a connection, opening one if allowed. Throws PoolTimeout after the
  // acquire timeout, pqxx::broken_connection if a new connection cannot be
  // opened. Thread-safe.
  Lease acquire();

  // Drops every idle connection and marks the ones in use for closing on
  // return (called when the database was seen going away).
  void invalidate_all();

  // Closes overflow connections idle for longer than `overflow_idle`.
  void reap_idle();

  struct Stats {
    std::size_t open = 0;
    std::size_t in_use = 0;
    std::size_t waiting = 0;
    std::uint64_t waits = 0;            // acquisitions that had to wait
    std::uint64_t timeouts = 0;         // acquisitions that gave up
    std::uint64_t overflow_opened = 0;  // connections opened beyond `size`
  };
  Stats stats() const;

  const DatabaseConfig& config() const { return config_; }

 private:
  using Slot = Lease::Slot;
  void release(std::unique_ptr<Slot> slot, bool discarded);
  std::unique_ptr<Slot> open_connection();

  const DatabaseConfig config_;
  const SetupFn setup_;

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable freed_;
  std::vector<std::unique_ptr<Slot>> idle_;  // most recently used at the back
  std::size_t open_ = 0;
  std::size_t waiting_ = 0;
  std::uint64_t generation_ = 0;
  std::uint64_t waits_ = 0;
  std::uint64_t timeouts_ = 0;
  std::uint64_t overflow_opened_ = 0;
};

// SQLSTATE classes that mean "the database is not usable right now" rather
// than "this statement is wrong": connection exceptions (08), operator
// intervention incl. statement timeout and shutdown (57), insufficient
// resources (53).
bool is_unavailability(const pqxx::sql_error& e);

}  // namespace core
