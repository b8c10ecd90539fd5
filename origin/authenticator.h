// Verifies the API key a request presents, with a short in-memory cache so
// that a busy client costs one key lookup per TTL, not one per request.
//
// How quickly a revoked key stops working on every instance:
//  - the api_keys trigger NOTIFYs api_key_changed on every change; each
//    origin listens and calls forget_all(): milliseconds after the revoking
//    commit while the listener is connected;
//  - the listener calls forget_all() again after every reconnect, since it may
//    have missed a notification while down;
//  - as a backstop (a connection that died silently: up to ~10 s until the
//    listener notices), no answer is reused for longer than `ttl`.
// So the bound is min(NOTIFY latency, ttl) in the worst case, ttl.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "origin/key_store.h"

namespace origin {

class Authenticator {
 public:
  enum class Outcome {
    kNoKey,    // the request presents no key
    kInvalid,  // malformed, unknown or revoked
    kValid,
  };
  struct Result {
    Outcome outcome = Outcome::kNoKey;
    KeyIdentity identity;  // when kValid
  };

  // `store` must outlive this. Answers are cached for `ttl` (0: never), at
  // most `max_entries` of them (the cache is emptied when full).
  Authenticator(KeyStore& store, std::chrono::milliseconds ttl, std::size_t max_entries = 10000);

  // Checks `key` (nullopt: none presented). May query the store, so call it
  // where blocking is fine. Throws StoreUnavailable. Thread-safe.
  Result authenticate(const std::optional<std::string>& key);

  // Drops every cached answer; a lookup that started before this call does
  // not cache its (possibly stale) answer. Thread-safe.
  void forget_all();

  // Lookups that reached the store (for tests and metrics).
  std::uint64_t store_lookups() const;

 private:
  struct Entry {
    std::optional<KeyIdentity> identity;  // nullopt: unknown or revoked
    std::chrono::steady_clock::time_point expires;
  };

  KeyStore& store_;
  const std::chrono::milliseconds ttl_;
  const std::size_t max_entries_;
  mutable std::mutex mu_;                           // guards the fields below
  std::unordered_map<std::string, Entry> entries_;  // by raw SHA-256
  std::uint64_t generation_ = 0;                    // bumped by forget_all
  std::uint64_t store_lookups_ = 0;
};

}  // namespace origin
