// Running work on a pooled PostgreSQL connection, with failures sorted the
// way the HTTP handlers need them: "the database cannot serve this now"
// becomes StoreUnavailable (answered 503), anything else propagates.
#pragma once

#include <pqxx/pqxx>

#include "core/pg_pool.h"
#include "origin/link_store.h"

namespace origin {

enum class Retry {
  kNever,         // writes: a broken connection may have committed
  kOnceIfBroken,  // reads: a connection from before a restart fails once
};

// Calls `fn(pqxx::connection&)` on a leased connection and returns its
// result. A connection that failed is discarded rather than returned to the
// pool. Throws StoreUnavailable for a pool timeout, a broken connection, an
// unknown commit outcome, or an SQLSTATE of class 08/53/57.
template <typename Fn>
auto with_connection(core::PgPool& pool, Retry retry, Fn&& fn) {
  for (int attempt = 0;; ++attempt) {
    try {
      core::PgPool::Lease lease = pool.acquire();
      try {
        return fn(*lease);
      } catch (const pqxx::broken_connection&) {
        lease.discard();
        throw;
      } catch (const pqxx::in_doubt_error&) {
        lease.discard();
        throw;
      } catch (const pqxx::sql_error& e) {
        if (core::is_unavailability(e)) lease.discard();
        throw;
      }
    } catch (const core::PoolTimeout& e) {
      throw StoreUnavailable(e.what());
    } catch (const pqxx::broken_connection& e) {
      if (retry == Retry::kOnceIfBroken && attempt == 0) continue;
      throw StoreUnavailable(e.what());
    } catch (const pqxx::in_doubt_error& e) {
      throw StoreUnavailable(e.what());
    } catch (const pqxx::sql_error& e) {
      if (core::is_unavailability(e)) throw StoreUnavailable(e.what());
      throw;
    }
  }
}

}  // namespace origin
