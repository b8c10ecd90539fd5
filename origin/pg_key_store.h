// API keys on PostgreSQL: the lookup behind KeyStore, and the operations of
// `origin keys` (create, revoke, list) on a connection of their own.
#pragma once

#include <optional>
#include <pqxx/connection>
#include <string>
#include <vector>

#include "core/pg_pool.h"
#include "origin/key_store.h"

namespace origin {

class PgKeyStore : public KeyStore {
 public:
  explicit PgKeyStore(core::PgPool& pool) : pool_(pool) {}
  std::optional<KeyIdentity> find_active(const KeyHash& hash) override;

 private:
  core::PgPool& pool_;
};

// A key as `origin keys list` shows it: never the key itself.
struct KeyInfo {
  std::string name;
  std::string prefix;
  bool admin = false;
  std::string created_at;  // RFC 3339, UTC
  std::string revoked_at;  // "" while active
};

// Inserts a key named `name` with `key`'s hash; false when the name exists
// (revoked names stay taken, so a name always means one key). Throws on
// database errors.
bool insert_key(pqxx::connection& conn, const std::string& name, const std::string& key,
                bool admin);

enum class RevokeOutcome { kRevoked, kAlreadyRevoked, kUnknown };

// Sets revoked_at (the trigger tells every origin to forget its cache).
RevokeOutcome revoke_key(pqxx::connection& conn, const std::string& name);

// Every key, by name.
std::vector<KeyInfo> list_keys(pqxx::connection& conn);

}  // namespace origin
