#include "origin/pg_key_store.h"

#include <pqxx/pqxx>

#include "origin/pg_call.h"

namespace origin {
namespace {

// bytea in PostgreSQL's hex input form, so the hash travels as text.
std::string bytea_hex(const KeyHash& hash) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out = "\\x";
  for (unsigned char b : hash) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

constexpr const char* kTimeFormat = "YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"";

}  // namespace

std::optional<KeyIdentity> PgKeyStore::find_active(const KeyHash& hash) {
  return with_connection(pool_, Retry::kOnceIfBroken,
                         [&](pqxx::connection& conn) -> std::optional<KeyIdentity> {
                           pqxx::nontransaction txn(conn);
                           pqxx::result r = txn.exec_params(
                               "SELECT id, is_admin FROM api_keys"
                               " WHERE key_hash = $1::bytea AND revoked_at IS NULL",
                               bytea_hex(hash));
                           if (r.empty()) return std::nullopt;
                           return KeyIdentity{r[0][0].as<std::int64_t>(), r[0][1].as<bool>()};
                         });
}

bool insert_key(pqxx::connection& conn, const std::string& name, const std::string& key,
                bool admin) {
  pqxx::work txn(conn);
  pqxx::result r = txn.exec_params(
      "INSERT INTO api_keys (name, key_hash, key_prefix, is_admin)"
      " VALUES ($1, $2::bytea, $3, $4) ON CONFLICT (name) DO NOTHING RETURNING id",
      name, bytea_hex(hash_api_key(key)), key_display_prefix(key), admin);
  txn.commit();
  return !r.empty();
}

RevokeOutcome revoke_key(pqxx::connection& conn, const std::string& name) {
  pqxx::work txn(conn);
  pqxx::result r = txn.exec_params(
      "WITH target AS (SELECT id, revoked_at FROM api_keys WHERE name = $1 FOR UPDATE),"
      " revoked AS (UPDATE api_keys SET revoked_at = now() FROM target"
      "   WHERE api_keys.id = target.id AND target.revoked_at IS NULL RETURNING api_keys.id)"
      " SELECT (SELECT count(*) FROM target), (SELECT count(*) FROM revoked)",
      name);
  txn.commit();
  if (r[0][0].as<long>() == 0) return RevokeOutcome::kUnknown;
  return r[0][1].as<long>() == 0 ? RevokeOutcome::kAlreadyRevoked : RevokeOutcome::kRevoked;
}

std::vector<KeyInfo> list_keys(pqxx::connection& conn) {
  pqxx::read_transaction txn(conn);
  const std::string format = kTimeFormat;
  pqxx::result r = txn.exec(
      "SELECT name, key_prefix, is_admin,"
      " to_char(created_at AT TIME ZONE 'UTC', '" +
      format + "'), COALESCE(to_char(revoked_at AT TIME ZONE 'UTC', '" + format +
      "'), '') FROM api_keys ORDER BY name");
  std::vector<KeyInfo> keys;
  for (const auto& row : r) {
    keys.push_back(KeyInfo{row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<bool>(),
                           row[3].as<std::string>(), row[4].as<std::string>()});
  }
  return keys;
}

}  // namespace origin
