// API keys as the request path sees them: who a key is, and where that is
// looked up. No database types here (pg_key_store.h implements it).
#pragma once

#include <cstdint>
#include <optional>

#include "origin/api_key.h"

namespace origin {

// What a valid key may do.
struct KeyIdentity {
  std::int64_t id = 0;
  bool admin = false;
};

class KeyStore {
 public:
  virtual ~KeyStore() = default;
  // The key with this hash when it exists and is not revoked. Throws
  // StoreUnavailable. Thread-safe.
  virtual std::optional<KeyIdentity> find_active(const KeyHash& hash) = 0;
};

}  // namespace origin
