// LinkStore on PostgreSQL through the connection pool.
#pragma once

#include <cstddef>

#include "core/pg_pool.h"
#include "origin/link_store.h"

namespace origin {

class PgLinkStore : public LinkStore {
 public:
  // `code_length`: length of generated codes. The pool must have been built
  // with PgLinkStore::prepare_statements as its setup function.
  PgLinkStore(core::PgPool& pool, std::size_t code_length);

  std::variant<core::Link, CreateFailure, RateLimited> create(const NewLink& link) override;
  std::optional<core::Link> find(std::string_view code) override;
  std::optional<core::Link> update(std::string_view code, const LinkPatch& patch) override;

  // Prepares this store's statements on a new connection.
  static void prepare_statements(pqxx::connection& conn);

 private:
  core::PgPool& pool_;
  const std::size_t code_length_;
};

}  // namespace origin
