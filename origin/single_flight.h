// Coalesces concurrent loads of the same key: the first caller loads, the
// others wait for its result instead of loading again.
//
// Invariants:
//  1. A key is "in flight" from the join() that returned true until the
//     matching complete(); while it is, join() returns false.
//  2. complete() calls each callback queued for that flight exactly once, in
//     join order, on the calling thread, after releasing the lock: callbacks
//     may call join() and complete() themselves.
#pragma once

#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace origin {

// Thread-safe: every member function may be called from any thread.
template <typename Key, typename Value, typename Hash = std::hash<Key>>
class SingleFlight {
 public:
  using Callback = std::function<void(const Value&)>;

  // Queues `callback` for the result of loading `key`. Returns true when no
  // load of `key` was in flight: the caller must then start one and, whatever
  // its outcome (failures included, as a Value), call complete() exactly once.
  // Returns false when `callback` was queued behind a load in flight.
  bool join(const Key& key, Callback callback) {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, first] = waiting_.try_emplace(key);
    try {
      it->second.push_back(std::move(callback));
    } catch (...) {
      if (first) waiting_.erase(it);  // nobody is left waiting on a load never started
      throw;
    }
    return first;
  }

  // Ends the flight of `key`: calls every queued callback with `value` and
  // returns how many were called (0 when `key` was not in flight). A callback
  // that throws does not stop the others; the first exception is rethrown
  // after all were called.
  std::size_t complete(const Key& key, const Value& value) {
    std::vector<Callback> callbacks;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = waiting_.find(key);
      if (it == waiting_.end()) return 0;
      callbacks = std::move(it->second);
      waiting_.erase(it);
    }
    std::exception_ptr first_error;
    for (Callback& callback : callbacks) {
      try {
        callback(value);
      } catch (...) {
        if (!first_error) first_error = std::current_exception();
      }
    }
    if (first_error) std::rethrow_exception(first_error);
    return callbacks.size();
  }

  // Number of keys with a load in flight.
  std::size_t in_flight() const {
    std::lock_guard<std::mutex> lock(mu_);
    return waiting_.size();
  }

 private:
  mutable std::mutex mu_;  // guards waiting_
  std::unordered_map<Key, std::vector<Callback>, Hash> waiting_;
};

}  // namespace origin
