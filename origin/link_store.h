// Storage interface for links, as the HTTP handlers see it. No database types
// appear here; the PostgreSQL adapter implements it (pg_link_store.h).
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/link.h"

namespace origin {

// The database cannot serve the request right now (down, timed out, pool
// exhausted). Handlers answer 503; the request may be retried.
class StoreUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A creation limit checked with the insert: at most `per_minute` creation
// attempts of `subject` ("ip:...", "key:<id>") per one-minute window (by the
// database clock), counted across every instance.
struct CreateLimit {
  std::string subject;
  int per_minute = 0;
};

struct NewLink {
  std::string target;                // normalized
  std::optional<std::string> alias;  // lowercase, checked; nullopt: generate
  int status = 307;
  bool forward_query = true;
  std::optional<core::TimePoint> expires_at;
  std::optional<std::int64_t> owner_key_id;  // the creating key, if any
  std::vector<CreateLimit> limits;           // at most two: the IP's, then the key's
};

// A creation refused because `subject` is over its limit; nothing was
// inserted. The attempt still counts against every subject.
struct RateLimited {
  std::string subject;
  int retry_after_s = 1;  // until the window ends
};

// Fields to change; nullopt leaves a field as it is. For expires_at the outer
// optional says "change it", the inner nullopt clears it.
struct LinkPatch {
  std::optional<std::string> target;
  std::optional<int> status;
  std::optional<bool> forward_query;
  std::optional<std::optional<core::TimePoint>> expires_at;
  std::optional<bool> disabled;
};

enum class CreateFailure {
  kAliasTaken,  // the alias exists (in any state: codes are never reused)
  kNoFreeCode,  // every generated candidate collided (retries exhausted)
};

class LinkStore {
 public:
  virtual ~LinkStore() = default;

  // Counts the attempt against link.limits and, when none is exceeded,
  // inserts the link, in one statement. Generated codes are retried on
  // collision a bounded number of times. Throws StoreUnavailable. Thread-safe.
  virtual std::variant<core::Link, CreateFailure, RateLimited> create(const NewLink& link) = 0;

  // Looks a lowercase code up; nullopt when unknown. Throws StoreUnavailable.
  virtual std::optional<core::Link> find(std::string_view code) = 0;

  // Looks several lowercase codes up in one query: element i answers
  // codes[i] (nullopt when unknown); the result has codes.size() elements.
  // Throws StoreUnavailable, for all codes at once.
  virtual std::vector<std::optional<core::Link>> find_many(
      const std::vector<std::string>& codes) = 0;

  // Applies `patch`; returns the updated link, nullopt when unknown.
  virtual std::optional<core::Link> update(std::string_view code, const LinkPatch& patch) = 0;
};

}  // namespace origin
